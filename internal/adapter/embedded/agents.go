package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// PutAgent creates or replaces an agent, moving its key-hash index entry
// when the key changed so that the old key stops authenticating at once.
// A replaced agent keeps its CreatedAt (its identity: only DeleteAgent
// ends it), which is set in a too.
func (db *DB) PutAgent(ctx context.Context, a *gateway.Agent) error {
	if a == nil || a.Address == "" {
		return errors.New("put agent: no address")
	}
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("put agent %s: %w", a.Address, err)
	}
	defer release()
	addr := []byte(strings.ToLower(a.Address))
	hash := []byte(strings.ToLower(a.APIKeyHash))
	put := *a
	err = db.commit.do(func(tx *wtx) error {
		agents, keys := tx.Bucket(bucketAgents), tx.Bucket(bucketAgentKeys)
		put.CreatedAt = a.CreatedAt // fn may run more than once
		old := agents.Get(addr)
		if old != nil {
			var was gateway.Agent
			if err := json.Unmarshal(old, &was); err != nil {
				return fmt.Errorf("corrupt agent record: %w", err)
			}
			put.CreatedAt = was.CreatedAt
		}
		v, err := json.Marshal(&put)
		if err != nil {
			return err
		}
		if old != nil {
			if err := dropKeyHash(keys, addr, old); err != nil {
				return err
			}
		}
		if err := agents.Put(addr, v); err != nil {
			return err
		}
		if len(hash) == 0 {
			return nil
		}
		return keys.Put(hash, addr)
	})
	db.agents.invalidate()
	if err != nil {
		return fmt.Errorf("put agent %s: %w", a.Address, err)
	}
	a.CreatedAt = put.CreatedAt
	return nil
}

// dropKeyHash removes the index entry of a stored agent, but only while it
// still points at that agent: a hash now owned by another agent stays.
func dropKeyHash(keys *wbucket, addr, stored []byte) error {
	var old gateway.Agent
	if err := json.Unmarshal(stored, &old); err != nil {
		return fmt.Errorf("corrupt agent record: %w", err)
	}
	h := []byte(strings.ToLower(old.APIKeyHash))
	if len(h) == 0 || string(keys.Get(h)) != string(addr) {
		return nil
	}
	return keys.Delete(h)
}

// GetAgent returns gateway.ErrNotFound for an unknown address.
func (db *DB) GetAgent(ctx context.Context, address string) (*gateway.Agent, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("get agent %s: %w", address, err)
	}
	defer release()
	key := strings.ToLower(address)
	if a := db.agents.byAddress(key); a != nil {
		return a, nil
	}
	gen := db.agents.generation()
	var a *gateway.Agent
	err = db.read(func(r reader) error {
		a, err = readAgent(r, []byte(key))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get agent %s: %w", address, err)
	}
	db.agents.put(gen, key, "", a)
	return a, nil
}

func readAgent(r reader, addr []byte) (*gateway.Agent, error) {
	v := r.bucket(bucketAgents).Get(addr)
	if v == nil {
		return nil, gateway.ErrNotFound
	}
	var a gateway.Agent
	if err := json.Unmarshal(v, &a); err != nil {
		return nil, fmt.Errorf("corrupt agent record: %w", err)
	}
	return &a, nil
}

// AgentByKeyHash finds the agent whose API key hashes to h.
func (db *DB) AgentByKeyHash(ctx context.Context, h string) (*gateway.Agent, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("agent by key hash: %w", err)
	}
	defer release()
	key := strings.ToLower(h)
	if a := db.agents.byKeyHash(key); a != nil {
		return a, nil
	}
	gen := db.agents.generation()
	var a *gateway.Agent
	err = db.read(func(r reader) error {
		if h == "" {
			return gateway.ErrNotFound
		}
		addr := r.bucket(bucketAgentKeys).Get([]byte(key))
		if addr == nil {
			return gateway.ErrNotFound
		}
		a, err = readAgent(r, addr)
		return err
	})
	if err != nil {
		// The hash is a credential: keep it out of error messages and logs.
		return nil, fmt.Errorf("agent by key hash: %w", err)
	}
	db.agents.put(gen, "", key, a)
	return a, nil
}

// ReplaceAgentKey gives the agent a new key hash in one commit, while its
// stored hash is still oldHash, and moves the key-hash index entry with it.
func (db *DB) ReplaceAgentKey(ctx context.Context, address, oldHash, newHash string) (*gateway.Agent, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("replace agent key %s: %w", address, err)
	}
	defer release()
	addr := []byte(strings.ToLower(address))
	var a gateway.Agent
	err = db.commit.do(func(tx *wtx) error {
		agents, keys := tx.Bucket(bucketAgents), tx.Bucket(bucketAgentKeys)
		a = gateway.Agent{} // fn may run more than once
		old := agents.Get(addr)
		if old == nil {
			return gateway.ErrNotFound
		}
		if err := json.Unmarshal(old, &a); err != nil {
			return fmt.Errorf("corrupt agent record: %w", err)
		}
		if !strings.EqualFold(a.APIKeyHash, oldHash) {
			return gateway.ErrConflict
		}
		a.APIKeyHash = newHash
		v, err := json.Marshal(&a)
		if err != nil {
			return err
		}
		if err := dropKeyHash(keys, addr, old); err != nil {
			return err
		}
		if err := agents.Put(addr, v); err != nil {
			return err
		}
		if newHash == "" {
			return nil
		}
		return keys.Put([]byte(strings.ToLower(newHash)), addr)
	})
	db.agents.invalidate()
	if err != nil {
		return nil, fmt.Errorf("replace agent key %s: %w", address, err)
	}
	return &a, nil
}

// DeleteAgent removes an agent, its key-hash index entry and its inbox in
// one commit; it returns gateway.ErrNotFound for an unknown address.
func (db *DB) DeleteAgent(ctx context.Context, address string) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("delete agent %s: %w", address, err)
	}
	defer release()
	addr := []byte(strings.ToLower(address))
	err = db.commit.do(func(tx *wtx) error {
		agents := tx.Bucket(bucketAgents)
		old := agents.Get(addr)
		if old == nil {
			return gateway.ErrNotFound
		}
		if err := dropKeyHash(tx.Bucket(bucketAgentKeys), addr, old); err != nil {
			return err
		}
		if err := purgeInbox(tx, string(addr)); err != nil {
			return err
		}
		return agents.Delete(addr)
	})
	db.agents.invalidate()
	if err != nil {
		return fmt.Errorf("delete agent %s: %w", address, err)
	}
	return nil
}

// ListAgents returns every agent, ordered by address.
func (db *DB) ListAgents(ctx context.Context) ([]*gateway.Agent, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer release()
	var out []*gateway.Agent
	err = db.readLong(func(r reader) error {
		out = out[:0]
		c := r.bucket(bucketAgents).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var a gateway.Agent
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("agent %s: corrupt record: %w", k, err)
			}
			out = append(out, &a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}
