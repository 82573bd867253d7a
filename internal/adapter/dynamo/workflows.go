package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/core/workflow"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Workflow item: pk WF#<id>, sk WF. The State JSON is in aRaw, or in S3
// with its reference in aBlob when it does not fit (as message bodies);
// aVer copies State.Version so that the update condition can compare it
// without parsing the JSON.
const (
	pfxWorkflow = "WF#"
	skWorkflow  = "WF"
	aVer        = "ver" // N: State.Version
)

var _ gateway.WorkflowStore = (*Store)(nil)

func workflowKey(id string) item { return key(pfxWorkflow+id, skWorkflow) }

// workflowItem builds the whole item for s; every write replaces it.
func (s *Store) workflowItem(ctx context.Context, st workflow.State) (item, error) {
	if st.WorkflowID == "" {
		return nil, errors.New("no workflow id")
	}
	v, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	it := workflowKey(st.WorkflowID)
	it[aVer] = num(int64(st.Version))
	// Kept until the deadline plus Retention, so that GET /v1/workflows/{id}
	// answers for as long as the messages of the workflow are kept.
	it[aTTL] = num(ttl(st.Deadline.Add(s.retention)))
	it[aRaw] = bin(v)
	if len(v) <= awsres.MaxItemBytes && itemSize(it) <= maxItemBytes {
		return it, nil
	}
	delete(it, aRaw)
	if s.blobs == nil {
		return nil, fmt.Errorf("state of %d bytes (inline limit %d): %w", len(v), awsres.MaxItemBytes, ErrBodyTooLarge)
	}
	// Uploaded before the conditional put: a stored item always has its
	// state, and a blob orphaned by a lost race or replaced by an update is
	// removed by the bucket's lifecycle rule.
	ref, err := s.blobs.Put(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("store state of %d bytes in S3: %w", len(v), err)
	}
	it[aBlob] = str(ref)
	return it, nil
}

// CreateWorkflow puts the item if no item has its key: gateway.ErrDuplicate
// otherwise.
func (s *Store) CreateWorkflow(ctx context.Context, st workflow.State) error {
	it, err := s.workflowItem(ctx, st)
	if err != nil {
		return fmt.Errorf("dynamo: create workflow %s: %w", st.WorkflowID, err)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     it,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": aPK},
	})
	if isConditionFailed(err) {
		return fmt.Errorf("dynamo: create workflow %s: %w", st.WorkflowID, gateway.ErrDuplicate)
	}
	if err != nil {
		return fmt.Errorf("dynamo: create workflow %s: %w", st.WorkflowID, err)
	}
	return nil
}

// GetWorkflow is a strong read: the driver reads, applies an event and
// writes back conditioned on what it read, so a stale read would only buy
// a conflict and a retry.
func (s *Store) GetWorkflow(ctx context.Context, id string) (workflow.State, error) {
	it, err := s.getItem(ctx, workflowKey(id), true, nil)
	if err != nil {
		return workflow.State{}, fmt.Errorf("dynamo: get workflow %s: %w", id, err)
	}
	// TTL deletion lags by days: an expired item is already gone.
	if it == nil || expired(it, s.now()) {
		return workflow.State{}, fmt.Errorf("dynamo: get workflow %s: %w", id, gateway.ErrNotFound)
	}
	raw := getBin(it, aRaw)
	if ref := getStr(it, aBlob); ref != "" {
		if s.blobs == nil {
			return workflow.State{}, fmt.Errorf("dynamo: get workflow %s: state is in S3 (%s) and no blob store is configured", id, ref)
		}
		if raw, err = s.blobs.Get(ctx, ref); err != nil {
			return workflow.State{}, fmt.Errorf("dynamo: get workflow %s: %w", id, err)
		}
	}
	var st workflow.State
	if err := json.Unmarshal(raw, &st); err != nil {
		return workflow.State{}, fmt.Errorf("dynamo: get workflow %s: corrupt state: %w", id, err)
	}
	return st, nil
}

// UpdateWorkflow replaces the item on condition that its version is still
// expectedVersion. A failed condition is told apart by one strong read of
// the version: no item is gateway.ErrNotFound, any other is
// gateway.ErrConflict.
func (s *Store) UpdateWorkflow(ctx context.Context, st workflow.State, expectedVersion int) error {
	if st.Version <= expectedVersion {
		return fmt.Errorf("dynamo: update workflow %s: version %d does not advance past %d", st.WorkflowID, st.Version, expectedVersion)
	}
	it, err := s.workflowItem(ctx, st)
	if err != nil {
		return fmt.Errorf("dynamo: update workflow %s: %w", st.WorkflowID, err)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item:      it,
		// An absent item has no version, so the condition fails for it too
		// and the put never creates one.
		ConditionExpression:       aws.String("#v = :v"),
		ExpressionAttributeNames:  map[string]string{"#v": aVer},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(int64(expectedVersion))},
	})
	if err == nil {
		return nil
	}
	if !isConditionFailed(err) {
		return fmt.Errorf("dynamo: update workflow %s: %w", st.WorkflowID, err)
	}
	cur, err := s.getItem(ctx, workflowKey(st.WorkflowID), true, project(aVer))
	if err != nil {
		return fmt.Errorf("dynamo: update workflow %s: read version after a failed condition: %w", st.WorkflowID, err)
	}
	if cur == nil {
		return fmt.Errorf("dynamo: update workflow %s: %w", st.WorkflowID, gateway.ErrNotFound)
	}
	stored, _ := getNum(cur, aVer)
	return fmt.Errorf("dynamo: update workflow %s: stored version %d, expected %d: %w",
		st.WorkflowID, stored, expectedVersion, gateway.ErrConflict)
}
