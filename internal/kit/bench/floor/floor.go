// Package floor is the physical floor the gateway is measured against: the
// least any JSON-over-HTTP service must do per message on this machine —
// read the body (bounded), decode it as JSON, answer 202 with a tiny JSON
// body — served by a bare net/http server on loopback, with nothing durable
// and no validation. Gateway figures are reported as ratios to it, measured
// in the same run, so that they say something on any machine.
package floor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// MaxBodyBytes bounds what the handler reads, as the gateway's default
// AGENTRY_MAX_MESSAGE_BYTES does.
const MaxBodyBytes = 10 << 20

var accepted = []byte(`{"status":"accepted"}`)

// Handler is the floor's handler.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			http.Error(w, `{"error":"body"}`, http.StatusRequestEntityTooLarge)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, `{"error":"json"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(accepted)
	})
}

// Server is the floor served on a loopback port.
type Server struct {
	URL  string // http://127.0.0.1:port
	srv  *http.Server
	done chan error
}

// Start serves Handler on 127.0.0.1 with an ephemeral port.
func Start() (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return Serve(l, Handler()), nil
}

// Serve serves h on l with the same server timeouts the gateway uses, so
// that the two differ only in their handlers.
func Serve(l net.Listener, h http.Handler) *Server {
	s := &Server{
		URL: "http://" + l.Addr().String(),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
		},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(l) }()
	return s
}

// Close stops the server, letting requests in flight finish.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
