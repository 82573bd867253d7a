package ses_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/ses"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/delivery"
)

// sentRaw reads back from moto the raw emails its SES backend has sent,
// by SES message id.
func sentRaw(t *testing.T) map[string]string {
	t.Helper()
	resp, err := http.Get(awstest.Endpoint(t) + "/moto-api/data.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	require.NoError(t, err)
	var data map[string]map[string][]struct {
		ID           string   `json:"id"`
		RawData      string   `json:"raw_data"`
		Destinations []string `json:"destinations"`
	}
	require.NoError(t, json.Unmarshal(body, &data))
	out := map[string]string{}
	for _, m := range data["ses"]["RawMessage"] {
		out[m.ID] = m.RawData
	}
	return out
}

func client(t *testing.T) *sesv2.Client {
	t.Helper()
	c := sesv2.NewFromConfig(awstest.Config(t))
	_, err := c.CreateEmailIdentity(context.Background(), &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String("retailer.example")})
	if err != nil {
		var ae smithy.APIError
		require.True(t, errors.As(err, &ae) && ae.ErrorCode() == "AlreadyExistsException", "%v", err)
	}
	return c
}

func TestTransportSends(t *testing.T) {
	raw := []byte("From: \"agent@retailer.example via AMTP\" <amtp-bridge@retailer.example>\r\n" +
		"To: <orders@supplier.example>\r\nSubject: [AMTP] Order\r\nX-AMTP-Message-ID: 0190b4b2-6f2a-7cc3-98c4-dc0c0c07398f\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n")
	for _, set := range []string{"", "agentry-bridge"} {
		t.Run("configuration set "+set, func(t *testing.T) {
			tr := ses.NewTransport(client(t), set)
			id, err := tr.SendEmail(context.Background(), delivery.OutboundEmail{From: "amtp-bridge@retailer.example", To: "orders@supplier.example", Raw: raw})
			require.NoError(t, err)
			require.NotEmpty(t, id)
			sent := sentRaw(t)
			require.Contains(t, sent, id)
			assert.Equal(t, string(raw), sent[id])
		})
	}
}

func TestTransportRejection(t *testing.T) {
	tr := ses.NewTransport(client(t), "")
	// moto, like SES, refuses a sender identity nobody verified.
	_, err := tr.SendEmail(context.Background(), delivery.OutboundEmail{
		From: "amtp-bridge@unverified.example", To: "orders@supplier.example",
		Raw: []byte("From: amtp-bridge@unverified.example\r\nTo: orders@supplier.example\r\nSubject: x\r\n\r\nx\r\n"),
	})
	require.Error(t, err)
	require.True(t, delivery.IsEmailRejected(err), "%v", err)
	assert.Equal(t, "email rejected: the mail service refused the email (MessageRejected)", err.Error())
	assert.NotContains(t, err.Error(), "unverified.example", "SES's text stays out of the reason")
}

// TestTransportClassifies: SES's answers that concern our account or
// setup are retried; those about the email are final.
func TestTransportClassifies(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		final bool
	}{
		{"message rejected", &types.MessageRejected{Message: aws.String("Email address is not verified: amtp-bridge@retailer.example")}, true},
		{"bad request", &types.BadRequestException{Message: aws.String("Illegal address")}, true},
		{"MAIL FROM domain not verified", &types.MailFromDomainNotVerifiedException{Message: aws.String("x")}, false},
		{"account suspended", &types.AccountSuspendedException{Message: aws.String("x")}, false},
		{"sending paused", &types.SendingPausedException{Message: aws.String("x")}, false},
		{"throttled", &types.TooManyRequestsException{Message: aws.String("x")}, false},
		{"limit exceeded", &types.LimitExceededException{Message: aws.String("x")}, false},
		{"configuration set missing", &types.NotFoundException{Message: aws.String("x")}, false},
		{"network", errors.New("connection reset by peer"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := awstest.WithFaults(awstest.Config(t), awstest.Faults{Fail: awstest.FailCalls[*sesv2.SendEmailInput](1, nil, c.err)})
			_, err := ses.NewTransport(sesv2.NewFromConfig(cfg), "agentry-bridge").SendEmail(context.Background(),
				delivery.OutboundEmail{From: "amtp-bridge@retailer.example", To: "orders@supplier.example", Raw: []byte("Subject: x\r\n\r\nx\r\n")})
			require.Error(t, err)
			assert.Equal(t, c.final, delivery.IsEmailRejected(err), "%v", err)
			if c.final {
				assert.NotContains(t, err.Error(), "retailer.example", "SES's text stays out of the reason")
			}
		})
	}
}
