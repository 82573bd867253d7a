package awscost

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// shadowTimeout bounds one uncounted read; it runs even when the counted
// call's context has ended, so that the figures stay complete.
const shadowTimeout = 10 * time.Second

// plannedWrite is one item a write call touches, with the item as it was
// before the call.
type plannedWrite struct {
	table  string
	schema *tableSchema
	key    Item
	kind   writeKind
	before Item
}

type writePlan struct {
	writes        []plannedWrite
	transactional bool
}

// planWrites reads, before a write call, the items it will touch; nil
// for calls that write nothing.
func (c *Counter) planWrites(ctx context.Context, params any) (*writePlan, error) {
	type target struct {
		table string
		key   Item // nil: take it from item
		item  Item
		kind  writeKind
	}
	var (
		targets       []target
		transactional bool
	)
	switch in := params.(type) {
	case *dynamodb.PutItemInput:
		targets = append(targets, target{table: aws.ToString(in.TableName), item: in.Item, kind: writePut})
	case *dynamodb.UpdateItemInput:
		targets = append(targets, target{table: aws.ToString(in.TableName), key: in.Key, kind: writeUpdate})
	case *dynamodb.DeleteItemInput:
		targets = append(targets, target{table: aws.ToString(in.TableName), key: in.Key, kind: writeDelete})
	case *dynamodb.BatchWriteItemInput:
		for table, reqs := range in.RequestItems {
			for _, r := range reqs {
				switch {
				case r.PutRequest != nil:
					targets = append(targets, target{table: table, item: r.PutRequest.Item, kind: writePut})
				case r.DeleteRequest != nil:
					targets = append(targets, target{table: table, key: r.DeleteRequest.Key, kind: writeDelete})
				}
			}
		}
	case *dynamodb.TransactWriteItemsInput:
		transactional = true
		for _, ti := range in.TransactItems {
			switch {
			case ti.Put != nil:
				targets = append(targets, target{table: aws.ToString(ti.Put.TableName), item: ti.Put.Item, kind: writePut})
			case ti.Update != nil:
				targets = append(targets, target{table: aws.ToString(ti.Update.TableName), key: ti.Update.Key, kind: writeUpdate})
			case ti.Delete != nil:
				targets = append(targets, target{table: aws.ToString(ti.Delete.TableName), key: ti.Delete.Key, kind: writeDelete})
			case ti.ConditionCheck != nil:
				targets = append(targets, target{table: aws.ToString(ti.ConditionCheck.TableName), key: ti.ConditionCheck.Key, kind: writeCheck})
			}
		}
	default:
		return nil, nil
	}
	plan := &writePlan{transactional: transactional}
	for _, t := range targets {
		s, err := c.schema(ctx, t.table)
		if err != nil {
			return nil, err
		}
		key := t.key
		if key == nil {
			if key = s.keyOf(t.item); key == nil {
				return nil, fmt.Errorf("an item written to %s lacks its primary key", t.table)
			}
		}
		before, err := c.get(ctx, t.table, key)
		if err != nil {
			return nil, err
		}
		plan.writes = append(plan.writes, plannedWrite{table: t.table, schema: s, key: key, kind: t.kind, before: before})
	}
	return plan, nil
}

// meterDynamo adds what a DynamoDB call cost to u.
func (c *Counter) meterDynamo(ctx context.Context, u *Usage, h *heatOf, op string, params, result any, callErr error, plan *writePlan) error {
	if plan != nil {
		return c.meterWrites(ctx, u, h, result, callErr, plan)
	}
	if callErr != nil {
		// A read that failed read nothing.
		return nil //nolint:nilerr // the caller has the call's error; its cost is nil
	}
	switch in := params.(type) {
	case *dynamodb.GetItemInput:
		out, _ := result.(*dynamodb.GetItemOutput)
		it := Item(nil)
		if out != nil {
			it = out.Item
		}
		if in.ProjectionExpression != nil || len(in.AttributesToGet) > 0 {
			// Billed on the whole item, not on what was projected.
			var err error
			if it, err = c.get(ctx, aws.ToString(in.TableName), in.Key); err != nil {
				return err
			}
		}
		units := ReadUnits(ItemSize(it), aws.ToBool(in.ConsistentRead))
		u.ReadUnits += units
		if err := c.readHeat(ctx, h, aws.ToString(in.TableName), in.Key, units); err != nil {
			return err
		}
	case *dynamodb.BatchGetItemInput:
		out, _ := result.(*dynamodb.BatchGetItemOutput)
		for table, ka := range in.RequestItems {
			var left []Item
			if out != nil {
				left = out.UnprocessedKeys[table].Keys
			}
			for _, k := range ka.Keys {
				if containsKey(left, k) {
					continue
				}
				it, err := c.get(ctx, table, k)
				if err != nil {
					return err
				}
				units := ReadUnits(ItemSize(it), aws.ToBool(ka.ConsistentRead))
				u.ReadUnits += units
				if err := c.readHeat(ctx, h, table, k, units); err != nil {
					return err
				}
			}
		}
	case *dynamodb.TransactGetItemsInput:
		for _, g := range in.TransactItems {
			if g.Get == nil {
				continue
			}
			it, err := c.get(ctx, aws.ToString(g.Get.TableName), g.Get.Key)
			if err != nil {
				return err
			}
			// A transactional read costs two strongly consistent ones.
			units := 2 * ReadUnits(ItemSize(it), true)
			u.ReadUnits += units
			if err := c.readHeat(ctx, h, aws.ToString(g.Get.TableName), g.Get.Key, units); err != nil {
				return err
			}
		}
	case *dynamodb.QueryInput:
		size, err := c.replayQuery(ctx, in)
		if err != nil {
			return err
		}
		// Index reads are always eventually consistent.
		units := ReadUnits(size, aws.ToBool(in.ConsistentRead) && in.IndexName == nil)
		u.ReadUnits += units
		if h != nil {
			sch, err := c.schema(ctx, aws.ToString(in.TableName))
			if err != nil {
				return err
			}
			h.read(sch.queryPartition(in), units)
		}
	case *dynamodb.ScanInput:
		size, err := c.replayScan(ctx, in)
		if err != nil {
			return err
		}
		u.ReadUnits += ReadUnits(size, aws.ToBool(in.ConsistentRead) && in.IndexName == nil)
	case *dynamodb.ExecuteStatementInput, *dynamodb.BatchExecuteStatementInput, *dynamodb.ExecuteTransactionInput:
		u.Unmetered = map[string]float64{"dynamodb:" + op: 1}
	}
	return nil
}

// meterWrites prices a write call from the items before (read in
// planWrites) and after it.
func (c *Counter) meterWrites(ctx context.Context, u *Usage, h *heatOf, result any, callErr error, plan *writePlan) error {
	failed := false
	if callErr != nil {
		var ccf *types.ConditionalCheckFailedException
		var tce *types.TransactionCanceledException
		switch {
		case errors.As(callErr, &ccf):
		case errors.As(callErr, &tce):
			// Billed like failed conditions: the items were read and
			// locked. (DynamoDB does not document a cancelled
			// transaction's cost item by item; this is the upper bound.)
		default:
			// Refused before any item was touched (validation,
			// throttling, a network error): nothing billed.
			return nil
		}
		failed = true
		u.FailedWrites++
	}
	var unprocessed map[string][]types.WriteRequest
	if out, ok := result.(*dynamodb.BatchWriteItemOutput); ok && out != nil {
		unprocessed = out.UnprocessedItems
	}
	for _, w := range plan.writes {
		if isUnprocessed(unprocessed[w.table], w.schema, w.key) {
			continue
		}
		var after Item
		switch {
		case failed || w.kind == writeCheck:
			after = w.before
		case w.kind != writeDelete:
			var err error
			if after, err = c.get(ctx, w.table, w.key); err != nil {
				return err
			}
		}
		table, index := w.schema.writeCost(w.kind, w.before, after, plan.transactional, failed)
		u.WriteUnits += table + index
		u.IndexWriteUnits += index
		h.write(w.schema.tablePartition(w.table, w.key), table)
		if !failed && w.kind != writeCheck {
			w.schema.indexWritesBy(w.table, w.before, after, h)
		}
	}
	return nil
}

func isUnprocessed(reqs []types.WriteRequest, s *tableSchema, key Item) bool {
	for _, r := range reqs {
		var k Item
		switch {
		case r.PutRequest != nil:
			k = s.keyOf(r.PutRequest.Item)
		case r.DeleteRequest != nil:
			k = r.DeleteRequest.Key
		}
		if k != nil && sameAttrs(k, key, s.keys) {
			return true
		}
	}
	return false
}

func containsKey(keys []Item, k Item) bool {
	for _, x := range keys {
		if len(x) == len(k) {
			names := make([]string, 0, len(k))
			for n := range k {
				names = append(names, n)
			}
			if sameAttrs(x, k, names) {
				return true
			}
		}
	}
	return false
}

// readHeat books a read of the item with this key on its partition.
func (c *Counter) readHeat(ctx context.Context, h *heatOf, table string, key Item, units float64) error {
	if h == nil {
		return nil
	}
	sch, err := c.schema(ctx, table)
	if err != nil {
		return err
	}
	h.read(sch.tablePartition(table, key), units)
	return nil
}

// get reads an item in full, strongly consistent, uncounted; a missing
// item is nil.
func (c *Counter) get(ctx context.Context, table string, key Item) (Item, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shadowTimeout)
	defer cancel()
	out, err := c.shadow.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("read an item of %s: %w", table, err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// placeholder matches the #name and :value placeholders of an expression.
var placeholder = regexp.MustCompile(`[#:][A-Za-z0-9_]+`)

// replayQuery runs the query again, uncounted, without what does not
// change its cost (filter, projection): a query is billed on every item
// it read, before filtering, in full. The same Limit and start key give
// the same page. It returns the bytes read.
func (c *Counter) replayQuery(ctx context.Context, in *dynamodb.QueryInput) (int, error) {
	q := *in
	q.FilterExpression, q.ProjectionExpression, q.Select = nil, nil, ""
	q.AttributesToGet, q.QueryFilter, q.ConditionalOperator = nil, nil, ""
	q.ReturnConsumedCapacity = ""
	// DynamoDB refuses placeholders no expression uses.
	used := map[string]bool{}
	for _, p := range placeholder.FindAllString(aws.ToString(in.KeyConditionExpression), -1) {
		used[p] = true
	}
	q.ExpressionAttributeNames = nil
	for k, v := range in.ExpressionAttributeNames {
		if used[k] {
			if q.ExpressionAttributeNames == nil {
				q.ExpressionAttributeNames = map[string]string{}
			}
			q.ExpressionAttributeNames[k] = v
		}
	}
	q.ExpressionAttributeValues = nil
	for k, v := range in.ExpressionAttributeValues {
		if used[k] {
			if q.ExpressionAttributeValues == nil {
				q.ExpressionAttributeValues = Item{}
			}
			q.ExpressionAttributeValues[k] = v
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shadowTimeout)
	defer cancel()
	out, err := c.shadow.Query(ctx, &q)
	if err != nil {
		return 0, fmt.Errorf("replay a query of %s: %w", aws.ToString(in.TableName), err)
	}
	size := 0
	for _, it := range out.Items {
		size += ItemSize(it)
	}
	return size, nil
}

// replayScan is replayQuery for a scan.
func (c *Counter) replayScan(ctx context.Context, in *dynamodb.ScanInput) (int, error) {
	q := *in
	q.FilterExpression, q.ProjectionExpression, q.Select = nil, nil, ""
	q.AttributesToGet, q.ScanFilter, q.ConditionalOperator = nil, nil, ""
	q.ExpressionAttributeNames, q.ExpressionAttributeValues = nil, nil
	q.ReturnConsumedCapacity = ""
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shadowTimeout)
	defer cancel()
	out, err := c.shadow.Scan(ctx, &q)
	if err != nil {
		return 0, fmt.Errorf("replay a scan of %s: %w", aws.ToString(in.TableName), err)
	}
	size := 0
	for _, it := range out.Items {
		size += ItemSize(it)
	}
	return size, nil
}

// schema describes a table (once per table name).
func (c *Counter) schema(ctx context.Context, table string) (*tableSchema, error) {
	c.mu.Lock()
	s := c.schemas[table]
	c.mu.Unlock()
	if s != nil {
		return s, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shadowTimeout)
	defer cancel()
	out, err := c.shadow.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return nil, fmt.Errorf("describe table %s: %w", table, err)
	}
	s = schemaOf(out.Table)
	c.mu.Lock()
	c.schemas[table] = s
	c.mu.Unlock()
	return s, nil
}

func schemaOf(t *types.TableDescription) *tableSchema {
	s := &tableSchema{keys: keyNames(t.KeySchema)}
	for _, ix := range t.GlobalSecondaryIndexes {
		s.indexes = append(s.indexes, indexOf(aws.ToString(ix.IndexName), ix.KeySchema, ix.Projection))
	}
	for _, ix := range t.LocalSecondaryIndexes {
		s.indexes = append(s.indexes, indexOf(aws.ToString(ix.IndexName), ix.KeySchema, ix.Projection))
	}
	return s
}

func indexOf(name string, keys []types.KeySchemaElement, p *types.Projection) indexSchema {
	ix := indexSchema{name: name, keys: keyNames(keys), projection: projectKeysOnly}
	if p != nil {
		if p.ProjectionType != "" {
			ix.projection = string(p.ProjectionType)
		}
		ix.include = p.NonKeyAttributes
	}
	return ix
}

// keyNames lists the partition key first, then the sort key.
func keyNames(ks []types.KeySchemaElement) []string {
	var hash, rng []string
	for _, k := range ks {
		if k.KeyType == types.KeyTypeRange {
			rng = append(rng, aws.ToString(k.AttributeName))
		} else {
			hash = append(hash, aws.ToString(k.AttributeName))
		}
	}
	return append(hash, rng...)
}
