package amtp

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Version is the protocol version this gateway writes.
const Version = "1.0"

// Response types a message may carry in response_type.
const (
	ResponseWorkflowResponse = "workflow_response"
	ResponseWorkflowError    = "workflow_error"
	ResponseWorkflowResult   = "workflow_result"
)

// TimeLayout is how every timestamp is written: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatTime renders t the way AMTP timestamps are stored.
func FormatTime(t time.Time) string { return t.UTC().Truncate(time.Millisecond).Format(TimeLayout) }

// Message is one AMTP message. Payload and Coordination are kept as the raw
// JSON the sender wrote so that they cross every hop unchanged (encrypted
// payloads, fields a newer peer added to coordination). Unknown top-level
// members are kept in Extensions for the same reason. MessageID, InReplyTo
// and WorkflowID hold ids in their canonical case (NormalizeMessageID).
type Message struct {
	Version        string
	MessageID      string
	IdempotencyKey string
	Timestamp      time.Time
	Sender         string
	Recipients     []string
	Subject        string
	Schema         string
	InReplyTo      string
	WorkflowID     string // draft §4.2.2: the workflow it starts, belongs to or answers
	ResponseType   string
	Headers        map[string]string
	Coordination   json.RawMessage
	Payload        json.RawMessage
	Attachments    []Attachment
	Signature      *Signature
	Extensions     map[string]json.RawMessage
}

// Attachment is an external file reference (draft §4.1).
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Hash        string `json:"hash,omitempty"`
	URL         string `json:"url"`
}

// Signature is the detached signature over the JCS form of the message
// without its signature member.
type Signature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"keyid,omitempty"`
	Value     string `json:"value"`
}

// SenderAddress parses the (already validated) sender.
func (m *Message) SenderAddress() Address {
	a, _ := ParseAddress(m.Sender)
	return a
}

// RecipientAddresses parses the (already validated) recipients.
func (m *Message) RecipientAddresses() []Address {
	out := make([]Address, 0, len(m.Recipients))
	for _, r := range m.Recipients {
		a, _ := ParseAddress(r)
		out = append(out, a)
	}
	return out
}

// Complete fills in what a client may leave out: version, message_id
// (UUIDv7), idempotency_key (UUIDv4, never derived from content) and
// timestamp. Members already set are left alone.
func (m *Message) Complete(now time.Time) {
	if m.Version == "" {
		m.Version = Version
	}
	if m.MessageID == "" {
		m.MessageID = newUUIDv7(now)
	}
	if m.IdempotencyKey == "" {
		m.IdempotencyKey = NewUUIDv4()
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = now.UTC().Truncate(time.Millisecond)
	}
}

// MarshalJSON writes the message with members in a fixed order. It never
// fails for a message that came out of Parse.
func (m *Message) MarshalJSON() ([]byte, error) {
	return m.AppendJSON(make([]byte, 0, 256+len(m.Payload)+len(m.Coordination))), nil
}

// AppendJSON appends the JSON form of m to dst.
func (m *Message) AppendJSON(dst []byte) []byte {
	return m.appendJSON(dst, true)
}

// AppendUnsignedJSON appends the JSON form of m without the signature
// member: the input to canonicalisation for signing.
func (m *Message) AppendUnsignedJSON(dst []byte) []byte {
	return m.appendJSON(dst, false)
}

func (m *Message) appendJSON(b []byte, withSignature bool) []byte {
	b = append(b, `{"version":`...)
	b = appendString(b, m.Version)
	if m.MessageID != "" {
		b = append(b, `,"message_id":`...)
		b = appendString(b, m.MessageID)
	}
	if m.IdempotencyKey != "" {
		b = append(b, `,"idempotency_key":`...)
		b = appendString(b, m.IdempotencyKey)
	}
	if !m.Timestamp.IsZero() {
		b = append(b, `,"timestamp":"`...)
		b = m.Timestamp.UTC().AppendFormat(b, TimeLayout)
		b = append(b, '"')
	}
	b = append(b, `,"sender":`...)
	b = appendString(b, m.Sender)
	b = append(b, `,"recipients":[`...)
	for i, r := range m.Recipients {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, r)
	}
	b = append(b, ']')
	if m.Subject != "" {
		b = append(b, `,"subject":`...)
		b = appendString(b, m.Subject)
	}
	if m.Schema != "" {
		b = append(b, `,"schema":`...)
		b = appendString(b, m.Schema)
	}
	if m.InReplyTo != "" {
		b = append(b, `,"in_reply_to":`...)
		b = appendString(b, m.InReplyTo)
	}
	if m.WorkflowID != "" {
		b = append(b, `,"workflow_id":`...)
		b = appendString(b, m.WorkflowID)
	}
	if m.ResponseType != "" {
		b = append(b, `,"response_type":`...)
		b = appendString(b, m.ResponseType)
	}
	if len(m.Coordination) > 0 {
		b = append(b, `,"coordination":`...)
		b = append(b, m.Coordination...)
	}
	if len(m.Headers) > 0 {
		b = append(b, `,"headers":{`...)
		keys := make([]string, 0, len(m.Headers))
		for k := range m.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, m.Headers[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"payload":`...)
	if len(m.Payload) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, m.Payload...)
	}
	if len(m.Attachments) > 0 {
		b = append(b, `,"attachments":[`...)
		for i, a := range m.Attachments {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"filename":`...)
			b = appendString(b, a.Filename)
			b = append(b, `,"content_type":`...)
			b = appendString(b, a.ContentType)
			b = append(b, `,"size":`...)
			b = strconv.AppendInt(b, a.Size, 10)
			if a.Hash != "" {
				b = append(b, `,"hash":`...)
				b = appendString(b, a.Hash)
			}
			b = append(b, `,"url":`...)
			b = appendString(b, a.URL)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if withSignature && m.Signature != nil {
		b = append(b, `,"signature":{"algorithm":`...)
		b = appendString(b, m.Signature.Algorithm)
		if m.Signature.KeyID != "" {
			b = append(b, `,"keyid":`...)
			b = appendString(b, m.Signature.KeyID)
		}
		b = append(b, `,"value":`...)
		b = appendString(b, m.Signature.Value)
		b = append(b, '}')
	}
	if len(m.Extensions) > 0 {
		keys := make([]string, 0, len(m.Extensions))
		for k := range m.Extensions {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b = append(b, ',')
			b = appendString(b, k)
			b = append(b, ':')
			b = append(b, m.Extensions[k]...)
		}
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Unlike encoding/json it does not
// escape <, > and &: messages are never embedded in HTML, and leaving them
// alone keeps the bytes equal to what the sender wrote. Invalid UTF-8 cannot
// reach here (Parse rejects it).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendContentDigestInput appends the JSON over which idempotency
// compares two submissions: what the sender asked to be delivered, without
// the fields the gateway fills in (timestamp, generated ids). A
// client-supplied message_id is part of the content, and so are
// in_reply_to and workflow_id. Ids are compared in their canonical case,
// as Parse stores them.
func (m *Message) AppendContentDigestInput(dst []byte) []byte {
	c := *m
	c.Version = ""
	c.IdempotencyKey = ""
	c.Timestamp = time.Time{}
	c.Signature = nil
	return c.appendJSON(dst, false)
}

// validUTF8NoControl reports whether s is valid UTF-8 without C0 controls or DEL.
func validUTF8NoControl(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// isJSONNull reports whether raw is the literal null.
func isJSONNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// ClipSubject shortens s to at most MaxSubjectLen bytes at a character
// boundary, for subjects the gateway composes (a failure report's
// "Delivery failure: <original subject>").
func ClipSubject(s string) string {
	if len(s) <= MaxSubjectLen {
		return s
	}
	cut := MaxSubjectLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
