package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// TestAdminActionsAreAudited: every change an admin makes leaves one
// "audit:" line naming what changed, and a refused attempt leaves none.
func TestAdminActionsAreAudited(t *testing.T) {
	ctx := context.Background()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer func() { assert.NoError(t, db.Close()) }()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", Logger: log},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Schemas: schema.NewRegistry(db)})
	require.NoError(t, err)
	admin := gateway.Principal{Kind: gateway.AdminCaller}

	reg, err := svc.RegisterAgent(ctx, admin, gateway.RegisterRequest{Address: "alice", DeliveryMode: gateway.ModePull})
	require.NoError(t, err)
	_, _, err = svc.PutSchema(ctx, admin, "agntcy:example.note.v1", json.RawMessage(`{"type":"object"}`))
	require.NoError(t, err)
	require.NoError(t, svc.DeleteSchema(ctx, admin, "agntcy:example.note.v1"))
	require.NoError(t, svc.DeleteAgent(ctx, admin, "alice"))

	// Refused: an agent is not the admin.
	agent := gateway.Principal{Kind: gateway.AgentCaller, Agent: &gateway.Agent{Address: "bob@example.org"}}
	_, err = svc.RegisterAgent(ctx, agent, gateway.RegisterRequest{Address: "mallory", DeliveryMode: gateway.ModePull})
	require.Error(t, err)

	var audits []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "%s", line)
		if strings.HasPrefix(rec["msg"].(string), "audit:") {
			audits = append(audits, rec)
		}
	}
	require.Len(t, audits, 4, "%s", buf.String())
	want := []struct{ msg, key, val string }{
		{"audit: agent registered", "address", reg.Address},
		{"audit: schema registered", "schema", "agntcy:example.note.v1"},
		{"audit: schema deleted", "schema", "agntcy:example.note.v1"},
		{"audit: agent deleted", "address", "alice@example.org"},
	}
	for i, w := range want {
		assert.Equal(t, w.msg, audits[i]["msg"])
		assert.Equal(t, w.val, audits[i][w.key])
	}
	assert.NotContains(t, buf.String(), reg.APIKey, "credentials never reach the log")
}
