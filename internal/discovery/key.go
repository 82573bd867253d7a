package discovery

import (
	"encoding/base64"
	"strings"
)

// Key algorithms accepted in the k= tag.
const (
	KeyRSA     = "rsa"
	KeyEC      = "ec"
	KeyEd25519 = "ed25519"
)

// maxKeyB64 bounds the p= tag: a 16384-bit RSA SubjectPublicKeyInfo is
// about 2.8 KB of base64, so anything far beyond that is not a key.
const maxKeyB64 = 8192

// KeyRecord is a parsed <selector>._amtpkey.<domain> TXT record. PublicKey
// holds the decoded p= bytes (a SubjectPublicKeyInfo by convention); this
// package does not interpret them.
type KeyRecord struct {
	Algorithm string
	PublicKey []byte
}

// ParseKeyTXT parses the text of a key record: v=amtp1 first, then k and p.
// An empty p= means the key was revoked and yields ErrKeyRevoked.
func ParseKeyTXT(txt string) (KeyRecord, error) {
	tags, err := splitTags(txt)
	if err != nil {
		return KeyRecord{}, err
	}
	if len(tags) == 0 || tags[0].key != "v" || !strings.EqualFold(tags[0].value, Version) {
		return KeyRecord{}, invalidRecord("key record does not start with v=%s", Version)
	}
	var (
		kr           KeyRecord
		haveK, haveP bool
		p            string
	)
	for _, t := range tags[1:] {
		switch t.key {
		case "k":
			haveK = true
			kr.Algorithm = strings.ToLower(t.value)
		case "p":
			haveP = true
			p = t.value
		}
	}
	if !haveK {
		return KeyRecord{}, invalidRecord("key record has no k= tag")
	}
	switch kr.Algorithm {
	case KeyRSA, KeyEC, KeyEd25519:
	default:
		return KeyRecord{}, invalidRecord("unsupported key algorithm %q", clip(kr.Algorithm))
	}
	if !haveP {
		return KeyRecord{}, invalidRecord("key record has no p= tag")
	}
	// Publishers wrap long keys the way DKIM allows, so blanks inside the
	// base64 are folding, not data.
	p = strings.Join(strings.Fields(p), "")
	if p == "" {
		return KeyRecord{}, ErrKeyRevoked
	}
	if len(p) > maxKeyB64 {
		return KeyRecord{}, invalidRecord("p= is longer than %d bytes", maxKeyB64)
	}
	kr.PublicKey, err = base64.StdEncoding.DecodeString(p)
	if err != nil {
		return KeyRecord{}, invalidRecord("p= is not valid base64: %v", err)
	}
	return kr, nil
}
