package localgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/observe/prom"
)

// newMetrics is the Prometheus registry, reading db's health and queue at
// each scrape.
func newMetrics(db Store) *prom.Metrics {
	return prom.New(prom.Options{
		Checks: map[string]func(context.Context) error{"store": db.Ping, "queue": db.CheckQueue},
		Queue:  db,
	})
}

// readyChecks are /readyz's checks besides the store's Ping.
func readyChecks(db Store) []httpapi.ReadyCheck {
	return []httpapi.ReadyCheck{{Name: "queue", Check: db.CheckQueue}}
}

// listenMetrics binds the metrics listener when one is configured: at
// start, so that a port in use stops the gateway rather than leaving it
// unobserved.
func (g *Gateway) listenMetrics() error {
	if g.metrics == nil || g.metricsLn != nil {
		return nil
	}
	ln, err := net.Listen("tcp", g.Config.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics listen on %s: %w", g.Config.MetricsAddr, err)
	}
	g.metricsLn = ln
	return nil
}

// MetricsAddr is the bound address of the metrics listener, "" when there
// is none.
func (g *Gateway) MetricsAddr() string {
	if g.metricsLn == nil {
		return ""
	}
	return g.metricsLn.Addr().String()
}

// serveMetrics serves GET /metrics on the metrics listener until ctx
// ends. The listener is the scraper's alone: it serves nothing else, and
// the API listener never serves /metrics.
func (g *Gateway) serveMetrics(ctx context.Context) {
	if g.metricsLn == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.metrics.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(g.metricsLn) }()
	g.log.Info("prometheus metrics", "url", "http://"+g.MetricsAddr()+"/metrics")
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("metrics listener stopped", "err", err)
		}
		return
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx) // a scrape cut short is retried by the scraper
	<-served                      //nolint:errcheck // http.ErrServerClosed, as Shutdown was called
}
