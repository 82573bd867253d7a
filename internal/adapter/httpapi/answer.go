package httpapi

import (
	"strconv"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// appendAcceptAnswer appends the JSON of a exactly as json.Marshal writes
// it, for the answer of every accepted message: encoding/json cost about a
// tenth of the handler's time and half a dozen allocations per message
// (reflection, time.Time.MarshalJSON, its pooled buffer regrowing after
// each GC). It covers only what it can be sure to write identically — no
// reply, and strings that encoding/json copies unescaped — and answers
// ok=false for anything else, which the caller hands to encoding/json.
// TestAcceptAnswerMatchesEncodingJSON holds it to that.
func appendAcceptAnswer(b []byte, a *acceptAnswer) (_ []byte, ok bool) {
	if len(a.Response) > 0 {
		return b, false
	}
	b = append(b, `{"message_id":`...)
	if b, ok = appendPlainString(b, a.MessageID); !ok {
		return b, false
	}
	b = append(b, `,"status":`...)
	if b, ok = appendPlainString(b, string(a.Status)); !ok {
		return b, false
	}
	b = append(b, `,"recipients":`...)
	if a.Recipients == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range a.Recipients {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendRecipientStatus(b, &a.Recipients[i]); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}

// appendRecipientStatus writes r as encoding/json does, following the
// field order and omitempty tags of gateway.RecipientStatus.
func appendRecipientStatus(b []byte, r *gateway.RecipientStatus) (_ []byte, ok bool) {
	if len(r.Response) > 0 {
		return b, false
	}
	b = append(b, `{"address":`...)
	if b, ok = appendPlainString(b, r.Address); !ok {
		return b, false
	}
	b = append(b, `,"status":`...)
	if b, ok = appendPlainString(b, string(r.Status)); !ok {
		return b, false
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(r.Attempts), 10)
	b = append(b, `,"updated_at":`...)
	if b, ok = appendTime(b, r.UpdatedAt); !ok {
		return b, false
	}
	if r.NextRetry != nil {
		b = append(b, `,"next_retry":`...)
		if b, ok = appendTime(b, *r.NextRetry); !ok {
			return b, false
		}
	}
	if r.DeliveredAt != nil {
		b = append(b, `,"delivered_at":`...)
		if b, ok = appendTime(b, *r.DeliveredAt); !ok {
			return b, false
		}
	}
	for _, f := range [...]struct{ name, v string }{
		{`,"error_code":`, r.ErrorCode}, {`,"error_message":`, r.ErrorMessage}, {`,"via":`, r.Via},
	} {
		if f.v == "" {
			continue
		}
		b = append(b, f.name...)
		if b, ok = appendPlainString(b, f.v); !ok {
			return b, false
		}
	}
	if len(r.History) > 0 {
		b = append(b, `,"history":[`...)
		for i := range r.History {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendAttempt(b, &r.History[i]); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}

// appendAttempt writes h as encoding/json does (gateway.AttemptRecord).
func appendAttempt(b []byte, h *gateway.AttemptRecord) (_ []byte, ok bool) {
	b = append(b, `{"at":`...)
	if b, ok = appendTime(b, h.At); !ok {
		return b, false
	}
	b = append(b, `,"outcome":`...)
	if b, ok = appendPlainString(b, h.Outcome); !ok {
		return b, false
	}
	if h.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(h.Attempt), 10)
	}
	if h.ErrorCode != "" {
		b = append(b, `,"error_code":`...)
		if b, ok = appendPlainString(b, h.ErrorCode); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendPlainString quotes s when encoding/json would write its bytes
// unchanged: printable ASCII other than the quote, the backslash and the
// characters it escapes for HTML (<, >, &).
func appendPlainString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// appendTime writes t as time.Time.MarshalJSON does (AppendText is the
// same RFC 3339 form with the same range checks, without the quotes).
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return b, false
	}
	return append(b, '"'), true
}
