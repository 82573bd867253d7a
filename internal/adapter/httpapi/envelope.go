package httpapi

import (
	"bytes"
	"encoding/json"
)

// envelopePrefix is how much of a message body is read before the rest:
// enough for the sender and recipients of any real message, which every
// client writes before the payload.
const envelopePrefix = 64 << 10

// envelope finds the sender and recipients among the leading members of a
// message's JSON, from a prefix of it, so that a submission the caller
// may not make is refused before its body is read in full. ok is false
// when the prefix does not show both (another order, malformed JSON, a
// prefix that ends first): then the whole body decides, as it always does.
// The full parse still checks everything; this only refuses early.
func envelope(prefix []byte) (sender string, recipients []string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(prefix))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", nil, false
	}
	var haveSender, haveRecipients bool
	for dec.More() && !(haveSender && haveRecipients) {
		t, err := dec.Token()
		if err != nil {
			return "", nil, false
		}
		name, _ := t.(string)
		switch {
		case name == "sender" && !haveSender:
			if dec.Decode(&sender) != nil {
				return "", nil, false
			}
			haveSender = true
		case name == "recipients" && !haveRecipients:
			if dec.Decode(&recipients) != nil {
				return "", nil, false
			}
			haveRecipients = true
		default:
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return "", nil, false
			}
		}
	}
	return sender, recipients, haveSender && haveRecipients
}
