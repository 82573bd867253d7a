package pebblestore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/schema/schematest"
	"github.com/agentry/agentry/internal/usecase/gateway"
	"github.com/agentry/agentry/internal/usecase/gateway/gatewaytest"
)

// testLease is short so that the contract suite can watch leases lapse.
const testLease = time.Second

func openDB(t *testing.T, opts Options) *DB {
	t.Helper()
	db, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func backend(t *testing.T, dir string) gatewaytest.Backend {
	db := openDB(t, Options{Dir: dir, LeaseTimeout: testLease})
	return gatewaytest.Backend{
		Messages:     db,
		Inbox:        db,
		Agents:       db,
		Queue:        db,
		Workflows:    db,
		LeaseTimeout: testLease,
		Reopen: func(t *testing.T) gatewaytest.Backend {
			require.NoError(t, db.Close())
			return backend(t, dir)
		},
	}
}

func factory(t *testing.T) gatewaytest.Backend { return backend(t, t.TempDir()) }

func TestMessageStore(t *testing.T)  { gatewaytest.RunMessageStore(t, factory) }
func TestInboxStore(t *testing.T)    { gatewaytest.RunInboxStore(t, factory) }
func TestAgentStore(t *testing.T)    { gatewaytest.RunAgentStore(t, factory) }
func TestTaskQueue(t *testing.T)     { gatewaytest.RunTaskQueue(t, factory) }
func TestWorkflowStore(t *testing.T) { gatewaytest.RunWorkflowStore(t, factory) }

func TestSchemaStore(t *testing.T) {
	schematest.RunStore(t, func(t *testing.T) schema.Store { return openDB(t, Options{Dir: t.TempDir()}) })
}

var (
	_ gateway.MessageStore  = (*DB)(nil)
	_ gateway.InboxStore    = (*DB)(nil)
	_ gateway.AgentStore    = (*DB)(nil)
	_ gateway.TaskQueue     = (*DB)(nil)
	_ gateway.Pinger        = (*DB)(nil)
	_ gateway.WorkflowStore = (*DB)(nil)
	_ gateway.Settler       = (*DB)(nil)
)
