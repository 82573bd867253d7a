// Package lambdatest is a Lambda Runtime API of our own, so that tests can
// run a function's real `bootstrap` binary the way Lambda does (and the way
// `sam local invoke` does): the binary polls /next, gets an event, and
// posts a response or an error. The AWS runtime interface emulator cannot
// be installed on our build machines; this is the part of it we need.
package lambdatest

import (
	"context"

	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const prefix = "/2018-06-01/runtime"

// Result is what the function answered for one invocation.
type Result struct {
	Payload []byte // the response body, or the error body
	Err     bool   // the function reported an error
}

type invocation struct {
	id      string
	payload []byte
	done    chan Result
}

// Runtime serves the Runtime API on a loopback port.
type Runtime struct {
	srv       *http.Server
	addr      string
	queue     chan *invocation
	mu        sync.Mutex
	pending   map[string]*invocation
	seq       int
	firstNext time.Time
	nextSeen  chan struct{}
	initErr   []byte
	FuncARN   string
	Timeout   time.Duration // deadline given to each invocation, default 30s
}

// Start listens on 127.0.0.1 (random port) and serves until Close.
func Start() (*Runtime, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("runtime api listen: %w", err)
	}
	r := &Runtime{
		addr: l.Addr().String(), queue: make(chan *invocation), pending: map[string]*invocation{},
		nextSeen: make(chan struct{}), FuncARN: "arn:aws:lambda:us-east-1:123456789012:function:agentry-test",
		Timeout: 30 * time.Second,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/invocation/next", r.next)
	mux.HandleFunc("POST "+prefix+"/invocation/{id}/response", func(w http.ResponseWriter, q *http.Request) { r.finish(w, q, false) })
	mux.HandleFunc("POST "+prefix+"/invocation/{id}/error", func(w http.ResponseWriter, q *http.Request) { r.finish(w, q, true) })
	mux.HandleFunc("POST "+prefix+"/init/error", r.initError)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

// Addr is the value for AWS_LAMBDA_RUNTIME_API.
func (r *Runtime) Addr() string { return r.addr }

// Close stops the server.
func (r *Runtime) Close() error { return r.srv.Close() }

// FirstNext waits for the function's first poll and returns when it came:
// process start to this instant is the function's init time.
func (r *Runtime) FirstNext(ctx context.Context) (time.Time, error) {
	select {
	case <-r.nextSeen:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.firstNext, nil
	case <-ctx.Done():
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.initErr != nil {
			return time.Time{}, fmt.Errorf("function init failed: %s", r.initErr)
		}
		return time.Time{}, ctx.Err()
	}
}

// Invoke hands one event to the function and waits for its answer.
func (r *Runtime) Invoke(ctx context.Context, payload []byte) (Result, error) {
	r.mu.Lock()
	r.seq++
	inv := &invocation{id: "req-" + strconv.Itoa(r.seq), payload: payload, done: make(chan Result, 1)}
	r.pending[inv.id] = inv
	r.mu.Unlock()
	select {
	case r.queue <- inv:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("function never polled for the event: %w", ctx.Err())
	}
	select {
	case res := <-inv.done:
		return res, nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("no answer to %s: %w", inv.id, ctx.Err())
	}
}

func (r *Runtime) next(w http.ResponseWriter, q *http.Request) {
	r.mu.Lock()
	if r.firstNext.IsZero() {
		r.firstNext = time.Now()
		close(r.nextSeen)
	}
	r.mu.Unlock()
	var inv *invocation
	select {
	case inv = <-r.queue:
	case <-q.Context().Done():
		return
	}
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(r.Timeout).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", r.FuncARN)
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.payload)
}

func (r *Runtime) finish(w http.ResponseWriter, q *http.Request, isErr bool) {
	body, err := io.ReadAll(io.LimitReader(q.Body, 16<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	id := q.PathValue("id")
	r.mu.Lock()
	inv := r.pending[id]
	delete(r.pending, id)
	r.mu.Unlock()
	if inv == nil {
		http.Error(w, "unknown request id", http.StatusBadRequest)
		return
	}
	inv.done <- Result{Payload: body, Err: isErr}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"OK"}`))
}

func (r *Runtime) initError(w http.ResponseWriter, q *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(q.Body, 1<<20))
	r.mu.Lock()
	r.initErr = body
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// Env is the environment a Lambda provides to a custom runtime bootstrap.
func (r *Runtime) Env(function string) []string {
	return []string{
		"AWS_LAMBDA_RUNTIME_API=" + r.addr,
		"AWS_LAMBDA_FUNCTION_NAME=" + function,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"_HANDLER=bootstrap",
		"LAMBDA_TASK_ROOT=/var/task",
	}
}

// IsHTTPError reports whether an error body says the handler failed (the
// shape aws-lambda-go posts: {"errorMessage","errorType"}).
func IsHTTPError(body []byte) bool {
	return strings.Contains(string(body), `"errorMessage"`)
}
