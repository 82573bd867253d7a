package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// Bounds of a wrapped email's payload (schema agntcy:email.message.v1),
// chosen so that even text made of characters JSON escapes sixfold stays
// below the 10 MB AMTP message limit.
const (
	MaxWrappedText        = 512 << 10 // bytes of the text body kept
	MaxWrappedHTML        = 1 << 20   // bytes of the HTML body kept
	MaxWrappedAddresses   = 100       // entries of to and of cc
	MaxWrappedAttachments = 100       // attachment references
	MaxWrappedRefs        = 20        // entries of in_reply_to
)

// WrappedEmail is the payload of a message of schema SchemaWrapped
// (documented in docs/email-bridge.md).
type WrappedEmail struct {
	From        WrappedMailbox      `json:"from"`
	To          []WrappedMailbox    `json:"to"`
	Cc          []WrappedMailbox    `json:"cc"`
	Subject     string              `json:"subject"`
	Text        string              `json:"text"`
	HTML        string              `json:"html"`
	Date        string              `json:"date,omitempty"`
	MessageID   string              `json:"message_id,omitempty"`
	InReplyTo   []string            `json:"in_reply_to"`
	Attachments []WrappedAttachment `json:"attachments"`
	Truncated   bool                `json:"truncated"`
}

// WrappedMailbox is one address of a wrapped email.
type WrappedMailbox struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// WrappedAttachment refers to an attachment the bridge did not keep.
type WrappedAttachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

// Wrap makes the AMTP message (schema SchemaWrapped) that carries e to
// the local agent to, from sender. Its message_id and idempotency_key
// are derived from the email's Message-ID (or, without one, from the raw
// mail's digest), its From, sender and to, so that the same mail
// delivered twice is accepted once; the timestamp is now.
func Wrap(e *Email, to, sender amtp.Address, now time.Time) (*amtp.Message, error) {
	if e == nil || len(e.From) == 0 {
		return nil, fmt.Errorf("email: wrap: the email has no From")
	}
	if !validAddress(to) || !validAddress(sender) {
		return nil, fmt.Errorf("email: wrap: invalid sender or recipient")
	}
	payload, err := wrappedPayload(e)
	if err != nil {
		return nil, fmt.Errorf("email: wrap %s: %w", clip(e.MessageID, 100), err)
	}
	basis := wrapBasis(e, to, sender)
	return &amtp.Message{
		Version:        amtp.Version,
		MessageID:      derivedUUID(basis),
		IdempotencyKey: "email-" + digestHex("key", basis)[:56],
		Timestamp:      now.UTC().Truncate(time.Millisecond),
		Sender:         sender.String(),
		Recipients:     []string{to.String()},
		Subject:        clip(strings.TrimSpace(oneLine(e.Subject)), amtp.MaxSubjectLen),
		Schema:         SchemaWrapped,
		Payload:        payload,
	}, nil
}

func wrappedPayload(e *Email) (json.RawMessage, error) {
	w := WrappedEmail{
		From:        wrappedMailbox(e.From[0]),
		To:          wrappedMailboxes(e.To),
		Cc:          wrappedMailboxes(e.Cc),
		Subject:     clip(oneLine(e.Subject), amtp.MaxSubjectLen),
		Text:        clip(displayText(e.Text), MaxWrappedText),
		HTML:        clip(strings.ToValidUTF8(e.HTML, "\uFFFD"), MaxWrappedHTML),
		MessageID:   clip(e.MessageID, 998),
		InReplyTo:   []string{},
		Attachments: []WrappedAttachment{},
	}
	w.Truncated = len(w.Text) < len(displayText(e.Text)) || len(w.HTML) < len(e.HTML) ||
		len(e.To) > MaxWrappedAddresses || len(e.Cc) > MaxWrappedAddresses ||
		len(e.Attachments) > MaxWrappedAttachments || len(e.InReplyTo) > MaxWrappedRefs
	if !e.Date.IsZero() {
		w.Date = amtp.FormatTime(e.Date)
	}
	for i, id := range e.InReplyTo {
		if i == MaxWrappedRefs {
			break
		}
		w.InReplyTo = append(w.InReplyTo, clip(id, 998))
	}
	for i, a := range e.Attachments {
		if i == MaxWrappedAttachments {
			break
		}
		w.Attachments = append(w.Attachments, WrappedAttachment{
			Filename:    clip(oneLine(a.Filename), 255),
			ContentType: clip(oneLine(a.ContentType), 255),
			Size:        a.Size,
			SHA256:      a.SHA256,
		})
	}
	// encoding/json writes invalid UTF-8 as U+FFFD and every control
	// character escaped, so the payload is I-JSON.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

func wrappedMailbox(m Mailbox) WrappedMailbox {
	return WrappedMailbox{Name: clip(oneLine(m.Name), 200), Address: clip(oneLine(m.Address), 320)}
}

func wrappedMailboxes(list []Mailbox) []WrappedMailbox {
	out := make([]WrappedMailbox, 0, min(len(list), MaxWrappedAddresses))
	for i, m := range list {
		if i == MaxWrappedAddresses {
			break
		}
		out = append(out, wrappedMailbox(m))
	}
	return out
}

// wrapBasis names one delivery of one email: the same mail to the same
// agent gives the same basis. From and sender are part of it so that a
// stranger's mail reusing someone's Message-ID cannot take that mail's
// idempotency key.
func wrapBasis(e *Email, to, sender amtp.Address) string {
	id := "raw:" + hex.EncodeToString(e.digest[:])
	if e.MessageID != "" {
		id = "mid:" + e.MessageID
	}
	return strings.Join([]string{id, strings.ToLower(e.From[0].Address), sender.Key(), to.Key()}, "\x00")
}

func digestHex(purpose, basis string) string {
	sum := sha256.Sum256([]byte("agentry-email-" + purpose + "\x00" + basis))
	return hex.EncodeToString(sum[:])
}

// derivedUUID is an RFC 9562 version 8 (custom) UUID from basis.
func derivedUUID(basis string) string {
	sum := sha256.Sum256([]byte("agentry-email-id\x00" + basis))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
