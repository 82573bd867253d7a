package gateway_test

import (
	"context"
	"errors"
	"sync"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// errBackend is what a store says when its backend is down. The address in
// it is the kind of internal detail no caller may see.
var errBackend = errors.New("dial tcp 10.1.2.3:8000: connection refused")

// flakyDB is the embedded store with failures injected per port method,
// as an outage of the backend produces them; every other call goes
// through. It also remembers the page sizes the service asked for.
type flakyDB struct {
	*pebblestore.DB
	mu   sync.Mutex
	fail map[string]error
	pass map[string]int // calls let through before the failure starts
	// What the service asked of the store last.
	query      gateway.MessageQuery
	inboxLimit int
}

func newFlakyDB(db *pebblestore.DB) *flakyDB {
	return &flakyDB{DB: db, fail: map[string]error{}, pass: map[string]int{}}
}

// failOn makes method fail with err once `after` calls of it have passed.
func (f *flakyDB) failOn(method string, err error, after int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method], f.pass[method] = err, after
}

// heal ends every injected failure.
func (f *flakyDB) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.fail)
	clear(f.pass)
}

func (f *flakyDB) failure(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, ok := f.fail[method]
	if !ok {
		return nil
	}
	if f.pass[method] > 0 {
		f.pass[method]--
		return nil
	}
	return err
}

func (f *flakyDB) Accept(ctx context.Context, a *gateway.Acceptance) (*gateway.IdempotencyRecord, error) {
	if err := f.failure("Accept"); err != nil {
		return nil, err
	}
	return f.DB.Accept(ctx, a)
}

func (f *flakyDB) GetMessage(ctx context.Context, id string) (*gateway.StoredMessage, error) {
	if err := f.failure("GetMessage"); err != nil {
		return nil, err
	}
	return f.DB.GetMessage(ctx, id)
}

func (f *flakyDB) GetStatuses(ctx context.Context, id string) ([]gateway.RecipientStatus, error) {
	if err := f.failure("GetStatuses"); err != nil {
		return nil, err
	}
	return f.DB.GetStatuses(ctx, id)
}

func (f *flakyDB) UpdateStatuses(ctx context.Context, id string, updates []gateway.RecipientStatus) error {
	if err := f.failure("UpdateStatuses"); err != nil {
		return err
	}
	return f.DB.UpdateStatuses(ctx, id, updates)
}

func (f *flakyDB) ListMessages(ctx context.Context, q gateway.MessageQuery) ([]gateway.MessageSummary, string, error) {
	f.mu.Lock()
	f.query = q
	f.mu.Unlock()
	if err := f.failure("ListMessages"); err != nil {
		return nil, "", err
	}
	return f.DB.ListMessages(ctx, q)
}

func (f *flakyDB) DeliverToInbox(ctx context.Context, recipient, messageID string, status gateway.RecipientStatus) error {
	if err := f.failure("DeliverToInbox"); err != nil {
		return err
	}
	return f.DB.DeliverToInbox(ctx, recipient, messageID, status)
}

func (f *flakyDB) ListInbox(ctx context.Context, recipient string, limit int, cursor string) ([]gateway.InboxEntry, string, error) {
	f.mu.Lock()
	f.inboxLimit = limit
	f.mu.Unlock()
	if err := f.failure("ListInbox"); err != nil {
		return nil, "", err
	}
	return f.DB.ListInbox(ctx, recipient, limit, cursor)
}

func (f *flakyDB) AckInbox(ctx context.Context, recipient, messageID string) error {
	if err := f.failure("AckInbox"); err != nil {
		return err
	}
	return f.DB.AckInbox(ctx, recipient, messageID)
}

func (f *flakyDB) PutAgent(ctx context.Context, a *gateway.Agent) error {
	if err := f.failure("PutAgent"); err != nil {
		return err
	}
	return f.DB.PutAgent(ctx, a)
}

func (f *flakyDB) GetAgent(ctx context.Context, address string) (*gateway.Agent, error) {
	if err := f.failure("GetAgent"); err != nil {
		return nil, err
	}
	return f.DB.GetAgent(ctx, address)
}

func (f *flakyDB) AgentByKeyHash(ctx context.Context, h string) (*gateway.Agent, error) {
	if err := f.failure("AgentByKeyHash"); err != nil {
		return nil, err
	}
	return f.DB.AgentByKeyHash(ctx, h)
}

func (f *flakyDB) ReplaceAgentKey(ctx context.Context, address, oldHash, newHash string) (*gateway.Agent, error) {
	if err := f.failure("ReplaceAgentKey"); err != nil {
		return nil, err
	}
	return f.DB.ReplaceAgentKey(ctx, address, oldHash, newHash)
}

func (f *flakyDB) DeleteAgent(ctx context.Context, address string) error {
	if err := f.failure("DeleteAgent"); err != nil {
		return err
	}
	return f.DB.DeleteAgent(ctx, address)
}

func (f *flakyDB) ListAgents(ctx context.Context) ([]*gateway.Agent, error) {
	if err := f.failure("ListAgents"); err != nil {
		return nil, err
	}
	return f.DB.ListAgents(ctx)
}

func (f *flakyDB) Enqueue(ctx context.Context, tasks ...gateway.Task) error {
	if err := f.failure("Enqueue"); err != nil {
		return err
	}
	return f.DB.Enqueue(ctx, tasks...)
}

func (f *flakyDB) GetWorkflow(ctx context.Context, id string) (workflow.State, error) {
	if err := f.failure("GetWorkflow"); err != nil {
		return workflow.State{}, err
	}
	return f.DB.GetWorkflow(ctx, id)
}

func (f *flakyDB) UpdateWorkflow(ctx context.Context, s workflow.State, expectedVersion int) error {
	if err := f.failure("UpdateWorkflow"); err != nil {
		return err
	}
	return f.DB.UpdateWorkflow(ctx, s, expectedVersion)
}
