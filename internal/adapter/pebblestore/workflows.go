package pebblestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// CreateWorkflow stores a new workflow; gateway.ErrDuplicate if its id is
// already stored.
func (db *DB) CreateWorkflow(ctx context.Context, s workflow.State) error {
	if s.WorkflowID == "" {
		return errors.New("create workflow: no id")
	}
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("create workflow %s: %w", s.WorkflowID, err)
	}
	defer release()
	v, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("create workflow %s: %w", s.WorkflowID, err)
	}
	// The workflow id is its message's id: the message's lock.
	unlock := db.lock("m" + s.WorkflowID)
	defer unlock()
	k := workflowKey(s.WorkflowID)
	if ok, err := db.has(k); err != nil {
		return fmt.Errorf("create workflow %s: %w", s.WorkflowID, err)
	} else if ok {
		return fmt.Errorf("create workflow %s: %w", s.WorkflowID, gateway.ErrDuplicate)
	}
	b := db.pdb.NewBatch()
	_ = b.Set(k, v, nil)
	if err := db.commit(b); err != nil {
		return fmt.Errorf("create workflow %s: %w", s.WorkflowID, err)
	}
	return nil
}

// GetWorkflow returns gateway.ErrNotFound for an unknown id.
func (db *DB) GetWorkflow(ctx context.Context, id string) (workflow.State, error) {
	release, err := db.enter(ctx)
	if err != nil {
		return workflow.State{}, fmt.Errorf("get workflow %s: %w", id, err)
	}
	defer release()
	s, err := db.readWorkflow(id)
	if err != nil {
		return workflow.State{}, fmt.Errorf("get workflow %s: %w", id, err)
	}
	return s, nil
}

func (db *DB) readWorkflow(id string) (workflow.State, error) {
	v, err := db.get(workflowKey(id))
	if err != nil {
		return workflow.State{}, err
	}
	var s workflow.State
	if err := json.Unmarshal(v, &s); err != nil {
		return workflow.State{}, fmt.Errorf("workflow record: %w: %v", errCorrupt, err)
	}
	return s, nil
}

// UpdateWorkflow replaces a workflow whose stored Version is still
// expectedVersion: gateway.ErrConflict otherwise, gateway.ErrNotFound for
// an unknown id.
func (db *DB) UpdateWorkflow(ctx context.Context, s workflow.State, expectedVersion int) error {
	if s.WorkflowID == "" {
		return errors.New("update workflow: no id")
	}
	if s.Version <= expectedVersion {
		return fmt.Errorf("update workflow %s: version %d does not advance past %d", s.WorkflowID, s.Version, expectedVersion)
	}
	release, err := db.enter(ctx)
	if err != nil {
		return fmt.Errorf("update workflow %s: %w", s.WorkflowID, err)
	}
	defer release()
	v, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("update workflow %s: %w", s.WorkflowID, err)
	}
	// The version check and the write happen under the workflow's lock:
	// of several updaters from one version, the first wins and the others
	// see its version.
	unlock := db.lock("m" + s.WorkflowID)
	defer unlock()
	old, err := db.readWorkflow(s.WorkflowID)
	if err != nil {
		return fmt.Errorf("update workflow %s: %w", s.WorkflowID, err)
	}
	if old.Version != expectedVersion {
		return fmt.Errorf("update workflow %s: stored version %d, expected %d: %w", s.WorkflowID, old.Version, expectedVersion, gateway.ErrConflict)
	}
	b := db.pdb.NewBatch()
	_ = b.Set(workflowKey(s.WorkflowID), v, nil)
	if err := db.commit(b); err != nil {
		return fmt.Errorf("update workflow %s: %w", s.WorkflowID, err)
	}
	return nil
}
