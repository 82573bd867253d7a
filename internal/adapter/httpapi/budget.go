package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// DefaultBodyBudget is the bytes of request bodies held in memory at once
// when Options.BodyBudget is not set: three messages of the default
// maximum size, or thousands of ordinary ones. make bench (flood): with 64
// MiB, 32 anonymous clients posting 10 MiB bodies held the gateway at
// 190 MB and its health probe's p99 at 50 ms; with 32 MiB, 85 MB and 9 ms.
const DefaultBodyBudget = 32 << 20

// budgetWait is how long a request waits for room in the budget before it
// is answered 503. Waiting costs a goroutine and a connection but no body
// memory, so a short wait smooths bursts without letting a flood queue up.
const budgetWait = 250 * time.Millisecond

// budgetStep is how much of the budget a body of unknown length (chunked)
// takes at a time as it is read.
const budgetStep = 256 << 10

// bodyBudget bounds the memory of request bodies in flight as a whole: a
// body is read only into bytes the budget granted, and holds them until
// its request is answered. Anonymous callers (other gateways, and anyone
// who claims to be one) draw from a share of half the budget, so that a
// flood of them cannot take the room our own agents need.
type bodyBudget struct {
	all, anon *semaphore.Weighted
	size      int64
}

func newBodyBudget(size int64) *bodyBudget {
	return &bodyBudget{all: semaphore.NewWeighted(size), anon: semaphore.NewWeighted(size / 2), size: size}
}

// grant is one request's share of the budget.
type grant struct {
	b     *bodyBudget
	anon  bool
	bytes int64
}

func (b *bodyBudget) open(p gateway.Principal) *grant {
	return &grant{b: b, anon: p.Kind == gateway.Anonymous}
}

// take adds n bytes to the grant, waiting briefly for them. A request
// larger than its pool could ever grant is refused at once.
func (g *grant) take(ctx context.Context, n int64) error {
	pool := g.b.size
	if g.anon {
		pool /= 2
	}
	if g.bytes+n > pool {
		return busy()
	}
	ctx, cancel := context.WithTimeout(ctx, budgetWait)
	defer cancel()
	if g.anon {
		if err := g.b.anon.Acquire(ctx, n); err != nil {
			return busy()
		}
	}
	if err := g.b.all.Acquire(ctx, n); err != nil {
		if g.anon {
			g.b.anon.Release(n)
		}
		return busy()
	}
	g.bytes += n
	return nil
}

// release gives everything back; the body must not be used afterwards.
func (g *grant) release() {
	if g.bytes == 0 {
		return
	}
	if g.anon {
		g.b.anon.Release(g.bytes)
	}
	g.b.all.Release(g.bytes)
	g.bytes = 0
}

func busy() error {
	return amtp.Errorf(amtp.CodeTemporaryFailure, "the gateway is receiving as much as it can hold; retry shortly")
}

// bodyReader reads one request body within a grant.
type bodyReader struct {
	w   http.ResponseWriter
	r   *http.Request
	g   *grant
	max int64
	buf []byte
}

// rest reads the remainder of the body after judgeEnvelope and returns all
// of it.
func (br *bodyReader) rest() ([]byte, error) {
	if cl := br.r.ContentLength; cl >= 0 {
		// The declared length is paid for from the budget before it is
		// allocated, so trusting it costs nothing a client does not send
		// the bytes for: one allocation of the right size.
		if err := br.grow(cl + 1); err != nil {
			return nil, err
		}
		if err := br.fill(cl + 1); err != nil {
			return nil, err
		}
		if int64(len(br.buf)) <= cl {
			return br.buf, nil
		}
		// More than declared: net/http never hands us that, an in-process
		// caller might. The bytes count, not the declaration.
	}
	for {
		if err := br.grow(int64(cap(br.buf)) + budgetStep); err != nil {
			return nil, err
		}
		if err := br.fill(int64(cap(br.buf))); err != nil {
			return nil, err
		}
		if len(br.buf) < cap(br.buf) {
			return br.buf, nil
		}
	}
}

// all reads the whole body.
func (br *bodyReader) all() ([]byte, error) {
	end, err := br.judgeEnvelope(func(string, []string) error { return nil })
	if err != nil || end == ended {
		return br.buf, err
	}
	return br.rest()
}

// grow makes the buffer's capacity at least n (bounded by max+1, enough to
// see that a body is too large), paying for the difference first.
func (br *bodyReader) grow(n int64) error {
	n = min(n, br.max+1)
	if int64(cap(br.buf)) >= n {
		return nil
	}
	if err := br.g.take(br.r.Context(), n-int64(cap(br.buf))); err != nil {
		return err
	}
	next := make([]byte, len(br.buf), n)
	copy(next, br.buf)
	br.buf = next
	return nil
}

// fill reads until the buffer holds n bytes or the body ends.
func (br *bodyReader) fill(n int64) error {
	n = min(n, int64(cap(br.buf)))
	for int64(len(br.buf)) < n {
		k, err := br.r.Body.Read(br.buf[len(br.buf):n])
		br.buf = br.buf[:len(br.buf)+k]
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return readError(err, br.max)
		}
	}
	return nil
}

func readError(err error, max int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(max)
	}
	return amtp.Errorf(amtp.CodeInvalidMessageFormat, "could not read the request body")
}

func tooLarge(max int64) error {
	return amtp.Errorf(amtp.CodeMessageTooLarge, "the body is larger than the limit of %d bytes", max).WithDetail("max_size", max)
}

// readMessage reads a submitted message within g. Its leading members
// are looked at as they arrive: when they show a sender and recipients that
// p may not use, the submission is refused without reading (or paying for)
// the rest, which for an anonymous caller may be megabytes nobody asked for.
func (h *Handler) readMessage(w http.ResponseWriter, r *http.Request, p gateway.Principal, g *grant) ([]byte, error) {
	br := &bodyReader{w: w, r: r, g: g, max: h.max}
	end, err := br.judgeEnvelope(func(sender string, recipients []string) error {
		return h.submit.CheckEnvelope(p, sender, recipients)
	})
	if err != nil {
		return nil, err
	}
	if end == ended {
		return br.buf, nil
	}
	return br.rest()
}

type prefixEnd int

const (
	judged prefixEnd = iota // the envelope was seen and allowed
	ended                   // the whole body is in buf
	unseen                  // the prefix did not show the envelope
)

// envelopeTries bounds how often a trickling prefix is parsed again.
const envelopeTries = 24

// judgeEnvelope reads the body's first envelopePrefix bytes, one read at a
// time, until check has judged its sender and recipients, the body ends or
// the prefix is full. A read that brings a ']' (the end of recipients) or
// doubles what was seen is a reason to look again.
func (br *bodyReader) judgeEnvelope(check func(sender string, recipients []string) error) (prefixEnd, error) {
	if br.r.ContentLength > br.max {
		return unseen, tooLarge(br.max)
	}
	br.r.Body = http.MaxBytesReader(br.w, br.r.Body, br.max)
	want := int64(envelopePrefix)
	if br.r.ContentLength >= 0 {
		want = min(want, br.r.ContentLength)
	}
	if err := br.grow(want + 1); err != nil {
		return unseen, err
	}
	looked, tries := 0, 0
	for {
		before := len(br.buf)
		eof, err := br.readOnce(want + 1)
		if err != nil {
			return unseen, err
		}
		fresh := br.buf[before:]
		// A body already here whole is judged by the full parse anyway:
		// looking at its envelope first would parse an ordinary message
		// twice on the hot path.
		whole := eof || (br.r.ContentLength >= 0 && int64(len(br.buf)) >= br.r.ContentLength)
		if !whole && tries < envelopeTries && (bytes.IndexByte(fresh, ']') >= 0 || len(br.buf) >= 2*looked) {
			tries++
			looked = len(br.buf)
			if sender, recipients, ok := envelope(br.buf); ok {
				if err := check(sender, recipients); err != nil {
					return unseen, err
				}
				return judged, nil
			}
		}
		switch {
		case eof:
			return ended, nil
		case int64(len(br.buf)) > want:
			return unseen, nil
		}
	}
}

// readOnce makes one read into the buffer, up to n bytes in all, and
// reports whether the body ended.
func (br *bodyReader) readOnce(n int64) (eof bool, err error) {
	n = min(n, int64(cap(br.buf)))
	k, err := br.r.Body.Read(br.buf[len(br.buf):n])
	br.buf = br.buf[:len(br.buf)+k]
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	if err != nil {
		return false, readError(err, br.max)
	}
	return false, nil
}
