package pebblestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

func agentKey(addr string) []byte {
	return append(key(tAgent, len(addr)), strings.ToLower(addr)...)
}

func agentHashKey(h string) []byte {
	return append(key(tAgentKey, len(h)), strings.ToLower(h)...)
}

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
	db.agentMu.Lock()
	defer db.agentMu.Unlock()
	defer db.agents.invalidate()
	addr := strings.ToLower(a.Address)
	put := *a
	b := db.pdb.NewBatch()
	was, err := db.readAgent(addr)
	switch {
	case errors.Is(err, gateway.ErrNotFound):
	case err != nil:
		b.Close()
		return fmt.Errorf("put agent %s: %w", a.Address, err)
	default:
		put.CreatedAt = was.CreatedAt
		if err := db.dropKeyHash(b, addr, was); err != nil {
			b.Close()
			return fmt.Errorf("put agent %s: %w", a.Address, err)
		}
	}
	v, err := json.Marshal(&put)
	if err != nil {
		b.Close()
		return fmt.Errorf("put agent %s: %w", a.Address, err)
	}
	_ = b.Set(agentKey(addr), v, nil)
	if put.APIKeyHash != "" {
		_ = b.Set(agentHashKey(put.APIKeyHash), []byte(addr), nil)
	}
	if err := db.commit(b); err != nil {
		return fmt.Errorf("put agent %s: %w", a.Address, err)
	}
	a.CreatedAt = put.CreatedAt
	return nil
}

// dropKeyHash removes the index entry of a stored agent, but only while it
// still points at that agent: a hash now owned by another agent stays.
func (db *DB) dropKeyHash(b *pebble.Batch, addr string, old *gateway.Agent) error {
	if old.APIKeyHash == "" {
		return nil
	}
	hk := agentHashKey(old.APIKeyHash)
	owner, err := db.get(hk)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if string(owner) != addr {
		return nil
	}
	return b.Delete(hk, nil)
}

func (db *DB) readAgent(addr string) (*gateway.Agent, error) {
	v, err := db.get(agentKey(addr))
	if err != nil {
		return nil, err
	}
	var a gateway.Agent
	if err := json.Unmarshal(v, &a); err != nil {
		return nil, fmt.Errorf("agent record: %w: %v", errCorrupt, err)
	}
	return &a, nil
}

// GetAgent returns gateway.ErrNotFound for an unknown address.
func (db *DB) GetAgent(ctx context.Context, address string) (*gateway.Agent, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("get agent %s: %w", address, err)
	}
	defer release()
	addr := strings.ToLower(address)
	if a := db.agents.byAddress(addr); a != nil {
		return a, nil
	}
	gen := db.agents.generation()
	a, err := db.readAgent(addr)
	if err != nil {
		return nil, fmt.Errorf("get agent %s: %w", address, err)
	}
	db.agents.put(gen, addr, "", a)
	return a, nil
}

// AgentByKeyHash finds the agent whose API key hashes to h.
func (db *DB) AgentByKeyHash(ctx context.Context, h string) (*gateway.Agent, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("agent by key hash: %w", err)
	}
	defer release()
	if h == "" {
		return nil, fmt.Errorf("agent by key hash: %w", gateway.ErrNotFound)
	}
	hash := strings.ToLower(h)
	if a := db.agents.byKeyHash(hash); a != nil {
		return a, nil
	}
	gen := db.agents.generation()
	// The hash is a credential: keep it out of error messages and logs.
	addr, err := db.get(agentHashKey(hash))
	if err != nil {
		return nil, fmt.Errorf("agent by key hash: %w", err)
	}
	a, err := db.readAgent(string(addr))
	if err != nil {
		return nil, fmt.Errorf("agent by key hash: %w", err)
	}
	db.agents.put(gen, "", hash, a)
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
	db.agentMu.Lock()
	defer db.agentMu.Unlock()
	defer db.agents.invalidate()
	addr := strings.ToLower(address)
	a, err := db.readAgent(addr)
	if err != nil {
		return nil, fmt.Errorf("replace agent key %s: %w", address, err)
	}
	if !strings.EqualFold(a.APIKeyHash, oldHash) {
		return nil, fmt.Errorf("replace agent key %s: %w", address, gateway.ErrConflict)
	}
	b := db.pdb.NewBatch()
	if err := db.dropKeyHash(b, addr, a); err != nil {
		b.Close()
		return nil, fmt.Errorf("replace agent key %s: %w", address, err)
	}
	a.APIKeyHash = newHash
	v, err := json.Marshal(a)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("replace agent key %s: %w", address, err)
	}
	_ = b.Set(agentKey(addr), v, nil)
	if newHash != "" {
		_ = b.Set(agentHashKey(newHash), []byte(addr), nil)
	}
	if err := db.commit(b); err != nil {
		return nil, fmt.Errorf("replace agent key %s: %w", address, err)
	}
	return a, nil
}

// DeleteAgent removes an agent, its key-hash index entry and its inbox in
// one commit; it returns gateway.ErrNotFound for an unknown address.
func (db *DB) DeleteAgent(ctx context.Context, address string) error {
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("delete agent %s: %w", address, err)
	}
	defer release()
	db.agentMu.Lock()
	defer db.agentMu.Unlock()
	defer db.agents.invalidate()
	addr := strings.ToLower(address)
	a, err := db.readAgent(addr)
	if err != nil && !errors.Is(err, errCorrupt) {
		return fmt.Errorf("delete agent %s: %w", address, err)
	}
	b := db.pdb.NewBatch()
	if a != nil {
		if err := db.dropKeyHash(b, addr, a); err != nil {
			b.Close()
			return fmt.Errorf("delete agent %s: %w", address, err)
		}
	}
	if err := purgeInbox(b, addr); err != nil {
		b.Close()
		return fmt.Errorf("delete agent %s: %w", address, err)
	}
	_ = b.Delete(agentKey(addr), nil)
	if err := db.commit(b); err != nil {
		return fmt.Errorf("delete agent %s: %w", address, err)
	}
	return nil
}

// ListAgents returns every agent, ordered by address. A record that cannot
// be decoded is logged and left out.
func (db *DB) ListAgents(ctx context.Context) (out []*gateway.Agent, err error) {
	release, err := db.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer release()
	it, err := db.iter([]byte{tAgent}, []byte{tAgent + 1})
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer closeIter(it, &err)
	for ok := it.First(); ok; ok = it.Next() {
		v, verr := it.ValueAndErr()
		if verr != nil {
			return nil, fmt.Errorf("list agents: %w", verr)
		}
		var a gateway.Agent
		if jerr := json.Unmarshal(v, &a); jerr != nil {
			db.corrupt("agent", it.Key(), jerr)
			continue
		}
		out = append(out, &a)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}
