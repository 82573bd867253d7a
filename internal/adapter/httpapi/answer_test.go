package httpapi

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// checkAcceptAnswer asserts that appendAcceptAnswer, when it takes a, writes
// what encoding/json writes, and reports whether it took it.
func checkAcceptAnswer(t *testing.T, a acceptAnswer) bool {
	t.Helper()
	got, ok := appendAcceptAnswer([]byte("prefix"), &a)
	want, err := json.Marshal(a)
	if !ok {
		return false
	}
	require.NoError(t, err, "appendAcceptAnswer took what encoding/json refuses: %+v", a)
	require.Equal(t, "prefix"+string(want), string(got))
	return true
}

func TestAcceptAnswerMatchesEncodingJSON(t *testing.T) {
	now := time.Date(2025, 8, 14, 10, 30, 0, 123_000_000, time.UTC)
	later := now.Add(90 * time.Second)
	nanos := time.Date(2025, 8, 14, 10, 30, 0, 123_456_789, time.FixedZone("x", 5*3600+45*60))
	id := "0194f3c8-7a2b-7cde-8f01-23456789abcd"
	pull := gateway.RecipientStatus{Address: "bob@example.org", Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: now, DeliveredAt: &now, Via: "inbox"}
	queued := gateway.RecipientStatus{Address: "Carol.X@example.org", Status: gateway.StateQueued, UpdatedAt: now}
	failed := gateway.RecipientStatus{Address: "dave@example.org", Status: gateway.StateFailed, UpdatedAt: now,
		ErrorCode: "AGENT_UNKNOWN", ErrorMessage: "no agent dave@example.org is registered at this gateway"}
	retrying := gateway.RecipientStatus{Address: "erin@remote.example", Status: gateway.StateRetrying, Attempts: 3, UpdatedAt: nanos, NextRetry: &later}
	tried := gateway.RecipientStatus{Address: "fay@example.org", Status: gateway.StateDelivered, Attempts: 2, UpdatedAt: later, DeliveredAt: &later, Via: "webhook",
		History: []gateway.AttemptRecord{{At: now, Outcome: "retrying", Attempt: 1, ErrorCode: "RECIPIENT_UNAVAILABLE"}, {At: nanos, Outcome: "redriven"}, {At: later, Outcome: "delivered", Attempt: 2}}}

	taken := []acceptAnswer{
		{MessageID: id, Status: gateway.MessageDelivered, Recipients: []gateway.RecipientStatus{pull}},
		{MessageID: id, Status: gateway.MessageAccepted, Recipients: []gateway.RecipientStatus{queued, pull, failed, retrying}},
		{MessageID: id, Status: gateway.MessageAccepted, Recipients: []gateway.RecipientStatus{}},
		{MessageID: id, Status: gateway.MessageDelivered, Recipients: []gateway.RecipientStatus{tried, pull}},
		{MessageID: id, Status: gateway.MessageAccepted},
		{},
		{MessageID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Status: gateway.MessageFailed, Recipients: []gateway.RecipientStatus{
			{Address: "x@y.example", Status: gateway.StateFailed, Attempts: -1, UpdatedAt: time.Time{}, ErrorMessage: "policy: denied (rule 3) ~!@#$%^*()_+=-`{}[]|:;',.?/"},
		}},
	}
	for _, a := range taken {
		assert.True(t, checkAcceptAnswer(t, a), "%+v is the common case and should not need encoding/json", a)
	}

	// What encoding/json escapes or rewrites, and replies, are left to it.
	var left []acceptAnswer
	for _, s := range []string{"<b>", "a&b", "x>y", `q"uote`, `back\slash`, "tab\there", "nl\n", "\x00", "del\x7f", "é", "\u2028", "\xff", "\xe2\x80"} {
		left = append(left,
			acceptAnswer{MessageID: s, Status: gateway.MessageAccepted, Recipients: []gateway.RecipientStatus{pull}},
			acceptAnswer{MessageID: id, Status: gateway.MessageState(s)},
			acceptAnswer{MessageID: id, Recipients: []gateway.RecipientStatus{{Address: s}}},
			acceptAnswer{MessageID: id, Recipients: []gateway.RecipientStatus{{Address: "a@b.c", ErrorMessage: s}}},
			acceptAnswer{MessageID: id, Recipients: []gateway.RecipientStatus{{Address: "a@b.c", ErrorCode: s}}},
			acceptAnswer{MessageID: id, Recipients: []gateway.RecipientStatus{{Address: "a@b.c", Via: s}}},
			acceptAnswer{MessageID: id, Recipients: []gateway.RecipientStatus{{Address: "a@b.c", Status: gateway.State(s)}}},
			acceptAnswer{MessageID: id, Recipients: []gateway.RecipientStatus{{Address: "a@b.c", History: []gateway.AttemptRecord{{At: now, Outcome: s}}}}},
			acceptAnswer{MessageID: id, Recipients: []gateway.RecipientStatus{{Address: "a@b.c", History: []gateway.AttemptRecord{{At: now, Outcome: "failed", ErrorCode: s}}}}},
		)
	}
	reply := json.RawMessage(`{"ok": true, "html": "<b>"}`)
	left = append(left,
		acceptAnswer{MessageID: id, Status: gateway.MessageDelivered, Recipients: []gateway.RecipientStatus{pull}, Response: reply},
		acceptAnswer{MessageID: id, Recipients: []gateway.RecipientStatus{{Address: "a@b.c", Response: reply}}},
		// Times RFC 3339 cannot write: encoding/json fails on them.
		acceptAnswer{MessageID: id, Recipients: []gateway.RecipientStatus{{Address: "a@b.c", UpdatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		acceptAnswer{MessageID: id, Recipients: []gateway.RecipientStatus{{Address: "a@b.c", UpdatedAt: now, DeliveredAt: &time.Time{}, NextRetry: new(time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC))}}},
		acceptAnswer{MessageID: id, Recipients: []gateway.RecipientStatus{{Address: "a@b.c", UpdatedAt: now.In(time.FixedZone("far", 25*3600))}}},
	)
	for _, a := range left {
		assert.False(t, checkAcceptAnswer(t, a), "%+v", a)
	}
}

// FuzzAcceptAnswer: whatever appendAcceptAnswer takes, it writes exactly as
// encoding/json does.
func FuzzAcceptAnswer(f *testing.F) {
	f.Add("0194f3c8-7a2b-7cde-8f01-23456789abcd", "delivered", "bob@example.org", "delivered", 1, int64(1755167400123000000), 0, "", "", "inbox", uint8(2), "")
	f.Add("id", "accepted", "a@b.c", "failed", 0, int64(0), 3600, "AGENT_UNKNOWN", "no agent <x>", "", uint8(1), `{"a":1}`)
	f.Fuzz(func(t *testing.T, id, status, addr, rstatus string, attempts int, unixNano int64, offset int, code, msg, via string, ptrs uint8, reply string) {
		at := time.Unix(0, unixNano).In(time.FixedZone("z", offset))
		r := gateway.RecipientStatus{Address: addr, Status: gateway.State(rstatus), Attempts: attempts, UpdatedAt: at,
			ErrorCode: code, ErrorMessage: msg, Via: via}
		if ptrs&1 != 0 {
			r.NextRetry = &at
		}
		if ptrs&2 != 0 {
			r.DeliveredAt = &at
		}
		if ptrs&4 != 0 {
			r.Response = json.RawMessage(reply)
		}
		a := acceptAnswer{MessageID: id, Status: gateway.MessageState(status), Recipients: []gateway.RecipientStatus{r, r}}
		if ptrs&8 != 0 {
			a.Response = json.RawMessage(reply)
		}
		if ptrs&16 != 0 {
			a.Recipients = nil
		}
		checkAcceptAnswer(t, a)
	})
}

// TestAcceptAnswerKnowsEveryField: appendAcceptAnswer writes the fields
// it knows; a field added to the answer or to gateway.RecipientStatus
// must be added there too, or the fast answer would silently drop it.
func TestAcceptAnswerKnowsEveryField(t *testing.T) {
	names := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			out = append(out, name)
		}
		return out
	}
	assert.Equal(t, []string{"message_id", "status", "recipients", "response"}, names(acceptAnswer{}),
		"acceptAnswer's fields: teach appendAcceptAnswer the new one")
	assert.Equal(t, []string{"address", "status", "attempts", "updated_at", "next_retry", "delivered_at", "error_code", "error_message", "via", "response", "history"},
		names(gateway.RecipientStatus{}), "gateway.RecipientStatus's fields: teach appendRecipientStatus the new one")
}
