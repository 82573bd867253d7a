package localgw

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/agentry/agentry/internal/adapter/observe/prom"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Store is the local gateway's store: every store port, and what the
// probes and shutdown need of it.
type Store interface {
	gateway.MessageStore
	gateway.InboxStore
	gateway.AgentStore
	gateway.TaskQueue
	gateway.WorkflowStore
	gateway.DeadLetterStore
	gateway.WebhookStore
	schema.Store
	// The queue's gauges and /readyz's queue check (queuestats.go of
	// each engine).
	prom.QueueStatter
	CheckQueue(context.Context) error
	Ping(context.Context) error
	Live(context.Context) error
	Close() error
}

// Store engines (AGENTRY_STORE_ENGINE, or Options.Engine).
const (
	// EnginePebble is the store on Pebble (pebblestore), the only one; a
	// data directory of the earlier bbolt engine is imported into it at
	// its first start (boltimport). Paired make bench runs against that
	// engine use a binary built from an earlier commit.
	EnginePebble = "pebble"
	// DefaultEngine is the engine of a configuration that names none.
	DefaultEngine = EnginePebble
)

// openStore opens the data directory's store with the engine named
// (cfg.StoreEngine when empty).
func openStore(cfg config.Config, engine string, log *slog.Logger) (Store, error) {
	if engine == "" {
		engine = cfg.StoreEngine
	}
	if engine == "" {
		engine = DefaultEngine
	}
	if engine != EnginePebble {
		return nil, fmt.Errorf("unknown store engine %q", engine)
	}
	return pebblestore.Open(pebblestore.Options{Dir: cfg.DataDir, Logger: log})
}
