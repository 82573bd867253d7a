package amtp

import (
	"bytes"
	"encoding/json"
)

// EncryptedPayload reports whether a payload is end-to-end encrypted in
// the draft's §9.3.2 shape ({"encrypted": true, ...}). Such a payload is
// carried byte for byte and never schema-validated: the gateway cannot
// read it, and must not pretend it did.
func EncryptedPayload(p json.RawMessage) bool {
	p = bytes.TrimSpace(p)
	if len(p) == 0 || p[0] != '{' {
		return false
	}
	var probe struct {
		Encrypted bool `json:"encrypted"`
	}
	return json.Unmarshal(p, &probe) == nil && probe.Encrypted
}
