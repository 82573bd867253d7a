package awsgw

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/adapter/sqsq"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// TestHandleDeadLetterMetrics: each dead-letter record settled counts one
// DeadLettered; a poison task also counts its failed recipients
// (DeliveryFailures); an unreadable record counts nothing. The store is
// the embedded one: what is tested is the accounting, not the adapters
// (the functions and e2e tests run it against moto).
func TestHandleDeadLetterMetrics(t *testing.T) {
	ctx := context.Background()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer func() { assert.NoError(t, db.Close()) }()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", Logger: quiet},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db})
	require.NoError(t, err)
	require.NoError(t, db.PutAgent(ctx, &gateway.Agent{Address: "bob@example.org", DeliveryMode: gateway.ModePush, WebhookURL: "https://agent.example.org/hook", WebhookSecret: "whsec_c2VjcmV0"}))
	res, err := svc.Accept(ctx, gateway.Principal{Kind: gateway.AdminCaller},
		[]byte(`{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{}}`))
	require.NoError(t, err)
	task := gateway.Task{ID: gateway.TaskID(res.MessageID, "bob@example.org"), MessageID: res.MessageID, Kind: gateway.TaskLocal, Recipients: []string{"bob@example.org"}, CreatedAt: time.Now()}

	record := func(v any) string {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return string(b)
	}
	// The cases run in order and share the store: the second poison
	// record finds the task the first one settled.
	cases := []struct {
		name    string
		body    string
		metrics []string // metric names, in line order
	}{
		{
			name: "record our worker wrote",
			body: record(map[string]any{"v": sqsq.FormatVersion, "task": task, "dead_letter": gateway.DeadLetter{
				MessageID: res.MessageID, TaskID: task.ID, Recipients: task.Recipients, FailureReason: "RECIPIENT_NOT_FOUND", Attempts: 1,
			}}),
			metrics: []string{observe.MetricDeadLettered},
		},
		{
			name:    "poison task",
			body:    record(map[string]any{"v": sqsq.FormatVersion, "id": task.ID, "message_id": task.MessageID, "kind": task.Kind, "recipients": task.Recipients}),
			metrics: []string{observe.MetricDeliveryFailures, observe.MetricDeadLettered},
		},
		{
			name:    "poison task already settled",
			body:    record(map[string]any{"v": sqsq.FormatVersion, "id": task.ID, "message_id": task.MessageID, "kind": task.Kind, "recipients": task.Recipients}),
			metrics: []string{observe.MetricDeadLettered},
		},
		{name: "unreadable record", body: "not json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			emf, err := observe.NewEMF(&out, "agentry-test")
			require.NoError(t, err)
			w, err := delivery.New(delivery.Config{Domain: "example.org", Logger: quiet, Metrics: emf},
				delivery.Deps{Messages: db, Inbox: db, Agents: db, Queue: db, Client: http.DefaultClient})
			require.NoError(t, err)
			g := &Gateway{Worker: w, Metrics: emf, log: quiet, keepDead: db.DeadLetter}

			require.NoError(t, g.HandleDeadLetter(ctx, tc.body))

			var got []string
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if line == "" {
					continue
				}
				var l struct {
					AWS struct {
						CloudWatchMetrics []struct {
							Metrics []struct{ Name string }
						}
					} `json:"_aws"`
					MessageID string `json:"message_id"`
				}
				require.NoError(t, json.Unmarshal([]byte(line), &l))
				assert.Equal(t, res.MessageID, l.MessageID)
				for _, m := range l.AWS.CloudWatchMetrics[0].Metrics {
					got = append(got, m.Name)
				}
			}
			assert.Equal(t, tc.metrics, got)
		})
	}
	// Every readable record is kept for the admin's dead-letter API.
	kept, _, err := db.ListDeadLetters(ctx, gateway.DeadLetterQuery{})
	require.NoError(t, err)
	assert.Len(t, kept, 3)
}
