package gateway

import (
	"strings"
	"time"
)

// AttemptRecord is one entry of a recipient's attempt history, as the
// sender and the admin see it in the message's status.
type AttemptRecord struct {
	At        time.Time `json:"at"`
	Outcome   string    `json:"outcome"` // retrying, delivered, failed, redriven
	Attempt   int       `json:"attempt,omitempty"`
	ErrorCode string    `json:"error_code,omitempty"`
}

// OutcomeRedriven is the history entry of an operator's redrive.
const OutcomeRedriven = "redriven"

// MaxAttemptHistory bounds the history the status shows: the oldest
// entries go.
const MaxAttemptHistory = 10

// A stored RecipientStatus.History holds the entries before the status
// itself: the status is the newest entry, and WithHistory adds it for
// display. So a recipient delivered at its first attempt, most of them,
// stores no history at all.

// After is r, the outcome of an attempt, carrying on the history of its
// recipient's status in prior (the statuses before the attempt).
func (r RecipientStatus) After(prior []RecipientStatus) RecipientStatus {
	for _, p := range prior {
		if strings.EqualFold(p.Address, r.Address) {
			r.History = p.past()
			return r
		}
	}
	r.History = nil
	return r
}

// past is r's history with r itself in it, when r is the outcome of an
// attempt (not queued).
func (r RecipientStatus) past() []AttemptRecord {
	if r.Status == StateQueued {
		return r.History
	}
	return appendHistory(r.History, r.entry(), MaxAttemptHistory-1)
}

func (r RecipientStatus) entry() AttemptRecord {
	return AttemptRecord{At: r.UpdatedAt, Outcome: string(r.Status), Attempt: r.Attempts, ErrorCode: r.ErrorCode}
}

// WithHistory is r with its full history, r's own outcome the newest
// entry: what the status shows.
func (r RecipientStatus) WithHistory() RecipientStatus {
	if r.Status != StateQueued {
		r.History = appendHistory(r.History, r.entry(), MaxAttemptHistory)
	}
	if len(r.History) == 0 {
		r.History = nil
	}
	return r
}

// redriven is r put back into delivery by an operator at now: queued, its
// attempts kept, the failure cleared, its outcome and the redrive in its
// history.
func (r RecipientStatus) redriven(now time.Time) RecipientStatus {
	r.History = appendHistory(r.past(), AttemptRecord{At: now, Outcome: OutcomeRedriven, Attempt: r.Attempts}, MaxAttemptHistory-1)
	r.Status, r.UpdatedAt, r.NextRetry, r.ErrorCode, r.ErrorMessage = StateQueued, now, nil, "", ""
	return r
}

// appendHistory is h with e appended, in a new slice, cut to the last
// limit entries.
func appendHistory(h []AttemptRecord, e AttemptRecord, limit int) []AttemptRecord {
	if len(h) >= limit {
		h = h[len(h)-limit+1:]
	}
	out := make([]AttemptRecord, 0, len(h)+1)
	return append(append(out, h...), e)
}
