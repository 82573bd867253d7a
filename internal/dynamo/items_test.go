package dynamo

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/awscost"
	"github.com/agentry/agentry/internal/gateway"
)

// The specs a message item carries leave out what the item already says;
// whatever differs from it must still come back exactly.
func TestSpecsRoundTrip(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	later := at.Add(time.Second)
	to := []string{"bob@b.example", "Carol@C.example", "dave@d.example"}
	specs := []recipientSpec{
		{Address: "bob@b.example", Status: gateway.RecipientStatus{Address: "bob@b.example", Status: gateway.StateQueued, UpdatedAt: at}},
		// Spelled differently from `to`, filed in the inbox at accept.
		{Address: "carol@c.example", Status: gateway.RecipientStatus{Address: "carol@c.example", Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: at, DeliveredAt: &at, Via: "inbox"}, Inbox: &at},
		// Another time, filed later (not made by Accept, but encodable).
		{Address: "dave@d.example", Status: gateway.RecipientStatus{Address: "dave@d.example", Status: gateway.StateFailed, UpdatedAt: later, ErrorCode: "AGENT_UNKNOWN", ErrorMessage: "no"}, Inbox: &later},
		// Beyond `to`.
		{Address: "erin@e.example", Status: gateway.RecipientStatus{Address: "erin@e.example", Status: gateway.StateQueued, UpdatedAt: at}},
	}
	for i := range specs {
		specs[i].N = int64(i)
		specs[i].Indexed = true
	}
	msg := item{aTo: strList(to), aAt: timeAttr(at), aSpecs: specsAttr(specs, to, at)}
	got, err := decodeSpecs(msg)
	require.NoError(t, err)
	require.Len(t, got, len(specs))
	for i, want := range specs {
		g := got[i]
		assert.Equal(t, want.Address, g.Address, i)
		assert.Equal(t, want.N, g.N, i)
		assert.True(t, g.Indexed, i)
		assert.Equal(t, want.Status.Status, g.Status.Status, i)
		assert.Equal(t, want.Status.Attempts, g.Status.Attempts, i)
		assert.True(t, want.Status.UpdatedAt.Equal(g.Status.UpdatedAt), "%d: updated %v, want %v", i, g.Status.UpdatedAt, want.Status.UpdatedAt)
		assert.Equal(t, want.Status.ErrorCode, g.Status.ErrorCode, i)
		assert.Equal(t, want.Status.Via, g.Status.Via, i)
		if want.Inbox == nil {
			assert.Nil(t, g.Inbox, i)
		} else if assert.NotNil(t, g.Inbox, i) {
			assert.True(t, want.Inbox.Equal(*g.Inbox), i)
		}
	}
	// The common case, a queued recipient as given: little more than its
	// state.
	first := msg[aSpecs].(*types.AttributeValueMemberL).Value[0]
	assert.Less(t, awscost.ValueSize(first), 30)
}
