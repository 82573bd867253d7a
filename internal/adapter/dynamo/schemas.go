package dynamo

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/agentry/agentry/internal/core/schema"
)

// Schema items: pk SCHEMAS, sk <schema id>, the record's JSON in aRaw. One
// partition holds the whole registry so that listing it is one Query; a
// registry is small (admin-managed documents of at most 256 KiB, each
// under the item limit) and read through the Registry's cache, so the
// partition sees little traffic.
const pkSchemas = "SCHEMAS"

var _ schema.Store = (*Store)(nil)

// PutSchema creates or replaces a schema record.
func (s *Store) PutSchema(ctx context.Context, rec schema.Record) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("dynamo: put schema %s: %w", rec.ID, err)
	}
	it := key(pkSchemas, rec.ID)
	it[aRaw] = bin(v)
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: it}); err != nil {
		return fmt.Errorf("dynamo: put schema %s: %w", rec.ID, err)
	}
	return nil
}

// GetSchema is a strong read: an admin's PUT is visible to the next
// validation.
func (s *Store) GetSchema(ctx context.Context, id string) (schema.Record, error) {
	it, err := s.getItem(ctx, key(pkSchemas, id), true, nil)
	if err != nil {
		return schema.Record{}, fmt.Errorf("dynamo: get schema %s: %w", id, err)
	}
	if it == nil {
		return schema.Record{}, fmt.Errorf("dynamo: get schema %s: %w", id, schema.ErrNotFound)
	}
	return decodeSchema(id, getBin(it, aRaw))
}

func decodeSchema(id string, raw []byte) (schema.Record, error) {
	var rec schema.Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return schema.Record{}, fmt.Errorf("dynamo: schema %s: corrupt record: %w", id, err)
	}
	return rec, nil
}

// ListSchemas queries the SCHEMAS partition, ordered by id.
func (s *Store) ListSchemas(ctx context.Context) ([]schema.Record, error) {
	items, err := s.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#p = :p"),
		ExpressionAttributeNames:  map[string]string{"#p": aPK},
		ExpressionAttributeValues: item{":p": str(pkSchemas)},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("dynamo: list schemas: %w", err)
	}
	out := make([]schema.Record, 0, len(items))
	for _, it := range items {
		rec, err := decodeSchema(getStr(it, aSK), getBin(it, aRaw))
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// DeleteSchema removes a record; schema.ErrNotFound for an unknown id.
func (s *Store) DeleteSchema(ctx context.Context, id string) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                aws.String(s.table),
		Key:                      key(pkSchemas, id),
		ConditionExpression:      aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": aPK},
	})
	if isConditionFailed(err) {
		return fmt.Errorf("dynamo: delete schema %s: %w", id, schema.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("dynamo: delete schema %s: %w", id, err)
	}
	return nil
}
