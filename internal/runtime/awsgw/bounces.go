package awsgw

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	"github.com/agentry/agentry/internal/adapter/ses"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/delivery"
)

// EmailEvents handles SNS records of the SES configuration set's event
// destination (the email-events function): a permanent bounce or a
// complaint about a bridged email fails its recipient and reports to the
// sender. A record about anything else is dropped with a log line; one
// that could not be recorded fails the invocation, and Lambda retries the
// event (a repeat changes nothing twice).
func (g *Gateway) EmailEvents(ctx context.Context, ev events.SNSEvent) error {
	var errs []error
	for _, rec := range ev.Records {
		bounces, err := bouncesOf([]byte(rec.SNS.Message))
		if err != nil {
			g.log.InfoContext(ctx, "SES notification dropped", "sns_message_id", rec.SNS.MessageID, "reason", err.Error())
			continue
		}
		for _, b := range bounces {
			if err := g.Worker.EmailBounced(ctx, b); err != nil {
				errs = append(errs, fmt.Errorf("bounce of %s for %s: %w", b.MessageID, b.Recipient, err))
			}
		}
	}
	return errors.Join(errs...)
}

// bouncesOf reads the final failures one SES notification reports about
// an email the bridge sent.
func bouncesOf(body []byte) ([]delivery.Bounce, error) {
	n, err := ses.ParseNotification(body)
	if err != nil {
		return nil, err
	}
	if !n.Final() {
		return nil, fmt.Errorf("%s %s is not final", n.Type, n.BounceType)
	}
	id := amtp.NormalizeMessageID(n.AMTPMessageID)
	if !amtp.ValidMessageID(id) {
		return nil, fmt.Errorf("SES message %s carries no AMTP message id (headers not included)", n.MailID)
	}
	out := make([]delivery.Bounce, 0, len(n.Recipients))
	for _, r := range n.Recipients {
		reason := r.Diagnostic
		if reason == "" {
			reason = r.Status
		}
		out = append(out, delivery.Bounce{MessageID: id, Recipient: r.Address, Complaint: n.Type == ses.TypeComplaint, Reason: reason})
	}
	return out, nil
}
