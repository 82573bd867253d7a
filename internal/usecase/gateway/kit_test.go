package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// localService is a gateway for example.org on an embedded store in a
// temporary dir, with these pull agents, each of whose key is
// "key-<name>"; as authenticates one. pol may be nil (no policy).
func localService(t *testing.T, pol *policy.Policy, names ...string) (svc *gateway.Service, as func(name string) gateway.Principal) {
	t.Helper()
	ctx := context.Background()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	for _, name := range names {
		require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: name + "@example.org", DeliveryMode: gateway.ModePull, APIKeyHash: gateway.HashAPIKey("key-" + name)}))
	}
	svc, err = gateway.NewService(gateway.Config{Domain: "example.org", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db, Policy: pol})
	require.NoError(t, err)
	return svc, func(name string) gateway.Principal {
		t.Helper()
		p, err := svc.Authenticate(ctx, "key-"+name)
		require.NoError(t, err)
		return p
	}
}
