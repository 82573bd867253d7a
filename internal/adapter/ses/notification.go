package ses

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/agentry/agentry/internal/core/email"
)

// Bounds of what ParseNotification reads: SNS carries at most 256 KiB,
// and SES lists at most 50 recipients per email.
const (
	MaxNotificationBytes = 256 << 10
	maxNotifiedRcpts     = 100
	maxNotifiedHeaders   = 500
	maxDiagnostic        = 200
)

// Notification types SES sends (notificationType, or eventType for a
// configuration set's event destination).
const (
	TypeBounce    = "Bounce"
	TypeComplaint = "Complaint"
	TypeDelivery  = "Delivery"
)

// Bounce types: a Permanent bounce is final for its recipients, a
// Transient one may pass.
const (
	BouncePermanent    = "Permanent"
	BounceTransient    = "Transient"
	BounceUndetermined = "Undetermined"
)

// ErrNotNotification is returned for a body that is not an SES
// notification (an SNS subscription confirmation, another event type).
var ErrNotNotification = errors.New("ses: not a bounce, complaint or delivery notification")

// Notification is one SES feedback notification about one sent email.
type Notification struct {
	Type          string // TypeBounce, TypeComplaint or TypeDelivery
	BounceType    string // for TypeBounce: BouncePermanent, BounceTransient, BounceUndetermined
	BounceSubType string // for TypeBounce: General, NoEmail, Suppressed, …
	Recipients    []Recipient
	MailID        string // SES's MessageId: what Transport.SendEmail returned
	// AMTPMessageID is the X-AMTP-Message-ID header of the email, when SES
	// included the original headers; "" otherwise.
	AMTPMessageID string
}

// Recipient is one recipient a notification is about.
type Recipient struct {
	Address string
	Status  string // the enhanced status code, e.g. 5.1.1 (bounces)
	// Diagnostic is the remote server's answer, clipped and control-free.
	Diagnostic string
}

// Final reports whether the notification ends delivery to its recipients
// in failure: a permanent bounce, or a complaint (the person does not
// want this mail).
func (n Notification) Final() bool {
	return (n.Type == TypeBounce && n.BounceType == BouncePermanent) || n.Type == TypeComplaint
}

type snsEnvelope struct {
	Type    string `json:"Type"`
	Message string `json:"Message"`
}

type sesNotification struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Bounce           *struct {
		BounceType        string `json:"bounceType"`
		BounceSubType     string `json:"bounceSubType"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint *struct {
		ComplainedRecipients []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
	} `json:"complaint"`
	Delivery *struct {
		Recipients []string `json:"recipients"`
	} `json:"delivery"`
	Mail struct {
		MessageID string `json:"messageId"`
		Headers   []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
	} `json:"mail"`
}

// ParseNotification reads an SES notification, either as SNS delivers it
// (the envelope whose Message is the SES JSON) or the SES JSON itself.
func ParseNotification(body []byte) (Notification, error) {
	if len(body) > MaxNotificationBytes {
		return Notification{}, fmt.Errorf("ses: notification of %d bytes, more than %d", len(body), MaxNotificationBytes)
	}
	var env snsEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Notification{}, fmt.Errorf("ses: notification: %w", err)
	}
	if env.Type != "" {
		if env.Type != "Notification" || env.Message == "" {
			return Notification{}, ErrNotNotification
		}
		body = []byte(env.Message)
	}
	var raw sesNotification
	if err := json.Unmarshal(body, &raw); err != nil {
		return Notification{}, fmt.Errorf("ses: notification message: %w", err)
	}
	n := Notification{Type: raw.NotificationType, MailID: clean(raw.Mail.MessageID, 200)}
	if n.Type == "" {
		n.Type = raw.EventType
	}
	switch {
	case n.Type == TypeBounce && raw.Bounce != nil:
		n.BounceType = clean(raw.Bounce.BounceType, 40)
		n.BounceSubType = clean(raw.Bounce.BounceSubType, 40)
		for _, r := range raw.Bounce.BouncedRecipients {
			n.Recipients = append(n.Recipients, Recipient{
				Address: clean(r.EmailAddress, 320), Status: clean(r.Status, 20), Diagnostic: clean(r.DiagnosticCode, maxDiagnostic),
			})
		}
	case n.Type == TypeComplaint && raw.Complaint != nil:
		for _, r := range raw.Complaint.ComplainedRecipients {
			n.Recipients = append(n.Recipients, Recipient{Address: clean(r.EmailAddress, 320)})
		}
	case n.Type == TypeDelivery && raw.Delivery != nil:
		for _, r := range raw.Delivery.Recipients {
			n.Recipients = append(n.Recipients, Recipient{Address: clean(r, 320)})
		}
	default:
		return Notification{}, ErrNotNotification
	}
	if len(n.Recipients) > maxNotifiedRcpts {
		n.Recipients = n.Recipients[:maxNotifiedRcpts]
	}
	for i, h := range raw.Mail.Headers {
		if i == maxNotifiedHeaders {
			break
		}
		if strings.EqualFold(h.Name, email.HeaderMessageID) {
			n.AMTPMessageID = clean(h.Value, 200)
			break
		}
	}
	return n, nil
}

// clean keeps s to n bytes of printable ASCII, trimmed: everything in a
// notification is text some remote server wrote.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = s[:n]
	}
	return s
}
