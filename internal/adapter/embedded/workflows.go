package embedded

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
	id := []byte(s.WorkflowID)
	// Through the committer: the existence check and the put are in one
	// transaction, so two creates of one id cannot both succeed, and a
	// re-run of fn (its group retried) sees the same bucket again.
	err = db.commit.do(func(tx *wtx) error {
		b := tx.Bucket(bucketWorkflows)
		if b.Get(id) != nil {
			return gateway.ErrDuplicate
		}
		return b.Put(id, v)
	})
	if err != nil {
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
	var s workflow.State
	err = db.read(func(r reader) error {
		s, err = readWorkflow(r, []byte(id))
		return err
	})
	if err != nil {
		return workflow.State{}, fmt.Errorf("get workflow %s: %w", id, err)
	}
	return s, nil
}

// readWorkflow decodes inside the transaction: the value is only valid
// until it ends.
func readWorkflow(r reader, id []byte) (workflow.State, error) {
	v := r.bucket(bucketWorkflows).Get(id)
	if v == nil {
		return workflow.State{}, gateway.ErrNotFound
	}
	var s workflow.State
	if err := json.Unmarshal(v, &s); err != nil {
		return workflow.State{}, fmt.Errorf("corrupt workflow record: %w", err)
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
	id := []byte(s.WorkflowID)
	// The version check runs in the write transaction, after every earlier
	// write of the group: of several updaters from one version, the first
	// in the group wins and the others see its version.
	err = db.commit.do(func(tx *wtx) error {
		old, err := readWorkflow(tx, id)
		if err != nil {
			return err
		}
		if old.Version != expectedVersion {
			return fmt.Errorf("stored version %d, expected %d: %w", old.Version, expectedVersion, gateway.ErrConflict)
		}
		return tx.Bucket(bucketWorkflows).Put(id, v)
	})
	if err != nil {
		return fmt.Errorf("update workflow %s: %w", s.WorkflowID, err)
	}
	return nil
}
