package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// The small types below are what several services of this package share.
// Each service holds the ones it needs as fields, so that what a service
// depends on stays visible in its struct.

// site is this gateway's place among domains: which addresses are ours.
type site struct{ domain string }

func (s site) isLocal(a amtp.Address) bool { return a.Domain == s.domain }

// localAddress resolves "name" or "name@our-domain" to a local address.
func (s site) localAddress(v string) (amtp.Address, error) {
	if !strings.Contains(v, "@") {
		v += "@" + s.domain
	}
	a, err := amtp.ParseAddress(v)
	if err != nil {
		return amtp.Address{}, err
	}
	if !s.isLocal(a) {
		return amtp.Address{}, amtp.Errorf(amtp.CodeInvalidRecipient, "%s is not an address of %s", a, s.domain)
	}
	return a, nil
}

// clock is Config.Now.
type clock func() time.Time

// stamp is the time now as AMTP writes times: UTC, in milliseconds.
func (c clock) stamp() time.Time { return c().UTC().Truncate(time.Millisecond) }

// opsLog is a service's logger. It also turns backend failures into the
// AMTP error callers see, logging the cause that they must not see.
type opsLog struct{ *slog.Logger }

// unavailable wraps a backend failure as a retryable AMTP error and logs the
// cause, which is not shown to callers.
func (l opsLog) unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return amtp.Errorf(amtp.CodeTemporaryFailure, "%s: request cancelled or timed out", op)
	}
	l.Error("backend failure", "op", op, "err", err)
	return amtp.Errorf(amtp.CodeTemporaryFailure, "%s: storage is temporarily unavailable, retry later", op)
}

// listError is unavailable for a listing, whose cursor may be one the
// store did not issue.
func (l opsLog) listError(op string, err error) error {
	if errors.Is(err, ErrBadCursor) {
		return amtp.Errorf(amtp.CodeInvalidMessageFormat, "cursor is not valid").WithDetail("field", "cursor")
	}
	return l.unavailable(op, err)
}
