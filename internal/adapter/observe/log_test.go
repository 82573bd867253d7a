package observe_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/adapter/observe/logctx"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// jsonLines decodes the logger's output, one object per line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		recs = append(recs, m)
	}
	return recs
}

func TestLoggerCorrelation(t *testing.T) {
	base := context.Background()
	withBoth := observe.WithMessageID(observe.WithRequestID(base, "req-1"), "msg-1")
	cases := []struct {
		name   string
		log    func(l *slog.Logger)
		want   map[string]any
		absent []string
		none   bool // nothing is written
	}{
		{
			name: "ids from the context",
			log:  func(l *slog.Logger) { l.InfoContext(withBoth, "hello") },
			want: map[string]any{"msg": "hello", "request_id": "req-1", "message_id": "msg-1"},
		},
		{
			name:   "request id only",
			log:    func(l *slog.Logger) { l.WarnContext(observe.WithRequestID(base, "req-2"), "hello") },
			want:   map[string]any{"request_id": "req-2"},
			absent: []string{"message_id", "aws_request_id"},
		},
		{
			name:   "no context, no ids",
			log:    func(l *slog.Logger) { l.Info("hello") },
			absent: []string{"request_id", "message_id", "aws_request_id"},
		},
		{
			name: "an id given by the call is not repeated",
			log:  func(l *slog.Logger) { l.InfoContext(withBoth, "hello", "message_id", "explicit") },
			want: map[string]any{"message_id": "explicit", "request_id": "req-1"},
		},
		{
			name: "derived loggers keep correlating",
			log:  func(l *slog.Logger) { l.With("component", "worker").InfoContext(withBoth, "hello") },
			want: map[string]any{"component": "worker", "request_id": "req-1", "message_id": "msg-1"},
		},
		{
			name: "a group nests the ids with the call's attributes",
			log:  func(l *slog.Logger) { l.WithGroup("worker").InfoContext(withBoth, "hello", "attempt", 2) },
			want: map[string]any{"worker": map[string]any{"attempt": 2.0, "request_id": "req-1", "message_id": "msg-1"}},
		},
		{
			name: "the Lambda invocation id",
			log: func(l *slog.Logger) {
				l.InfoContext(lambdacontext.NewContext(withBoth, &lambdacontext.LambdaContext{AwsRequestID: "aws-1"}), "hello")
			},
			want: map[string]any{"aws_request_id": "aws-1", "request_id": "req-1"},
		},
		{
			name: "below the level nothing is written",
			log:  func(l *slog.Logger) { l.DebugContext(withBoth, "hidden") },
			none: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			l := observe.NewLogger(&out, slog.LevelInfo, slog.String("deployment", "agentry-test"))
			tc.log(l)
			recs := jsonLines(t, out.String())
			if tc.none {
				assert.Empty(t, recs)
				return
			}
			require.Len(t, recs, 1)
			assert.Equal(t, "agentry-test", recs[0]["deployment"], "attrs of NewLogger on every line")
			for k, v := range tc.want {
				assert.Equal(t, v, recs[0][k], k)
			}
			for _, k := range tc.absent {
				assert.NotContains(t, recs[0], k)
			}
			// JSON decoding keeps the last of duplicate keys; the raw line
			// must name each id once.
			for _, k := range []string{`"request_id"`, `"message_id"`} {
				assert.LessOrEqual(t, strings.Count(out.String(), k), 1, k)
			}
		})
	}
}

func TestCorrelateWrapsOnce(t *testing.T) {
	var out bytes.Buffer
	l := observe.Correlate(slog.New(slog.NewJSONHandler(&out, nil)))
	assert.Same(t, l, observe.Correlate(l), "an already correlating logger is kept")
	assert.Same(t, l.Handler(), observe.NewHandler(l.Handler()))
	l.InfoContext(observe.WithRequestID(context.Background(), "req-3"), "x")
	assert.Equal(t, 1, strings.Count(out.String(), `"request_id":"req-3"`))
	assert.NotNil(t, observe.Correlate(nil), "nil means slog.Default()")
}

// TestRequestAndMessageCorrelatedThroughTheAPI: a submission's log line
// from the gateway core carries the X-Request-ID that httpapi took from
// the request, and the message id, without the core or the handler
// knowing about this package.
func TestRequestAndMessageCorrelatedThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer func() { assert.NoError(t, db.Close()) }()
	require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "bob@example.org", DeliveryMode: gateway.ModePull}))
	var out bytes.Buffer
	log := observe.NewLogger(&out, slog.LevelInfo)
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AdminKey: "admin-key-0123456789", Logger: log},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
	require.NoError(t, err)
	h := httpapi.New(svc, httpapi.Options{Logger: log})

	req := httptest.NewRequest(http.MethodPost, "/v1/messages",
		strings.NewReader(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{}}`))
	req.Header.Set("Authorization", "Bearer admin-key-0123456789")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-ID", "req-e2e-1")
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	require.Equal(t, http.StatusAccepted, rr.Code, rr.Body.String())
	var ans struct {
		MessageID string `json:"message_id"`
	}
	require.NoError(t, json.NewDecoder(rr.Body).Decode(&ans))

	var accepted map[string]any
	for _, r := range jsonLines(t, out.String()) {
		if r["msg"] == "message accepted" {
			accepted = r
		}
	}
	require.NotNil(t, accepted, "the gateway logged the acceptance: %s", out.String())
	assert.Equal(t, "req-e2e-1", accepted["request_id"])
	assert.Equal(t, ans.MessageID, accepted["message_id"])
}

// BenchmarkHandler: a line with a request and a message id in its
// context, as the accept path logs one per message.
func BenchmarkHandler(b *testing.B) {
	log := observe.NewLogger(io.Discard, slog.LevelInfo)
	ctx := observe.WithMessageID(logctx.WithRequestID(context.Background(), "req_1"), "01a20b93-6301-753a-96e4-68fb4bfbdb6a")
	b.ReportAllocs()
	for b.Loop() {
		log.LogAttrs(ctx, slog.LevelInfo, "message accepted", slog.String("sender", "alice@a.example"), slog.Int("recipients", 1))
	}
}
