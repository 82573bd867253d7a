package functions_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// TestEmailFunctionsUnderRuntimeAPI runs the email bridge's functions as
// SES and SNS invoke them, fed with events/ses-receipt.json and
// events/sns-ses-bounce.json: inbound-email reads the email the receipt
// rule stored and delivers it to dave; email-events turns a bounce of a
// bridged email into a failed recipient and a report to its sender.
func TestEmailFunctionsUnderRuntimeAPI(t *testing.T) {
	be := newBackend(t)
	env, store := append(be.env, "AGENTRY_PUBLIC_URL=https://amtp.example.com"), be.store
	ctx := context.Background()

	api := startFunction(t, "api", env)
	status, out := apiCall(t, api, "POST", "/v1/admin/agents", adminKey, `{"address":"dave","delivery_mode":"pull"}`)
	require.Equal(t, http.StatusCreated, status, "%v", out)
	daveKey := out["api_key"].(string)

	// 1. inbound-email: the stored email becomes dave's message.
	var receipt events.SimpleEmailEvent
	loadEvent(t, "ses-receipt.json", &receipt)
	sesID := receipt.Records[0].SES.Mail.MessageID
	bucket := envValue(env, "AGENTRY_BUCKET")
	c := s3.NewFromConfig(awstest.Config(t), func(o *s3.Options) { o.UsePathStyle = true })
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("inbound-email/" + sesID), Body: strings.NewReader(
		"From: Bob <bob@mail.example>\r\nTo: dave@example.com\r\nSubject: Lunch?\r\nMessage-ID: <lunch-1@mail.example>\r\n" +
			"Date: Mon, 23 Nov 2026 22:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nNoon?\r\n")})
	require.NoError(t, err)
	inbound := startFunction(t, "inbound-email", env)
	payload, _ := json.Marshal(receipt)
	res := inbound.invoke(t, payload)
	require.False(t, res.Err, "%s", res.Payload)
	inbox, _, err := store.ListInbox(ctx, "dave@example.com", 10, "")
	require.NoError(t, err)
	require.Len(t, inbox, 1)
	assert.Contains(t, string(inbox[0].Raw), `"sender":"bob@mail.example"`, "DMARC passed: bob is the sender")
	assert.Contains(t, string(inbox[0].Raw), `"schema":"agntcy:email.message.v1"`)

	// 2. email-events: dave's message to bob was bridged (recorded here as
	// the deliver function records it); SES reports a bounce.
	status, out = apiCall(t, api, "POST", "/v1/messages", daveKey, `{"sender":"dave@example.com","recipients":["bob@mail.example"],"subject":"ping","payload":{"n":1}}`)
	require.Equal(t, http.StatusAccepted, status, "%v", out)
	id := out["message_id"].(string)
	now := time.Now().UTC().Truncate(time.Millisecond)
	require.NoError(t, store.UpdateStatuses(ctx, id, []gateway.RecipientStatus{{Address: "bob@mail.example", Status: gateway.StateDelivered, Attempts: 1, UpdatedAt: now, DeliveredAt: &now, Via: "smtp"}}))
	var bounce events.SNSEvent
	loadEvent(t, "sns-ses-bounce.json", &bounce)
	bounce.Records[0].SNS.Message = strings.ReplaceAll(bounce.Records[0].SNS.Message, "0194f5d2-7c1a-7def-8a3b-2f1c9d8e7a62", id)
	notes := startFunction(t, "email-events", env)
	payload, _ = json.Marshal(bounce)
	res = notes.invoke(t, payload)
	require.False(t, res.Err, "%s", res.Payload)
	st, err := store.GetStatuses(ctx, id)
	require.NoError(t, err)
	require.Len(t, st, 1)
	assert.Equal(t, gateway.StateFailed, st[0].Status)
	assert.Contains(t, st[0].ErrorMessage, "user unknown")
	require.Eventually(t, func() bool {
		inbox, _, err := store.ListInbox(ctx, "dave@example.com", 10, "")
		if err != nil {
			return false
		}
		for _, e := range inbox {
			if strings.Contains(string(e.Raw), `"delivery_failure"`) && strings.Contains(string(e.Raw), id) {
				return true
			}
		}
		return false
	}, settleWithin, 100*time.Millisecond, "dave received the failure report")
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
