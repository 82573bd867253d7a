package pebblestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Webhook subscriptions live in one table with two parts: the records by
// id, and an owner index so that the subscriptions of a sender are one
// prefix scan.
const (
	webhookByID    byte = 1
	webhookByOwner byte = 2
)

var _ gateway.WebhookStore = (*DB)(nil)

func webhookKey(id string) []byte {
	return append(append(key(tWebhook, 1+len(id)), webhookByID), id...)
}

// webhookOwnerPrefix ends in 0x00, which no address contains; the admin's
// owner "" is the prefix H 0x02 0x00.
func webhookOwnerPrefix(owner string) []byte {
	b := append(key(tWebhook, 2+len(owner)+32), webhookByOwner)
	b = append(b, strings.ToLower(owner)...)
	return append(b, 0)
}

func webhookOwnerKey(owner, id string) []byte { return append(webhookOwnerPrefix(owner), id...) }

// PutWebhook creates or replaces a subscription (gateway.WebhookStore).
func (db *DB) PutWebhook(ctx context.Context, s gateway.WebhookSubscription) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("put webhook %s: %w", s.ID, err)
	}
	defer release()
	v, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("put webhook %s: %w", s.ID, err)
	}
	b := db.pdb.NewBatch()
	_ = b.Set(webhookKey(s.ID), v, nil)
	_ = b.Set(webhookOwnerKey(s.Owner, s.ID), nil, nil)
	if err := db.commit(b); err != nil {
		return fmt.Errorf("put webhook %s: %w", s.ID, err)
	}
	return nil
}

// GetWebhook returns ErrNotFound for an unknown id (gateway.WebhookStore).
func (db *DB) GetWebhook(ctx context.Context, id string) (gateway.WebhookSubscription, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return gateway.WebhookSubscription{}, fmt.Errorf("get webhook %s: %w", id, err)
	}
	defer release()
	return db.webhook(id)
}

func (db *DB) webhook(id string) (gateway.WebhookSubscription, error) {
	var s gateway.WebhookSubscription
	k := webhookKey(id)
	v, err := db.get(k)
	if err != nil {
		return s, fmt.Errorf("get webhook %s: %w", id, err)
	}
	if err := json.Unmarshal(v, &s); err != nil {
		db.corrupt("webhook", k, err)
		return s, fmt.Errorf("get webhook %s: %w", id, errCorrupt)
	}
	return s, nil
}

// ListWebhooks returns owner's subscriptions by id (gateway.WebhookStore).
// The index entry is written and deleted with its record, so each entry
// finds one; a record that cannot be decoded is logged and left out.
func (db *DB) ListWebhooks(ctx context.Context, owner string) (out []gateway.WebhookSubscription, err error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer release()
	p := webhookOwnerPrefix(owner)
	it, err := db.iter(p, prefixEnd(p))
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer closeIter(it, &err)
	for ok := it.First(); ok && len(out) < webhookListCap; ok = it.Next() {
		s, werr := db.webhook(string(it.Key()[len(p):]))
		if werr != nil {
			// A damaged record was logged by webhook; an entry left by the
			// deletion of a damaged record names none.
			if errors.Is(werr, errCorrupt) || errors.Is(werr, gateway.ErrNotFound) {
				continue
			}
			return nil, fmt.Errorf("list webhooks: %w", werr)
		}
		out = append(out, s)
	}
	return out, it.Error()
}

// webhookListCap bounds a listing; the use case keeps far fewer per owner.
const webhookListCap = 1000

// DeleteWebhook removes a subscription (gateway.WebhookStore).
func (db *DB) DeleteWebhook(ctx context.Context, id string) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	defer release()
	unlock := db.lock("h" + id)
	defer unlock()
	s, err := db.webhook(id)
	if err != nil && !errors.Is(err, errCorrupt) {
		return fmt.Errorf("delete webhook: %w", err)
	}
	b := db.pdb.NewBatch()
	_ = b.Delete(webhookKey(id), nil)
	_ = b.Delete(webhookOwnerKey(s.Owner, id), nil)
	if err := db.commit(b); err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	return nil
}

// checkWebhookRecord decodes a record of the webhook table (Check).
func checkWebhookRecord(k, v []byte) error {
	if len(k) < 2 {
		return errBadKey
	}
	switch k[1] {
	case webhookByID:
		return json.Unmarshal(v, new(gateway.WebhookSubscription))
	case webhookByOwner:
		if len(v) != 0 {
			return errCorrupt
		}
		return nil
	}
	return errBadKey
}
