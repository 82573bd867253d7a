package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Replies are matched by workflow_id, else by in_reply_to (PROTOCOL.md
// "Message fields"); the workflow's result names the workflow in both.
func TestReplyMatchedByWorkflowID(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reference string // the reply's members naming the workflow; %s is the id
	}{
		{"workflow_id only", `"workflow_id":%q`},
		{"in_reply_to only", `"in_reply_to":%q`},
		{"workflow_id wins over an unrelated in_reply_to", `"workflow_id":%q,"in_reply_to":"01890a5d-ac96-774b-bcce-b302099a8057"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			svc, as := localService(t, nil, "boss", "a")
			res, err := svc.Accept(ctx, as("boss"), []byte(`{"sender":"boss@example.org","recipients":["a@example.org"],"payload":{"q":1},`+
				`"coordination":{"type":"parallel","timeout":600,"required_responses":["a@example.org"]}}`))
			require.NoError(t, err)
			id := res.MessageID

			ref := fmt.Sprintf(tc.reference, id)
			_, err = svc.Accept(ctx, as("a"), []byte(`{"sender":"a@example.org","recipients":["boss@example.org"],`+ref+
				`,"response_type":"workflow_response","payload":{"ok":true}}`))
			require.NoError(t, err)
			v, err := svc.WorkflowView(ctx, as("boss"), id)
			require.NoError(t, err)
			raw, err := json.Marshal(v)
			require.NoError(t, err)
			assert.Contains(t, string(raw), `"status":"completed"`, "the reply completes the workflow: %s", raw)

			msgs, _, err := svc.Inbox(ctx, as("boss"), "boss@example.org", 10, "")
			require.NoError(t, err)
			var result map[string]any
			for _, m := range msgs {
				var mm map[string]any
				require.NoError(t, json.Unmarshal(m, &mm))
				if mm["response_type"] == "workflow_result" {
					result = mm
				}
			}
			require.NotNil(t, result, "the initiator receives the workflow result")
			assert.Equal(t, id, result["workflow_id"])
			assert.Equal(t, id, result["in_reply_to"])
		})
	}
}
