package e2e

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

// TestDeadLetterRedrive: a message whose webhook fails for good is
// dead-lettered, listed by the admin (with filters), redriven to the
// webhook, healthy by then, and delivered once; its status shows every
// attempt and the redrive. A bulk redrive by filter does the same for
// another agent's dead letter.
func TestDeadLetterRedrive(t *testing.T) {
	bothRuntimes(t, testDeadLetterRedrive)
}

func testDeadLetterRedrive(t *testing.T, onAWS bool) {
	dns := dnstest.Start(t)
	a := startGateway(t, dns, "a.test", gwOpts{aws: onAWS})
	alice, _ := a.register("alice", "pull", "")
	// Two transient failures, then one that is final; healthy afterwards.
	dora := newPushAgent(t, http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusGone)
	_, dora.secret = a.register("dora", "push", dora.srv.URL)
	erin := newPushAgent(t, http.StatusGone)
	_, erin.secret = a.register("erin", "push", erin.srv.URL)
	before := time.Now().UTC().Add(-time.Second)

	// Two recipients each, so that no Immediate Path attempt is made:
	// every attempt is the queue worker's.
	id := sendAccepted(t, a, alice, []string{"dora@a.test", "alice@a.test"})
	failed := a.waitStatus(alice, id, "dora@a.test", "failed", settleWithin)
	code := str(failed["error_code"])
	other := sendAccepted(t, a, alice, []string{"erin@a.test", "alice@a.test"})
	a.waitStatus(alice, other, "erin@a.test", "failed", settleWithin)

	dead := a.waitDeadLetter("recipient=dora@a.test")
	assert.Equal(t, id, str(dead["message_id"]))
	assert.Equal(t, code, str(dead["failure_reason"]))
	assert.EqualValues(t, 3, dead["attempts"])
	a.waitDeadLetter("recipient=erin@a.test")
	for query, want := range map[string]int{
		"domain=a.test&code=" + code:                                2,
		"recipient=erin":                                            1,
		"code=SCHEMA_VALIDATION_FAILED":                             0,
		"until=" + url.QueryEscape(before.Format(time.RFC3339Nano)): 0,
		"since=" + url.QueryEscape(before.Format(time.RFC3339Nano)): 2,
	} {
		assert.Len(t, a.deadLetters(query), want, "dead letters ?%s", query)
	}
	deadID := str(dead["id"])
	st, one := call(t, "GET", a.url+"/v1/admin/dead-letters/"+deadID, adminKey, nil)
	require.Equal(t, http.StatusOK, st, "%v", one)
	original, _ := one["original_message"].(map[string]any)
	assert.Equal(t, id, str(original["message_id"]))
	st, out := call(t, "GET", a.url+"/v1/admin/dead-letters", alice, nil)
	assert.Equal(t, http.StatusForbidden, st, "an agent lists no dead letters: %v", out)

	st, out = call(t, "POST", a.url+"/v1/admin/dead-letters/"+deadID+"/redrive", adminKey, nil)
	require.Equal(t, http.StatusOK, st, "%v", out)
	a.waitStatus(alice, id, "dora@a.test", "delivered", settleWithin)
	assert.Len(t, dora.received(), 1, "delivered once")
	st, out = call(t, "POST", a.url+"/v1/admin/dead-letters/"+deadID+"/redrive", adminKey, nil)
	assert.Equal(t, http.StatusNotFound, st, "a dead letter is redriven once: %v", out)
	assert.Empty(t, a.deadLetters("recipient=dora@a.test"))

	history, _ := recipientStatus(t, a.status(alice, id), "dora@a.test")["history"].([]any)
	var outcomes []string
	for _, h := range history {
		outcomes = append(outcomes, str(h.(map[string]any)["outcome"]))
	}
	assert.Equal(t, []string{"retrying", "retrying", "failed", "redriven", "delivered"}, outcomes)

	st, out = call(t, "POST", a.url+"/v1/admin/dead-letters/redrive?recipient=erin@a.test", adminKey, nil)
	require.Equal(t, http.StatusOK, st, "%v", out)
	assert.EqualValues(t, 1, out["count"])
	assert.Nil(t, out["next_cursor"])
	a.waitStatus(alice, other, "erin@a.test", "delivered", settleWithin)
	assert.Len(t, erin.received(), 1, "delivered once")
	assert.Empty(t, a.deadLetters(""))
	if onAWS {
		// The table is the dead letters' record: the consumer deleted each
		// from the dead-letter queue once the table held it.
		a.waitDLQEmpty()
	}
}

// waitDLQEmpty polls until the AWS gateway's dead-letter queue holds no
// message, visible, in flight or delayed.
func (x *gw) waitDLQEmpty() {
	x.t.Helper()
	client := sqs.NewFromConfig(x.aws.AWS)
	deadline := time.Now().Add(settleWithin)
	var last map[string]string
	for time.Now().Before(deadline) {
		out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(x.aws.Config.DLQURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
				sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed},
		})
		require.NoError(x.t, err)
		last = out.Attributes
		if !slices.ContainsFunc(slices.Collect(maps.Values(last)), func(v string) bool { return v != "0" }) {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	x.t.Fatalf("the dead-letter queue did not empty: %v", last)
}

func sendAccepted(t *testing.T, x *gw, key string, to []string) string {
	t.Helper()
	st, out := x.send(key, msg("alice@a.test", to, map[string]any{"n": 1}))
	require.Equal(t, http.StatusAccepted, st, "%v", out)
	return str(out["message_id"])
}

// deadLetters lists the admin's dead letters the query selects, every page.
func (x *gw) deadLetters(query string) []map[string]any {
	x.t.Helper()
	var all []map[string]any
	cursor := ""
	for pages := 0; pages < 100; pages++ {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		st, out := call(x.t, "GET", x.url+"/v1/admin/dead-letters?"+q, adminKey, nil)
		require.Equal(x.t, http.StatusOK, st, "%v", out)
		list, _ := out["dead_letters"].([]any)
		for _, d := range list {
			all = append(all, d.(map[string]any))
		}
		if out["next_cursor"] == nil {
			return all
		}
		cursor = str(out["next_cursor"])
	}
	x.t.Fatalf("the dead-letter listing ?%s does not end", query)
	return nil
}

// waitDeadLetter polls until the query lists one dead letter: on AWS the
// record reaches the table when the dead-letter queue's consumer settles it.
func (x *gw) waitDeadLetter(query string) map[string]any {
	x.t.Helper()
	deadline := time.Now().Add(settleWithin)
	for {
		got := x.deadLetters(query)
		if len(got) > 0 || time.Now().After(deadline) {
			require.Len(x.t, got, 1, "dead letters ?%s", query)
			return got[0]
		}
		time.Sleep(25 * time.Millisecond)
	}
}
