// Package dkim verifies the DKIM signatures (RFC 6376) of received mail
// through emersion/go-msgauth, for the local email bridge: which domains
// vouch for a message.
package dkim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// MaxSignatures is how many signatures of one message are checked (each
// costs a DNS lookup); later ones are ignored.
const MaxSignatures = 5

// LookupTXT returns the TXT records at name, each record's strings joined.
// net.Resolver.LookupTXT fits, as does DNSLookup.
type LookupTXT func(ctx context.Context, name string) ([]string, error)

// Result lists the signing domains (d=, lower case) by outcome.
type Result struct {
	Passed []string // a valid signature
	Failed []string // a signature that does not verify, or no usable key
	// TempFailed could not be checked now (DNS failure); the sender's
	// server may retry.
	TempFailed []string
}

// Verifier checks DKIM signatures.
type Verifier struct {
	lookup LookupTXT
}

// NewVerifier returns a verifier that finds keys with lookupTXT.
func NewVerifier(lookupTXT LookupTXT) *Verifier {
	return &Verifier{lookup: lookupTXT}
}

// Verify checks the first MaxSignatures signatures of raw. An error means
// raw could not be read as a message at all.
func (v *Verifier) Verify(ctx context.Context, raw []byte) (Result, error) {
	opts := &dkim.VerifyOptions{
		MaxVerifications: MaxSignatures,
		LookupTXT: func(name string) ([]string, error) {
			return v.lookup(ctx, name)
		},
	}
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(raw), opts)
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return Result{}, fmt.Errorf("dkim: verify: %w", err)
	}
	var r Result
	for _, ver := range verifications {
		domain := strings.ToLower(strings.TrimSuffix(ver.Domain, "."))
		switch {
		case ver.Err == nil:
			r.Passed = appendOnce(r.Passed, domain)
		case dkim.IsTempFail(ver.Err):
			r.TempFailed = appendOnce(r.TempFailed, domain)
		default:
			r.Failed = appendOnce(r.Failed, domain)
		}
	}
	return r, nil
}

// Aligned reports whether a valid signature vouches for fromDomain: its
// d= is fromDomain or a parent of it (DMARC's relaxed alignment, without
// the public suffix list: a bare TLD never aligns).
func (r Result) Aligned(fromDomain string) bool {
	from := strings.ToLower(strings.TrimSuffix(fromDomain, "."))
	for _, d := range r.Passed {
		if d == from || (strings.Contains(d, ".") && strings.HasSuffix(from, "."+d)) {
			return true
		}
	}
	return false
}

func appendOnce(list []string, s string) []string {
	if s == "" || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// VerifiedDomains returns the d= domains whose signatures on raw verify,
// or ErrTemporary when none did and one could not be checked now.
func (v *Verifier) VerifiedDomains(ctx context.Context, raw []byte) ([]string, error) {
	r, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if len(r.Passed) == 0 && len(r.TempFailed) > 0 {
		return nil, fmt.Errorf("dkim: keys of %s: %w", strings.Join(r.TempFailed, ", "), ErrTemporary)
	}
	return r.Passed, nil
}

// ErrTemporary: no signature verified and at least one could not be
// checked now (its key's DNS lookup failed). Judging the mail unproven
// would refuse it under a reject policy, or misattribute it under flag,
// for an outage of ours or the signer's; the sending server retries it.
var ErrTemporary = errors.New("a signature could not be checked now")
