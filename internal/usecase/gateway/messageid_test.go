package gateway_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/workflow"
)

// TestMessageIDsAnyCase: a message_id is compared case-insensitively. It
// is stored in its canonical case (UUIDs lower, ULIDs upper), and a read,
// an ack or a workflow lookup finds it whatever case the caller spells it in.
func TestMessageIDsAnyCase(t *testing.T) {
	const (
		uuidUpper = "017F22E2-79B0-7CC3-98C4-DC0C0C07398F"
		ulidLower = "01arz3ndektsv4rrffq69g5fav"
	)
	cases := []struct {
		name   string
		given  string // the message_id submitted
		stored string // the id the gateway answers with
	}{
		{name: "upper-case UUID", given: uuidUpper, stored: strings.ToLower(uuidUpper)},
		{name: "lower-case ULID", given: ulidLower, stored: strings.ToUpper(ulidLower)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newRunnerWorld(t)
			ctx := context.Background()
			res, err := w.svc.Accept(ctx, w.as(t, "boss"), []byte(`{"version":"1.0","message_id":"`+tc.given+`","sender":"boss@example.org","recipients":["a@example.org"],"payload":{"q":1}}`))
			require.NoError(t, err)
			assert.Equal(t, tc.stored, res.MessageID)

			spellings := []string{tc.given, strings.ToLower(tc.given), strings.ToUpper(tc.given)}
			for _, id := range spellings {
				raw, err := w.svc.GetMessage(ctx, w.as(t, "boss"), id)
				require.NoError(t, err, "GetMessage(%s)", id)
				assert.Contains(t, string(raw), `"message_id":"`+tc.stored+`"`)
			}
			// The ack in a spelling other than the stored one.
			other := strings.ToLower(tc.stored)
			if other == tc.stored {
				other = strings.ToUpper(tc.stored)
			}
			require.NoError(t, w.svc.Ack(ctx, w.as(t, "a"), "a@example.org", other))
			entries, _, err := w.db.ListInbox(ctx, "a@example.org", 10, "")
			require.NoError(t, err)
			assert.Empty(t, entries, "acked")
		})
	}
}

// TestWorkflowIDsAnyCase: a workflow started with an upper-case UUID is
// viewed and answered with the id in any case.
func TestWorkflowIDsAnyCase(t *testing.T) {
	const id = "017F22E2-79B0-7CC3-98C4-DC0C0C07398F"
	w := newRunnerWorld(t)
	ctx := context.Background()
	res, err := w.svc.Accept(ctx, w.as(t, "boss"), []byte(`{"version":"1.0","message_id":"`+id+`","sender":"boss@example.org","recipients":["a@example.org"],`+
		`"coordination":{"type":"parallel","timeout":60},"payload":{"q":1}}`))
	require.NoError(t, err)
	require.Equal(t, strings.ToLower(id), res.MessageID)

	for _, spelling := range []string{id, strings.ToLower(id)} {
		v, err := w.svc.WorkflowView(ctx, w.as(t, "boss"), spelling)
		require.NoError(t, err, "WorkflowView(%s)", spelling)
		assert.Equal(t, strings.ToLower(id), v.WorkflowID)
	}

	// A reply whose in_reply_to is spelled upper-case still counts.
	require.NoError(t, w.reply(t, "a", id))
	v, err := w.svc.WorkflowView(ctx, w.as(t, "boss"), id)
	require.NoError(t, err)
	assert.Equal(t, workflow.StatusCompleted, v.Status)
	assert.True(t, amtp.IsUUID(v.WorkflowID))
}
