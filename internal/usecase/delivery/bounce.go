package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Bounce is a mail system's word, after it accepted a bridged email, that
// the email did not reach its recipient (an SES bounce) or was refused
// by the person (an SES complaint).
type Bounce struct {
	MessageID string // the AMTP message id the email carried
	Recipient string // the bridged recipient
	// Complaint: the recipient reported the email as unwanted; otherwise
	// it bounced.
	Complaint bool
	// Reason is the mail system's diagnostic, passed on made safe.
	Reason string
}

// EmailBounced turns a recipient the bridge recorded as delivered into a
// failed one and tells the sender, as for any failure. A bounce about a
// recipient that is not a delivered bridged one (unknown, already failed,
// delivered over AMTP) changes nothing: notifications arrive late and
// more than once.
func (w *Worker) EmailBounced(ctx context.Context, b Bounce) error {
	sm, err := w.d.Messages.GetMessage(ctx, b.MessageID)
	if errors.Is(err, gateway.ErrNotFound) {
		w.log.InfoContext(ctx, "bounce for a message that is not stored", "message_id", b.MessageID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("load message %s: %w", b.MessageID, err)
	}
	statuses, err := w.d.Messages.GetStatuses(ctx, b.MessageID)
	if err != nil {
		return fmt.Errorf("load status %s: %w", b.MessageID, err)
	}
	var cur *gateway.RecipientStatus
	for i := range statuses {
		if strings.EqualFold(statuses[i].Address, b.Recipient) {
			cur = &statuses[i]
		}
	}
	if cur == nil || cur.Status != gateway.StateDelivered || cur.Via != ViaSMTP {
		return nil
	}
	m, err := amtp.Parse(sm.Raw, amtp.Limits{MaxRecipients: 1 << 16})
	if err != nil {
		return fmt.Errorf("stored message %s does not parse: %w", b.MessageID, err)
	}
	cause := amtp.Errorf(amtp.CodeRecipientUnavailable, "the recipient's mail system returned the email")
	if b.Complaint {
		cause = amtp.Errorf(amtp.CodeRecipientUnavailable, "the recipient reported the email as unwanted")
	}
	if t := peerText(b.Reason); t != "" {
		cause.Message += ": " + t
	}
	now := w.stamp()
	failed := gateway.RecipientStatus{Address: cur.Address, Status: gateway.StateFailed, Attempts: cur.Attempts, UpdatedAt: now,
		ErrorCode: string(cause.Code), ErrorMessage: cause.Message, Via: ViaSMTP}
	if err := w.d.Messages.UpdateStatuses(ctx, b.MessageID, []gateway.RecipientStatus{failed}); err != nil {
		return fmt.Errorf("record bounce of %s for %s: %w", b.MessageID, cur.Address, err)
	}
	w.cfg.Metrics.DeliveryFailed(ctx, b.MessageID, cur.Address, string(cause.Code))
	w.notifyOutcome(ctx, m, b.MessageID, []gateway.RecipientStatus{failed})
	w.log.WarnContext(ctx, "bridged email bounced", "message_id", b.MessageID, "recipient", cur.Address, "complaint", b.Complaint, "error", cause.Message)
	// The task id keys the report: a repeated notification yields the same
	// report, which the accept path de-duplicates.
	t := gateway.Task{ID: gateway.TaskID(b.MessageID, "bounce/"+strings.ToLower(cur.Address)), MessageID: b.MessageID}
	w.report(ctx, m, t, []string{cur.Address}, cause, max(cur.Attempts, 1), now)
	return nil
}
