package pebblestore

import "github.com/agentry/agentry/internal/usecase/gateway"

// The recipients' attempt histories follow their statuses in a status
// value, one list per recipient in order, and only when one of them has
// a history: values written before histories existed read as they are.

// encodeHistories appends the histories of rs, if any has one.
func encodeHistories(e *encoder, rs []gateway.RecipientStatus) {
	some := false
	for _, r := range rs {
		some = some || len(r.History) > 0
	}
	if !some {
		return
	}
	for _, r := range rs {
		e.uint(uint64(len(r.History)))
		for _, h := range r.History {
			e.time(h.At)
			e.str(h.Outcome)
			e.uint(uint64(max(h.Attempt, 0)))
			e.str(h.ErrorCode)
		}
	}
}

// decodeHistories reads what encodeHistories wrote, when anything follows
// the statuses.
func decodeHistories(d *decoder, rs []gateway.RecipientStatus) {
	if d.err != nil || len(d.b) == 0 {
		return
	}
	for i := range rs {
		n := d.count()
		if n == 0 {
			continue
		}
		h := make([]gateway.AttemptRecord, n)
		for j := range h {
			h[j] = gateway.AttemptRecord{At: d.time(), Outcome: d.str(), Attempt: d.int(), ErrorCode: d.str()}
		}
		rs[i].History = h
	}
}
