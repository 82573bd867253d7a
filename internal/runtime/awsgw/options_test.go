package awsgw

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/runtime/config"
)

// TestMetricsTo: the metric lines go to the writer given, not to
// standard output. With both queue URLs configured, building makes no
// AWS call, so no backend is needed.
func TestMetricsTo(t *testing.T) {
	env := map[string]string{
		"AGENTRY_BACKEND":   "aws",
		"AGENTRY_DOMAIN":    "metrics.example",
		"AGENTRY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
		"AGENTRY_DLQ_URL":   "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
	}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	awsCfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	var out bytes.Buffer
	g, err := NewWorker(t.Context(), cfg, awsCfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), MetricsTo(&out))
	require.NoError(t, err)
	g.Metrics.ColdStart("deliver")
	line, err := out.ReadBytes('\n')
	require.NoError(t, err, "a metric line was written to the writer")
	var doc map[string]any
	require.NoError(t, json.Unmarshal(line, &doc))
	assert.Contains(t, doc, "_aws", "an embedded-metric-format document")
}
