package discovery

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

var (
	// ErrNoRoute is never returned by Lookup: a domain without an AMTP record
	// is an answer, not a failure. Callers that decide a domain is unreachable
	// (no AMTP record and no usable MX) wrap it so the reason survives logging.
	ErrNoRoute = errors.New("discovery: no route to domain")

	// ErrInvalidName marks caller input (a domain or selector) that can never
	// be looked up, so retrying is pointless.
	ErrInvalidName = errors.New("discovery: invalid domain name")

	// ErrInvalidRecord marks a published record that claims to be AMTP but
	// cannot be used. It is permanent: the publisher has to fix it.
	ErrInvalidRecord = errors.New("discovery: invalid AMTP record")

	// ErrKeyNotFound is returned by LookupKey when no valid v=amtpkey1 key
	// record is published for the selector (none at all, or only broken or
	// revoked ones).
	ErrKeyNotFound = errors.New("discovery: signing key not found")

	// ErrKeyAmbiguous is returned by LookupKey when more than one valid key
	// record is published under one name: the draft forbids picking one.
	ErrKeyAmbiguous = errors.New("discovery: several signing key records under one name")
)

// TransientError reports a lookup that failed for reasons that say nothing
// about the domain itself (server failure, refusal, timeout, network error),
// so the caller should retry later. Transient failures are never cached.
type TransientError struct {
	Name  string // the queried owner name, without the trailing dot
	Qtype uint16 // the queried type, e.g. dns.TypeTXT
	Rcode int    // the response code when the server answered, otherwise -1
	Err   error
}

func (e *TransientError) Error() string {
	return fmt.Sprintf("discovery: transient failure looking up %s %s: %v",
		dns.TypeToString[e.Qtype], e.Name, e.Err)
}

func (e *TransientError) Unwrap() error { return e.Err }

// IsTransient reports whether err means "try again later". Context expiry
// and cancellation count: the answer is unknown, not negative.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var te *TransientError
	if errors.As(err, &te) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

func invalidRecord(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRecord, fmt.Sprintf(format, args...))
}

func invalidName(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidName, fmt.Sprintf(format, args...))
}
