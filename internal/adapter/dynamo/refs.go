package dynamo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// A recipient item of the message's own recipients is keyed by its TO#
// listing (messageRef.recipientKey): finding it needs the message's
// accept time and shard count, which the status calls (UpdateStatuses,
// DeliverToInbox, AckInbox) are not given. They read them from the
// message item, and each process keeps what it read or wrote for a while:
// a worker reads the message (GetMessage) right before it records the
// delivery, the api function accepts before its Immediate Path delivery,
// and an inbox owner lists a page before acknowledging it, so the read is
// mostly spared. What is kept never changes for a stored message (a void
// is never kept), and an entry lives far shorter than a message, so an id
// stored again after its message expired is read afresh.
type refCache struct {
	mu      sync.Mutex
	entries map[string]refEntry
}

type refEntry struct {
	ref     messageRef
	expires time.Time
}

// Bounds of the cache: entries per process, and how long one is kept.
const (
	maxCachedRefs = 4096
	refCacheTTL   = 10 * time.Minute
)

func (c *refCache) get(id string, now time.Time) (messageRef, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || !now.Before(e.expires) {
		return messageRef{}, false
	}
	return e.ref, true
}

func (c *refCache) put(ref messageRef, now time.Time) {
	if ref.shards == 0 {
		// Its items are found by address alone; a fan-out's recipients
		// would only weigh on the process's memory.
		ref.to = nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[string]refEntry)
	}
	if len(c.entries) >= maxCachedRefs {
		for id, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, id)
			}
		}
	}
	if len(c.entries) >= maxCachedRefs {
		// Full of live entries: start again rather than track ages.
		clear(c.entries)
	}
	c.entries[ref.id] = refEntry{ref: ref, expires: now.Add(refCacheTTL)}
}

// remember keeps what finds the recipient items of a stored message (not
// a void, not expired).
func (s *Store) remember(id string, msg item) {
	now := s.now()
	if msg == nil || isVoid(msg) || expired(msg, now) {
		return
	}
	if ref, err := refOf(id, msg); err == nil {
		s.refs.put(ref, now)
	}
}

// refAttrs is what refOf reads of a message item.
var refAttrs = project(aTo, aAt, aRN, aTTL, aVoided, aShards)

// messageRef finds what locates the recipient items of message id: kept,
// or read (strongly consistent). gateway.ErrNotFound when the message is
// not stored, is a void or has expired.
func (s *Store) messageRef(ctx context.Context, id string) (messageRef, error) {
	if ref, ok := s.refs.get(id, s.now()); ok {
		if ref.expires == 0 || ref.expires > s.now().Unix() {
			return ref, nil
		}
		return messageRef{}, gateway.ErrNotFound
	}
	msg, err := s.getItem(ctx, messageKey(id), true, refAttrs)
	if err != nil {
		return messageRef{}, fmt.Errorf("read message: %w", err)
	}
	if msg == nil || isVoid(msg) || expired(msg, s.now()) {
		return messageRef{}, gateway.ErrNotFound
	}
	ref, err := refOf(id, msg)
	if err != nil {
		return messageRef{}, err
	}
	s.refs.put(ref, s.now())
	return ref, nil
}
