package discovery

import (
	"encoding/base64"
	"errors"
	"strings"
)

// KeyVersion is the v= value of a signing key record (draft §3.2.3).
const KeyVersion = "amtpkey1"

// Key algorithms accepted in the alg= parameter: the Domain Signatures
// profile's two.
const (
	KeyES256 = "ES256"
	KeyRS256 = "RS256"
)

// maxKeyB64 bounds the p= parameter: a 16384-bit RSA SubjectPublicKeyInfo
// is about 2.8 KB of base64, so anything far beyond that is not a key.
const maxKeyB64 = 8192

// KeyRecord is the one valid <selector>._amtpkey.<domain> TXT record.
// PublicKey holds the decoded p= bytes (a DER SubjectPublicKeyInfo by the
// draft); this package does not interpret them.
type KeyRecord struct {
	Algorithm string // KeyES256 or KeyRS256
	PublicKey []byte
}

// errNotKeyRecord marks TXT strings at a key name that are not amtpkey1
// records at all (another service's TXT, or a record of a later version).
var errNotKeyRecord = errors.New("not a v=amtpkey1 record")

// ParseKeyTXT parses the text of a key record (character-strings already
// joined): v=amtpkey1, alg=ES256|RS256 and p=<base64 SPKI> are required, in
// any order; unknown parameters are ignored so that the format can grow.
// The draft writes p= in standard base64 with padding; the URL alphabet and
// missing padding are accepted too, since the DER that follows is checked
// in full anyway.
func ParseKeyTXT(txt string) (KeyRecord, error) {
	tags, err := splitTags(txt)
	if err != nil {
		return KeyRecord{}, err
	}
	var (
		kr                  KeyRecord
		haveV, haveA, haveP bool
		p                   string
	)
	for _, t := range tags {
		switch t.key {
		case "v":
			if !strings.EqualFold(t.value, KeyVersion) {
				return KeyRecord{}, errNotKeyRecord
			}
			haveV = true
		case "alg":
			haveA = true
			kr.Algorithm = strings.ToUpper(t.value)
		case "p":
			haveP = true
			p = t.value
		}
	}
	switch {
	case !haveV:
		return KeyRecord{}, errNotKeyRecord
	case !haveA:
		return KeyRecord{}, invalidRecord("key record has no alg= parameter")
	case kr.Algorithm != KeyES256 && kr.Algorithm != KeyRS256:
		return KeyRecord{}, invalidRecord("unsupported key algorithm %q", clip(kr.Algorithm))
	case !haveP:
		return KeyRecord{}, invalidRecord("key record has no p= parameter")
	}
	// Publishers wrap long keys the way DKIM allows, so blanks inside the
	// base64 are folding, not data.
	p = strings.Join(strings.Fields(p), "")
	if p == "" {
		return KeyRecord{}, invalidRecord("key record has an empty p= (revoked)")
	}
	if len(p) > maxKeyB64 {
		return KeyRecord{}, invalidRecord("p= is longer than %d bytes", maxKeyB64)
	}
	kr.PublicKey, err = decodeKeyB64(p)
	if err != nil {
		return KeyRecord{}, invalidRecord("p= is not valid base64: %v", err)
	}
	return kr, nil
}

func decodeKeyB64(p string) ([]byte, error) {
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(p)
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// selectKey applies the draft's record constraint to the TXT strings at
// one key name: exactly one valid amtpkey1 record. Zero is ErrKeyNotFound;
// several (a botched rotation) are ErrKeyAmbiguous, never one picked at
// random. Broken amtpkey1 strings do not count as valid; when nothing
// valid is left, the first such problem is reported with ErrKeyNotFound
// so that the operator can see why.
func selectKey(txts []string) (KeyRecord, error) {
	var (
		found   []KeyRecord
		problem error
	)
	for _, s := range txts {
		kr, err := ParseKeyTXT(s)
		switch {
		case err == nil:
			found = append(found, kr)
		case errors.Is(err, errNotKeyRecord):
		case problem == nil:
			problem = err
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return KeyRecord{}, ErrKeyAmbiguous
	case problem != nil:
		return KeyRecord{}, errors.Join(ErrKeyNotFound, problem)
	}
	return KeyRecord{}, ErrKeyNotFound
}
