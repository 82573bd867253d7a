package dynamo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Webhook subscriptions are two items each, written and deleted together:
//
//	WEBHOOK#<id>         WEBHOOK   the subscription's JSON ("wh")
//	WEBHOOKS#<owner>     <id>      the same JSON: the owner's listing
//
// so that reading one by id and listing an owner's (what the notifier
// does for a message's sender) are each one request. The admin's owner is
// "" (pk WEBHOOKS#).
const (
	pkWebhookPrefix  = "WEBHOOK#"
	pkWebhooksPrefix = "WEBHOOKS#"
	skWebhook        = "WEBHOOK"
	aWebhook         = "wh" // S: JSON of the gateway.WebhookSubscription
)

var _ gateway.WebhookStore = (*Store)(nil)

func webhookItemKey(id string) item { return key(pkWebhookPrefix+id, skWebhook) }

func webhookListKey(owner, id string) item {
	return key(pkWebhooksPrefix+strings.ToLower(owner), id)
}

// PutWebhook creates or replaces a subscription (gateway.WebhookStore).
func (s *Store) PutWebhook(ctx context.Context, w gateway.WebhookSubscription) error {
	v, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("dynamo: put webhook %s: %w", w.ID, err)
	}
	byID, listed := webhookItemKey(w.ID), webhookListKey(w.Owner, w.ID)
	byID[aWebhook], listed[aWebhook] = str(string(v)), str(string(v))
	_, err = s.transact(ctx, []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(s.table), Item: byID}},
		{Put: &types.Put{TableName: aws.String(s.table), Item: listed}},
	})
	if err != nil {
		return fmt.Errorf("dynamo: put webhook %s: %w", w.ID, err)
	}
	return nil
}

// GetWebhook is a strong read: a subscription deleted is not notified
// again (gateway.WebhookStore).
func (s *Store) GetWebhook(ctx context.Context, id string) (gateway.WebhookSubscription, error) {
	it, err := s.getItem(ctx, webhookItemKey(id), true, nil)
	if err != nil {
		return gateway.WebhookSubscription{}, fmt.Errorf("dynamo: get webhook %s: %w", id, err)
	}
	if it == nil {
		return gateway.WebhookSubscription{}, fmt.Errorf("dynamo: get webhook %s: %w", id, gateway.ErrNotFound)
	}
	return decodeWebhook(id, getStr(it, aWebhook))
}

func decodeWebhook(id, raw string) (gateway.WebhookSubscription, error) {
	var w gateway.WebhookSubscription
	if err := json.Unmarshal([]byte(raw), &w); err != nil {
		return w, fmt.Errorf("dynamo: webhook %s: corrupt record: %w", id, err)
	}
	return w, nil
}

// ListWebhooks queries the owner's listing, ordered by id
// (gateway.WebhookStore); the use case keeps it small.
func (s *Store) ListWebhooks(ctx context.Context, owner string) ([]gateway.WebhookSubscription, error) {
	items, err := s.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#p = :p"),
		ExpressionAttributeNames:  map[string]string{"#p": aPK},
		ExpressionAttributeValues: item{":p": str(pkWebhooksPrefix + strings.ToLower(owner))},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("dynamo: list webhooks: %w", err)
	}
	out := make([]gateway.WebhookSubscription, 0, len(items))
	for _, it := range items {
		w, err := decodeWebhook(getStr(it, aSK), getStr(it, aWebhook))
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// DeleteWebhook removes both items of a subscription (gateway.WebhookStore).
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	w, err := s.GetWebhook(ctx, id)
	if err != nil {
		return err
	}
	reasons, err := s.transact(ctx, []types.TransactWriteItem{
		{Delete: &types.Delete{TableName: aws.String(s.table), Key: webhookItemKey(id),
			ConditionExpression: aws.String("attribute_exists(#pk)"), ExpressionAttributeNames: map[string]string{"#pk": aPK}}},
		{Delete: &types.Delete{TableName: aws.String(s.table), Key: webhookListKey(w.Owner, id)}},
	})
	if err != nil {
		return fmt.Errorf("dynamo: delete webhook %s: %w", id, err)
	}
	if reasonFailed(reasons, 0) {
		return fmt.Errorf("dynamo: delete webhook %s: %w", id, gateway.ErrNotFound)
	}
	return nil
}
