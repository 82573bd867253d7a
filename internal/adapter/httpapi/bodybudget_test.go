package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// stalled is a request body that yields its first bytes and then blocks
// until released, like a client sending the start of a large body and the
// rest slowly (or never). It counts what was read from it.
type stalled struct {
	head    *bytes.Reader
	release chan struct{}
	read    atomic.Int64
}

func newStalled(head string) *stalled {
	return &stalled{head: bytes.NewReader([]byte(head)), release: make(chan struct{})}
}

func (s *stalled) Read(p []byte) (int, error) {
	if s.head.Len() > 0 {
		n, err := s.head.Read(p)
		s.read.Add(int64(n))
		return n, err
	}
	<-s.release
	return 0, io.ErrUnexpectedEOF
}

// serveAsync runs one request in the background and gives its answer.
func serveAsync(h http.Handler, req *http.Request) <-chan *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		done <- rec
	}()
	return done
}

func answerOf(t *testing.T, done <-chan *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	t.Helper()
	select {
	case rec := <-done:
		return rec
	case <-time.After(30 * time.Second):
		t.Fatal("no answer: the handler is still reading a body it should have refused")
		return nil
	}
}

type budgetAPI struct {
	h     http.Handler
	alice string // alice@example.org's key
}

// newBudgetAPI is a gateway for example.org with small messages, so that
// its body budget (never less than two maximum-size messages) is small.
func newBudgetAPI(t *testing.T, maxMessage int64) *budgetAPI {
	t.Helper()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AdminKey: testAdminKey, Logger: quiet, MaxMessageBytes: maxMessage},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
	require.NoError(t, err)
	a := &api{t: t, h: httpapi.New(svc, httpapi.Options{Logger: quiet, BodyBudget: 1})}
	alice := a.register(`{"address":"alice","delivery_mode":"pull"}`)
	a.register(`{"address":"bob","delivery_mode":"pull"}`)
	return &budgetAPI{h: a.h, alice: alice["api_key"].(string)}
}

func messagePost(body io.Reader, declared int64, key string) *http.Request {
	req := httptest.NewRequest("POST", "/v1/messages", body)
	req.ContentLength = declared
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req
}

func envelopeJSON(sender string, recipients ...string) string {
	rs, _ := json.Marshal(recipients)
	return fmt.Sprintf(`{"version":"1.0","sender":%q,"recipients":%s,"subject":"s","payload":{"blob":"`, sender, rs)
}

// TestRefusedBeforeTheBodyIsRead: a submission whose sender and recipients
// the caller may not use is answered from the leading members, without
// waiting for (or paying for) the megabytes behind them.
func TestRefusedBeforeTheBodyIsRead(t *testing.T) {
	a := newBudgetAPI(t, 10<<20)
	for _, tc := range []struct {
		name, head, key, code string
		status                int
	}{
		{"anonymous as a local sender", envelopeJSON("alice@example.org", "bob@example.org"), "", "LOCAL_SENDER_AUTH_REQUIRED", 401},
		{"anonymous relay", envelopeJSON("mallory@evil.test", "victim@elsewhere.test"), "", "FORBIDDEN", 403},
		{"agent as someone else", envelopeJSON("bob@example.org", "alice@example.org"), a.alice, "SENDER_CREDENTIAL_MISMATCH", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := newStalled(tc.head)
			defer close(body.release)
			rec := answerOf(t, serveAsync(a.h, messagePost(body, 9<<20, tc.key)))
			require.Equal(t, tc.status, rec.Code, "%s", rec.Body)
			assert.Contains(t, rec.Body.String(), tc.code)
			assert.Equal(t, int64(len(tc.head)), body.read.Load())
		})
	}
}

// TestBodyBudgetAnswers503: bodies in flight are bounded as a whole. With
// anonymous bodies holding their half of the budget, another anonymous
// one is answered 503 with Retry-After; an agent still gets through; once
// the held bodies are released, anonymous mail is accepted again.
func TestBodyBudgetAnswers503(t *testing.T) {
	const maxMessage = 64 << 10
	a := newBudgetAPI(t, maxMessage) // budget: 2 × (64 KiB + 1)
	inbound := envelopeJSON("carol@remote.test", "bob@example.org")
	// One anonymous body of nearly the maximum size holds the whole
	// anonymous half while it trickles in.
	held := newStalled(inbound)
	first := serveAsync(a.h, messagePost(held, maxMessage, ""))
	require.Eventually(t, func() bool { return held.read.Load() == int64(len(inbound)) }, 30*time.Second, time.Millisecond)

	complete := func(sender string) string {
		return envelopeJSON(sender, "bob@example.org") + strings.Repeat("x", 1000) + `"}}`
	}
	body := complete("carol@remote.test")
	rec := answerOf(t, serveAsync(a.h, messagePost(strings.NewReader(body), int64(len(body)), "")))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, "%s", rec.Body)
	assert.Contains(t, rec.Body.String(), "TEMPORARY_FAILURE")
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))

	mine := complete("alice@example.org")
	rec = answerOf(t, serveAsync(a.h, messagePost(strings.NewReader(mine), int64(len(mine)), a.alice)))
	require.Equal(t, http.StatusAccepted, rec.Code, "an agent is not starved by anonymous bodies: %s", rec.Body)

	close(held.release)
	rec = answerOf(t, first)
	assert.Equal(t, http.StatusBadRequest, rec.Code, "the trickled body ended early: %s", rec.Body)
	rec = answerOf(t, serveAsync(a.h, messagePost(strings.NewReader(body), int64(len(body)), "")))
	require.Equal(t, http.StatusAccepted, rec.Code, "released room is usable again: %s", rec.Body)
}
