package dynamo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Agent attribute names.
const (
	agAddr    = "addr"
	agMode    = "mode"
	agHook    = "hook"
	agSecret  = "secret"
	agSchemas = "schemas"
	agKeyHash = "khash"
	agCreated = "created"
	agHeaders = "headers" // custom webhook headers: a map of strings
	agOwner   = "owner"   // on key-hash items: the lower-case address they belong to
)

// agentWriteAttempts bounds the read-then-transact loops below, which
// start over when a concurrent write changed the agent in between.
const agentWriteAttempts = 5

func agentAttrs(it item, a *gateway.Agent) item {
	it[agAddr] = str(a.Address)
	it[agMode] = str(string(a.DeliveryMode))
	putStr(it, agHook, a.WebhookURL)
	putStr(it, agSecret, a.WebhookSecret)
	if len(a.SupportedSchemas) > 0 {
		// A list, not a string set: order and duplicates are the agent's.
		it[agSchemas] = strList(a.SupportedSchemas)
	}
	putStr(it, agKeyHash, a.APIKeyHash)
	it[agCreated] = timeAttr(a.CreatedAt)
	if len(a.Headers) > 0 {
		m := make(map[string]types.AttributeValue, len(a.Headers))
		for k, v := range a.Headers {
			m[k] = str(v)
		}
		it[agHeaders] = &types.AttributeValueMemberM{Value: m}
	}
	return it
}

func getHeaders(it item) map[string]string {
	m, ok := it[agHeaders].(*types.AttributeValueMemberM)
	if !ok || len(m.Value) == 0 {
		return nil
	}
	out := make(map[string]string, len(m.Value))
	for k, v := range m.Value {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			out[k] = s.Value
		}
	}
	return out
}

// keyItem is the key-hash item: a copy of the agent, so that
// authentication is one read, and the owner it may be deleted for.
func keyItem(hash, owner string, a *gateway.Agent) item {
	it := agentAttrs(apiKeyKey(hash), a)
	it[agOwner] = str(owner)
	return it
}

// ownedKeyDelete deletes a key-hash item only while it belongs to owner:
// one now owned by another agent (the same key registered twice) stays.
func ownedKeyDelete(hash, owner, table string) *types.Delete {
	return &types.Delete{
		TableName:                 aws.String(table),
		Key:                       apiKeyKey(hash),
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #o = :o"),
		ExpressionAttributeNames:  map[string]string{"#pk": aPK, "#o": agOwner},
		ExpressionAttributeValues: item{":o": str(owner)},
	}
}

func decodeAgent(it item) (*gateway.Agent, error) {
	created, err := getTime(it, agCreated)
	if err != nil {
		return nil, fmt.Errorf("agent record: %w", err)
	}
	return &gateway.Agent{
		Address:          getStr(it, agAddr),
		DeliveryMode:     gateway.DeliveryMode(getStr(it, agMode)),
		WebhookURL:       getStr(it, agHook),
		WebhookSecret:    getStr(it, agSecret),
		SupportedSchemas: getStrList(it, agSchemas),
		APIKeyHash:       getStr(it, agKeyHash),
		CreatedAt:        created,
		Headers:          getHeaders(it),
	}, nil
}

// PutAgent writes the agent item and its key-hash item, and deletes the
// key-hash item of the key it replaces, in one transaction: the old key
// stops authenticating the moment the new one starts. The stored key hash
// is read first and the transaction requires it unchanged, so two
// concurrent replacements cannot leave a stale key-hash item behind. A
// replaced agent keeps its CreatedAt (its identity: only DeleteAgent ends
// it), which is set in a too; the transaction requires that unchanged as
// well, so an agent deleted and registered again meanwhile is not given
// the old one's.
func (s *Store) PutAgent(ctx context.Context, a *gateway.Agent) error {
	if a == nil || a.Address == "" {
		return errors.New("dynamo: put agent: no address")
	}
	addr := strings.ToLower(a.Address)
	newHash := strings.ToLower(a.APIKeyHash)
	defer s.agents.drop(addr)
	// A key-hash item now owned by another agent is not ours to delete;
	// learning so costs one cancelled transaction.
	keepOld := false
	for range agentWriteAttempts {
		// The key is projected too: an item holding none of the other
		// attributes would otherwise read back empty, as if absent.
		old, err := s.getItem(ctx, agentKey(addr), true, project(aPK, agKeyHash, agCreated))
		if err != nil {
			return fmt.Errorf("dynamo: put agent %s: read current: %w", a.Address, err)
		}
		oldHash := strings.ToLower(getStr(old, agKeyHash))
		kept := *a
		if old != nil {
			if kept.CreatedAt, err = getTime(old, agCreated); err != nil {
				return fmt.Errorf("dynamo: put agent %s: read current: %w", a.Address, err)
			}
		}

		agent := agentAttrs(agentKey(addr), &kept)
		agent[aG1P] = str(pkAgents)
		agent[aG1S] = str(addr)
		cond, names, values := unchangedSince(old)
		put := &types.Put{TableName: aws.String(s.table), Item: agent, ConditionExpression: aws.String(cond),
			ExpressionAttributeNames: names, ExpressionAttributeValues: values}
		items, deleteAt := s.withKeySwap(types.TransactWriteItem{Put: put}, addr, &kept, oldHash, newHash, keepOld)
		reasons, err := s.transact(ctx, items)
		if err != nil {
			return fmt.Errorf("dynamo: put agent %s: %w", a.Address, err)
		}
		if reasons == nil {
			a.CreatedAt = kept.CreatedAt
			return nil
		}
		if reasonFailed(reasons, deleteAt) && !reasonFailed(reasons, 0) {
			keepOld = true
		}
	}
	return fmt.Errorf("dynamo: put agent %s: changed concurrently %d times", a.Address, agentWriteAttempts)
}

// unchangedSince is the condition that the agent item is still as read:
// absent when old is nil, else with old's key hash and creation time.
func unchangedSince(old item) (string, map[string]string, item) {
	names := map[string]string{"#pk": aPK}
	if old == nil {
		return "attribute_not_exists(#pk)", names, nil
	}
	cond, values := "attribute_exists(#pk)", item{}
	for _, a := range []struct{ alias, attr string }{{"h", agKeyHash}, {"c", agCreated}} {
		names["#"+a.alias] = a.attr
		if v, ok := old[a.attr]; ok {
			cond += " AND #" + a.alias + " = :" + a.alias
			values[":"+a.alias] = v
		} else {
			cond += " AND attribute_not_exists(#" + a.alias + ")"
		}
	}
	if len(values) == 0 {
		values = nil // DynamoDB refuses an empty map
	}
	return cond, names, values
}

// withKeySwap follows the agent item's write with the key-hash items: the
// old one deleted (unless another agent owns it now: keepOld) and the new
// one written. deleteAt is the delete's index in the transaction, -1
// without one, for reading its cancellation reason.
func (s *Store) withKeySwap(agentWrite types.TransactWriteItem, addr string, a *gateway.Agent, oldHash, newHash string, keepOld bool) (items []types.TransactWriteItem, deleteAt int) {
	items = []types.TransactWriteItem{agentWrite}
	deleteAt = -1
	if oldHash != "" && oldHash != newHash && !keepOld {
		deleteAt = len(items)
		items = append(items, types.TransactWriteItem{Delete: ownedKeyDelete(oldHash, addr, s.table)})
	}
	if newHash != "" {
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName: aws.String(s.table),
			Item:      keyItem(newHash, addr, a),
		}})
	}
	return items, deleteAt
}

// ReplaceAgentKey sets the agent item's key hash, deletes the old key-hash
// item and writes the new one, in one transaction conditioned on the
// stored hash: the old key stops authenticating the moment the new one
// starts, and an agent deleted or re-registered meanwhile is left alone.
func (s *Store) ReplaceAgentKey(ctx context.Context, address, oldHash, newHash string) (*gateway.Agent, error) {
	addr := strings.ToLower(address)
	defer s.agents.drop(addr)
	keepOld := false
	for range agentWriteAttempts {
		cur, err := s.getItem(ctx, agentKey(addr), true, nil)
		if err != nil {
			return nil, fmt.Errorf("dynamo: replace agent key %s: read current: %w", address, err)
		}
		if cur == nil {
			return nil, fmt.Errorf("dynamo: replace agent key %s: %w", address, gateway.ErrNotFound)
		}
		a, err := decodeAgent(cur)
		if err != nil {
			return nil, fmt.Errorf("dynamo: replace agent key %s: %w", address, err)
		}
		curHash := strings.ToLower(a.APIKeyHash)
		if curHash != strings.ToLower(oldHash) {
			return nil, fmt.Errorf("dynamo: replace agent key %s: %w", address, gateway.ErrConflict)
		}
		a.APIKeyHash = newHash

		upd := &types.Update{
			TableName:                aws.String(s.table),
			Key:                      agentKey(addr),
			ExpressionAttributeNames: map[string]string{"#pk": aPK, "#h": agKeyHash},
		}
		values := item{}
		if curHash == "" {
			upd.ConditionExpression = aws.String("attribute_exists(#pk) AND attribute_not_exists(#h)")
		} else {
			upd.ConditionExpression = aws.String("attribute_exists(#pk) AND #h = :o")
			values[":o"] = cur[agKeyHash]
		}
		if newHash == "" {
			upd.UpdateExpression = aws.String("REMOVE #h")
		} else {
			upd.UpdateExpression = aws.String("SET #h = :n")
			values[":n"] = str(newHash)
		}
		if len(values) > 0 {
			upd.ExpressionAttributeValues = values
		}
		items, deleteAt := s.withKeySwap(types.TransactWriteItem{Update: upd}, addr, a, curHash, strings.ToLower(newHash), keepOld)
		reasons, err := s.transact(ctx, items)
		if err != nil {
			return nil, fmt.Errorf("dynamo: replace agent key %s: %w", address, err)
		}
		if reasons == nil {
			return a, nil
		}
		// The agent item moved on: read it again, which answers not found
		// or conflict. Only the old key-hash item failing means another
		// agent owns it now.
		if reasonFailed(reasons, deleteAt) && !reasonFailed(reasons, 0) {
			keepOld = true
		}
	}
	return nil, fmt.Errorf("dynamo: replace agent key %s: changed concurrently %d times", address, agentWriteAttempts)
}

// GetAgent reads the agent item, strongly consistent: a registration is
// followed at once by messages to and from the agent.
func (s *Store) GetAgent(ctx context.Context, address string) (*gateway.Agent, error) {
	it := s.agents.get(address)
	if it == nil {
		var err error
		if it, err = s.getItem(ctx, agentKey(address), true, nil); err != nil {
			return nil, fmt.Errorf("dynamo: get agent %s: %w", address, err)
		}
		if it == nil {
			return nil, fmt.Errorf("dynamo: get agent %s: %w", address, gateway.ErrNotFound)
		}
		s.agents.put(address, it)
	}
	// Decoded for each caller: every one gets its own copy.
	a, err := decodeAgent(it)
	if err != nil {
		return nil, fmt.Errorf("dynamo: get agent %s: %w", address, err)
	}
	return a, nil
}

// AgentByKeyHash is one read: the key-hash item carries a copy of the
// agent, written in the same transaction as the agent item. It runs on
// every authenticated request.
func (s *Store) AgentByKeyHash(ctx context.Context, h string) (*gateway.Agent, error) {
	if h == "" {
		return nil, fmt.Errorf("dynamo: agent by key hash: %w", gateway.ErrNotFound)
	}
	it, err := s.getItem(ctx, apiKeyKey(h), true, nil)
	// The hash is a credential: it stays out of error messages.
	if err != nil {
		return nil, fmt.Errorf("dynamo: agent by key hash: %w", err)
	}
	if it == nil {
		return nil, fmt.Errorf("dynamo: agent by key hash: %w", gateway.ErrNotFound)
	}
	a, err := decodeAgent(it)
	if err != nil {
		return nil, fmt.Errorf("dynamo: agent by key hash: %w", err)
	}
	return a, nil
}

// DeleteAgent empties the agent's inbox (purgeInbox), then deletes the
// agent item and its key-hash item together. The inbox goes first: a purge
// cut short (an error, the caller's deadline) leaves the agent in place,
// and the delete asked again finishes it.
func (s *Store) DeleteAgent(ctx context.Context, address string) error {
	addr := strings.ToLower(address)
	defer s.agents.drop(addr)
	if err := s.purgeInbox(ctx, addr); err != nil {
		return fmt.Errorf("dynamo: delete agent %s: purge its inbox: %w", address, err)
	}
	keepKey := false
	for range agentWriteAttempts {
		// With the key projected, an agent without a key hash is found.
		old, err := s.getItem(ctx, agentKey(addr), true, project(aPK, agKeyHash))
		if err != nil {
			return fmt.Errorf("dynamo: delete agent %s: read current: %w", address, err)
		}
		if old == nil {
			return fmt.Errorf("dynamo: delete agent %s: %w", address, gateway.ErrNotFound)
		}
		hash := strings.ToLower(getStr(old, agKeyHash))
		del := &types.Delete{
			TableName:                aws.String(s.table),
			Key:                      agentKey(addr),
			ConditionExpression:      aws.String("attribute_exists(#pk) AND attribute_not_exists(#h)"),
			ExpressionAttributeNames: map[string]string{"#pk": aPK, "#h": agKeyHash},
		}
		if hash != "" {
			del.ConditionExpression = aws.String("#h = :h")
			del.ExpressionAttributeNames = map[string]string{"#h": agKeyHash}
			del.ExpressionAttributeValues = item{":h": old[agKeyHash]}
		}
		items := []types.TransactWriteItem{{Delete: del}}
		keyAt := -1
		if hash != "" && !keepKey {
			keyAt = 1
			items = append(items, types.TransactWriteItem{Delete: ownedKeyDelete(hash, addr, s.table)})
		}
		reasons, err := s.transact(ctx, items)
		if err != nil {
			return fmt.Errorf("dynamo: delete agent %s: %w", address, err)
		}
		if reasons == nil {
			return nil
		}
		if reasonFailed(reasons, keyAt) && !reasonFailed(reasons, 0) {
			keepKey = true
		}
	}
	return fmt.Errorf("dynamo: delete agent %s: changed concurrently %d times", address, agentWriteAttempts)
}

// ListAgents queries the AGENTS partition of gsi1 (keys only) and reads the
// agents with BatchGetItem; no scan.
func (s *Store) ListAgents(ctx context.Context) ([]*gateway.Agent, error) {
	refs, err := s.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(gsiAgents),
		KeyConditionExpression:    aws.String("#p = :p"),
		ExpressionAttributeNames:  map[string]string{"#p": aG1P},
		ExpressionAttributeValues: item{":p": str(pkAgents)},
	})
	if err != nil {
		return nil, fmt.Errorf("dynamo: list agents: %w", err)
	}
	keys := make([]item, len(refs))
	for i, r := range refs {
		keys[i] = key(getStr(r, aPK), getStr(r, aSK))
	}
	found, err := s.batchGet(ctx, keys, true, nil)
	if err != nil {
		return nil, fmt.Errorf("dynamo: list agents: %w", err)
	}
	out := make([]*gateway.Agent, 0, len(found))
	for _, it := range found {
		a, err := decodeAgent(it)
		if err != nil {
			return nil, fmt.Errorf("dynamo: list agents: %s: %w", getStr(it, aPK), err)
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Address) < strings.ToLower(out[j].Address) })
	return out, nil
}
