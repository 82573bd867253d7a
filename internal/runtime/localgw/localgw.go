// Package localgw assembles the local gateway: the embedded store and
// queue (store.go), DNS discovery, the delivery worker and the HTTP API, in one
// process. `agentry serve` and the end-to-end tests both start it here, so
// what is tested is what runs.
package localgw

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentry/agentry/internal/adapter/authn"
	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/adapter/observe/prom"
	"github.com/agentry/agentry/internal/adapter/signing"
	"github.com/agentry/agentry/internal/core/policy"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/core/signature"
	"github.com/agentry/agentry/internal/runtime/assemble"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/bridge"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Version is the gateway's version string, set at build time.
var Version = "dev"

// Gateway is a running local gateway.
type Gateway struct {
	Config  config.Config
	DB      Store
	Service *gateway.Service
	Worker  *delivery.Worker
	Handler http.Handler
	// Bridge turns received email into AMTP mail (`agentry ingest-email`,
	// the SMTP listener).
	Bridge *bridge.Bridge

	// AdminKeyGenerated is true when this start generated the admin key
	// (it is then printed once by the caller).
	AdminKeyGenerated bool
	// Signer signs what this gateway forwards; SigningKeyNotice is set
	// when this start created <data dir>/signing.pem or replaced a key the
	// profile does not allow (its record must then be published before
	// other gateways can verify our mail).
	Signer           *signature.Signer
	SigningKeyNotice string

	log      *slog.Logger
	listener net.Listener
	smtpLn   net.Listener // the inbound SMTP listener's (email.go)
	// metrics is nil unless AGENTRY_METRICS_ADDR (or
	// Options.MetricsListener) asks for Prometheus metrics (metrics.go).
	metrics   *prom.Metrics
	metricsLn net.Listener
	closeDB   sync.Once
}

// Options adjusts New for callers other than `agentry serve`.
type Options struct {
	Listener net.Listener // use this instead of listening on Config.Addr
	// MetricsListener serves the Prometheus metrics instead of one on
	// Config.MetricsAddr (and turns them on).
	MetricsListener net.Listener
	Logger          *slog.Logger
	// Engine is the store engine (EnginePebble when empty).
	Engine string
}

// New opens the store and builds every part, without serving yet.
func New(cfg config.Config, o Options) (*Gateway, error) {
	// The correlating handler adds the request and message ids of the
	// context to each line, so that the API's and the worker's lines about
	// one message can be found together. Metrics are kept only when
	// AGENTRY_METRICS_ADDR asks for a Prometheus listener (metrics.go).
	log := observe.Correlate(o.Logger)
	g := &Gateway{Config: cfg, log: log, listener: o.Listener, metricsLn: o.MetricsListener}
	for _, d := range cfg.Deprecations {
		log.Warn(d)
	}
	if err := g.loadAdminKey(); err != nil {
		return nil, err
	}
	// From here on the configuration includes the loaded admin key.
	cfg = g.Config
	signer, notice, err := signing.LoadLocal(cfg)
	if err != nil {
		return nil, err
	}
	g.Signer, g.SigningKeyNotice = signer, notice
	db, err := openStore(cfg, o.Engine, log)
	if err != nil {
		return nil, fmt.Errorf("open data dir %s: %w", cfg.DataDir, err)
	}
	g.DB = db
	mail, err := emailTransport(cfg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	backend := assemble.Backend{Messages: db, Inbox: db, Agents: db, Queue: db, Workflows: db, DeadLetters: db, Webhooks: db,
		Schemas: schemas(cfg, db), Signer: signing.Signer{S: signer}, Logger: log, Version: Version,
		// One process: its memory is where every bucket lives.
		Limiter: policy.NewMemoryLimiter(), Email: mail, DKIM: dkimVerifier(cfg)}
	if cfg.MetricsAddr != "" || o.MetricsListener != nil {
		g.metrics = newMetrics(db)
		backend.Metrics, backend.Outcomes = g.metrics, g.metrics
	}
	a, err := assemble.Gateway(cfg, backend)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	ident, err := authn.New(cfg, a.Client)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	g.Service, g.Worker, g.Bridge = a.Service, a.Worker, a.Bridge
	opt := httpapi.Options{Version: Version, Logger: log, BodyBudget: cfg.MaxInflightBytes, Ready: db.Ping, Live: db.Live, Identity: ident,
		ReadyChecks: readyChecks(db)}
	if g.metrics != nil {
		opt.Refused = g.metrics.MessageRefused
		g.Handler = g.metrics.InstrumentAPI(httpapi.New(g.Service, opt))
		return g, nil
	}
	g.Handler = httpapi.New(g.Service, opt)
	return g, nil
}

// schemas is the registry AGENTRY_SCHEMA_VALIDATION asks for (on by
// default), kept in the embedded store.
// schemas returns nil (not a nil *schema.Registry in the interface) when
// validation is off.
func schemas(cfg config.Config, store schema.Store) gateway.SchemaRegistry {
	if !cfg.SchemaValidation {
		return nil
	}
	return schema.NewRegistry(store)
}

// loadAdminKey takes AGENTRY_ADMIN_KEY, else the key stored in the data
// dir, else generates one and stores it (0600) for the next start.
func (g *Gateway) loadAdminKey() error {
	if g.Config.AdminKey != "" {
		if len(g.Config.AdminKey) < 16 {
			return errors.New("AGENTRY_ADMIN_KEY must be at least 16 characters")
		}
		return nil
	}
	if err := os.MkdirAll(g.Config.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(g.Config.DataDir, "admin.key")
	if data, err := os.ReadFile(path); err == nil {
		g.Config.AdminKey = strings.TrimSpace(string(data))
		if g.Config.AdminKey != "" {
			return nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("generate admin key: %w", err)
	}
	key := "amtpadm_" + base64.RawURLEncoding.EncodeToString(b)
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("store admin key: %w", err)
	}
	g.Config.AdminKey = key
	g.AdminKeyGenerated = true
	return nil
}

// Listen binds the API address (unless a listener was given).
func (g *Gateway) Listen() error {
	if err := g.listenSMTP(); err != nil {
		return err
	}
	if err := g.listenMetrics(); err != nil {
		return err
	}
	if g.listener != nil {
		return nil
	}
	l, err := net.Listen("tcp", g.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", g.Config.Addr, err)
	}
	g.listener = l
	return nil
}

// Addr is the bound address (after Listen).
func (g *Gateway) Addr() string {
	if g.listener == nil {
		return g.Config.Addr
	}
	return g.listener.Addr().String()
}

// Serve runs the API and the delivery worker until ctx is cancelled, then
// shuts down gracefully: in-flight requests finish, in-flight deliveries
// finish, the store is closed.
func (g *Gateway) Serve(ctx context.Context) error {
	if err := g.Listen(); err != nil {
		// Serve closes the store however it ends, this way too: a caller
		// that leaves that to Serve must not be left holding the lock.
		return errors.Join(err, g.Close())
	}
	err := RunServer(ctx, g.Config, g.listener, g.Handler, g.log, func(ctx context.Context) { _ = g.Worker.Run(ctx) }, g.serveSMTP, g.serveControl, g.serveMetrics)
	if cerr := g.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// RunServer serves h on l (with TLS 1.3 when the configuration has a
// certificate) and runs each background loop (delivery workers, pollers)
// until ctx is cancelled; then it stops accepting, lets in-flight requests
// finish, cancels the loops and waits for them (each loop finishes its
// in-flight work before returning), all within 30 seconds.
func RunServer(ctx context.Context, cfg config.Config, l net.Listener, h http.Handler, log *slog.Logger, background ...func(context.Context)) error {
	server := &http.Server{
		// A segment per request when tracing is on (AGENTRY_XRAY=1 next
		// to an X-Ray daemon), so that the AWS calls and webhooks a
		// request makes are traced as they are in Lambda.
		Handler:           observe.TraceServer(cfg.Domain, h),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.TLSCert != "" {
		tc, err := authn.ServerTLS(cfg)
		if err != nil {
			return err
		}
		l = tls.NewListener(l, tc)
	}
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	for _, run := range background {
		bg.Add(1)
		go func() {
			defer bg.Done()
			run(bgCtx)
		}()
	}
	bgDone := make(chan struct{})
	go func() {
		bg.Wait()
		close(bgDone)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(l) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if serr := server.Shutdown(shutdownCtx); serr != nil && err == nil {
		err = fmt.Errorf("http shutdown: %w", serr)
	}
	stopBackground()
	select {
	case <-bgDone:
	case <-shutdownCtx.Done():
		log.Warn("work still running at the shutdown deadline; it resumes at the next start")
	}
	return err
}

// Close closes the store (Serve does it on shutdown).
func (g *Gateway) Close() error {
	var err error
	g.closeDB.Do(func() {
		err = g.DB.Close()
		// Serving closes the listeners too; a second close only says so.
		for _, ln := range []net.Listener{g.smtpLn, g.metricsLn} {
			if ln != nil {
				_ = ln.Close()
			}
		}
	})
	return err
}
