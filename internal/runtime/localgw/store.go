package localgw

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/agentry/agentry/internal/adapter/embedded"
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
	// EnginePebble is the store on Pebble (pebblestore), the default; a
	// data directory of the earlier engine is imported into it at its
	// first start.
	EnginePebble = "pebble"
	// EngineBolt is the earlier engine (embedded: bbolt and its redo
	// log), kept selectable for one release so that an operator can go
	// back while the import is new, and for paired make bench runs.
	EngineBolt = "bbolt"
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
	switch engine {
	case EnginePebble:
		return pebblestore.Open(pebblestore.Options{Dir: cfg.DataDir, Logger: log})
	case EngineBolt:
		return embedded.Open(embedded.Options{Dir: cfg.DataDir})
	}
	return nil, fmt.Errorf("unknown store engine %q", engine)
}
