// Package ses is the AWS side of the email bridge (draft §11.2): sending
// bridged emails through SES v2 (delivery.EmailTransport), reading SES
// bounce, complaint and delivery notifications, and reading SES's
// verdicts on received mail.
package ses

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"github.com/agentry/agentry/internal/usecase/delivery"
)

// Transport sends raw emails with SES v2 SendEmail.
type Transport struct {
	client           *sesv2.Client
	configurationSet string
}

var _ delivery.EmailTransport = (*Transport)(nil)

// NewTransport sends through client; configurationSet, when set, names
// the SES configuration set whose event destinations report bounces and
// complaints.
func NewTransport(client *sesv2.Client, configurationSet string) *Transport {
	return &Transport{client: client, configurationSet: configurationSet}
}

// SendEmail sends e.Raw as it is (SES adds its DKIM signature) to e.To
// alone, and returns SES's MessageId, which bounce and complaint
// notifications name as mail.messageId.
func (t *Transport) SendEmail(ctx context.Context, e delivery.OutboundEmail) (string, error) {
	in := &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(e.From),
		Destination:      &types.Destination{ToAddresses: []string{e.To}},
		Content:          &types.EmailContent{Raw: &types.RawMessage{Data: e.Raw}},
	}
	if t.configurationSet != "" {
		in.ConfigurationSetName = aws.String(t.configurationSet)
	}
	out, err := t.client.SendEmail(ctx, in)
	if err != nil {
		return "", classify(err)
	}
	return aws.ToString(out.MessageId), nil
}

// classify makes SES's refusals of the email itself final. Refusals that
// come from our account or setup (an unverified MAIL FROM domain, a
// suspended or paused account, a missing configuration set, throttling)
// are retried: the operator can fix them before the retries run out, and
// the sender's message is not at fault. The reason names the SES error
// code only: SES's text names our identities and region.
func classify(err error) error {
	var (
		rejected   *types.MessageRejected
		badRequest *types.BadRequestException
	)
	switch {
	case errors.As(err, &rejected):
		return &delivery.EmailRejected{Reason: "the mail service refused the email (MessageRejected)"}
	case errors.As(err, &badRequest):
		return &delivery.EmailRejected{Reason: "the mail service refused the email as invalid (BadRequest)"}
	}
	return fmt.Errorf("ses: send: %w", err)
}
