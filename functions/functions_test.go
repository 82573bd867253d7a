// Package functions_test runs the real Lambda bootstrap binaries under our
// own Runtime API (internal/kit/lambdatest), against moto, fed with the sample
// events in events/ — what `sam local invoke -e events/…` does.
package functions_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/adapter/dynamo"
	"github.com/agentry/agentry/internal/adapter/sqsq"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/kit/coverbin"
	"github.com/agentry/agentry/internal/kit/lambdatest"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

const adminKey = "functions-test-admin-key-0123"

// settleWithin bounds every wait for the functions and moto to do what
// they must: wide, because on a busy machine moto takes many seconds per
// call, and free when they are quick (a wait ends as soon as its
// condition holds).
const settleWithin = 2 * time.Minute

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// bootstrap builds every function once per test run (for this machine's
// architecture; the deployment build is arm64).
func bootstrap(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "agentry-lambdas-")
		if buildErr != nil {
			return
		}
		for _, fn := range []string{"api", "deliver", "deadletter", "inbound-email", "email-events"} {
			args := append(append([]string{"build", "-tags", "lambda.norpc"}, coverbin.BuildFlags()...), "-o", filepath.Join(binDir, fn, "bootstrap"), "./functions/"+fn)
			cmd := exec.Command("go", args...)
			cmd.Dir = awstest.RepoRoot()
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{fn: fn, out: string(out), err: err}
				return
			}
		}
	})
	require.NoError(t, buildErr)
	return filepath.Join(binDir, name, "bootstrap")
}

type buildError struct {
	fn, out string
	err     error
}

func (e *buildError) Error() string { return "build " + e.fn + ": " + e.err.Error() + "\n" + e.out }

// function is one bootstrap process under a Runtime API.
type function struct {
	rt  *lambdatest.Runtime
	cmd *exec.Cmd
}

func startFunction(t *testing.T, name string, env []string) *function {
	t.Helper()
	rt, err := lambdatest.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	cmd := exec.Command(bootstrap(t, name))
	cmd.Env = append(append(append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, rt.Env(name)...), awstest.Env(t)...), env...)
	cmd.Env = append(cmd.Env, coverbin.Env(t, "functions")...)
	cmd.Stdout = logWriter{t, name}
	cmd.Stderr = logWriter{t, name}
	start := time.Now()
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		// Measuring: without its Runtime API the bootstrap exits (and writes its counters).
		coverbin.Drain(cmd.Process, rt.Close, settleWithin)
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), settleWithin)
	defer cancel()
	first, err := rt.FirstNext(ctx)
	require.NoError(t, err, "%s never polled the Runtime API", name)
	t.Logf("%s init: %s (process start to first /next)", name, first.Sub(start))
	return &function{rt: rt, cmd: cmd}
}

func (f *function) invoke(t *testing.T, payload []byte) lambdatest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), settleWithin)
	defer cancel()
	res, err := f.rt.Invoke(ctx, payload)
	require.NoError(t, err)
	return res
}

type logWriter struct {
	t    *testing.T
	name string
}

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("[%s] %s", w.name, strings.TrimSpace(string(p)))
	return len(p), nil
}

func loadEvent(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(awstest.RepoRoot(), "events", file))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, into))
}

// apiCall sends an HTTP API v2 event built from the sample POST event.
func apiCall(t *testing.T, f *function, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	var ev events.APIGatewayV2HTTPRequest
	loadEvent(t, "api-post-message.json", &ev)
	ev.RawPath, ev.RequestContext.HTTP.Path, ev.RequestContext.HTTP.Method, ev.Body = path, path, method, body
	if key != "" {
		ev.Headers["authorization"] = "Bearer " + key
	}
	payload, err := json.Marshal(ev)
	require.NoError(t, err)
	res := f.invoke(t, payload)
	require.False(t, res.Err, "api function error: %s", res.Payload)
	var resp events.APIGatewayV2HTTPResponse
	require.NoError(t, json.Unmarshal(res.Payload, &resp))
	var out map[string]any
	if resp.Body != "" {
		require.NoError(t, json.Unmarshal([]byte(resp.Body), &out), resp.Body)
	}
	return resp.StatusCode, out
}

// backend is a fresh set of resources in moto, the functions' environment
// for them, and our own clients to look inside.
type backend struct {
	env   []string
	ep    awsres.Endpoints
	sqs   *sqs.Client
	store *dynamo.Store
}

func newBackend(t *testing.T) backend {
	t.Helper()
	names, ep := awstest.Resources(t)
	cfg := awstest.Config(t)
	env := []string{
		"AGENTRY_DOMAIN=example.com", "AGENTRY_RESOURCE_PREFIX=" + names.Prefix, "AGENTRY_TABLE=" + names.Table,
		"AGENTRY_BUCKET=" + names.Bucket, "AGENTRY_QUEUE_URL=" + ep.DeliveryQueueURL, "AGENTRY_DLQ_URL=" + ep.DeadLetterURL,
		"AGENTRY_ADMIN_KEY=" + adminKey, "AGENTRY_ALLOW_INSECURE=1", "AGENTRY_DNS_SERVER=127.0.0.1:1",
		"AGENTRY_LOG_LEVEL=warn",
		// events/api-post-message.json is what `sam local invoke` sends: an
		// unsigned message from alice@partner.example, whose key no DNS here
		// could publish. Signature checks have their own tests (internal/kit/e2e).
		"AGENTRY_SIGNATURE_POLICY=accept",
	}
	sqsc := sqs.NewFromConfig(cfg)
	queue, err := sqsq.New(sqsc, sqsq.Config{QueueURL: ep.DeliveryQueueURL, DeadLetterURL: ep.DeadLetterURL})
	require.NoError(t, err)
	store, err := dynamo.New(dynamodb.NewFromConfig(cfg), dynamo.Config{Table: names.Table, Queue: queue})
	require.NoError(t, err)
	return backend{env: env, ep: ep, sqs: sqsc, store: store}
}

func TestBootstrapsUnderRuntimeAPI(t *testing.T) {
	be := newBackend(t)
	env, sqsc, store, ep := append(be.env, "AGENTRY_PUBLIC_URL=https://amtp.example.com"), be.sqs, be.store, be.ep

	// carol is a push agent: a real HTTP server.
	var (
		mu  sync.Mutex
		got []map[string]any
	)
	carol := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		if json.Unmarshal(body, &m) == nil && r.Header.Get("webhook-signature") != "" {
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer carol.Close()

	api := startFunction(t, "api", env)
	status, out := apiCall(t, api, "GET", "/healthz", "", "")
	require.Equal(t, http.StatusOK, status, "%v", out)
	status, out = apiCall(t, api, "POST", "/v1/admin/agents", adminKey, `{"address":"carol","delivery_mode":"push","webhook_url":"`+carol.URL+`"}`)
	require.Equal(t, http.StatusCreated, status, "%v", out)
	status, out = apiCall(t, api, "POST", "/v1/admin/agents", adminKey, `{"address":"dave","delivery_mode":"pull"}`)
	require.Equal(t, http.StatusCreated, status, "%v", out)
	daveKey := out["api_key"].(string)
	status, out = apiCall(t, api, "POST", "/v1/admin/agents", adminKey, `{"address":"erin","delivery_mode":"push","webhook_url":"http://127.0.0.1:1/unreachable"}`)
	require.Equal(t, http.StatusCreated, status, "%v", out)

	// 1. api: the sample POST (from another domain's gateway to carol) is
	// accepted; the message is in DynamoDB and its task on the queue.
	var post events.APIGatewayV2HTTPRequest
	loadEvent(t, "api-post-message.json", &post)
	payload, _ := json.Marshal(post)
	res := api.invoke(t, payload)
	require.False(t, res.Err, "%s", res.Payload)
	var resp events.APIGatewayV2HTTPResponse
	require.NoError(t, json.Unmarshal(res.Payload, &resp))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, resp.Body)
	var accepted map[string]any
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &accepted))
	id := accepted["message_id"].(string)
	// Mail from another gateway is stored per recipient (fan-out).
	sid := gateway.StorageID(id, gateway.OriginRemote, []string{"carol@example.com"})
	sm, err := store.GetMessage(context.Background(), sid)
	require.NoError(t, err, "message stored in DynamoDB")
	assert.Equal(t, "alice@partner.example", sm.Sender)
	recv, err := sqsc.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(ep.DeliveryQueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 2, VisibilityTimeout: 60})
	require.NoError(t, err)
	require.Len(t, recv.Messages, 1, "one delivery task on the queue")
	task, err := sqsq.ParseTask(aws.ToString(recv.Messages[0].Body))
	require.NoError(t, err)
	assert.Equal(t, sid, task.MessageID)

	// 2. deliver: the sample batch with the real task in place of its
	// first record; the poison record (and only it) is a batch failure.
	var batch events.SQSEvent
	loadEvent(t, "sqs-deliver-batch.json", &batch)
	require.Len(t, batch.Records, 3)
	batch.Records[0].Body = aws.ToString(recv.Messages[0].Body)
	batch.Records[0].ReceiptHandle = aws.ToString(recv.Messages[0].ReceiptHandle)
	batch.Records[0].MessageId = aws.ToString(recv.Messages[0].MessageId)
	deliver := startFunction(t, "deliver", env)
	payload, _ = json.Marshal(batch)
	res = deliver.invoke(t, payload)
	require.False(t, res.Err, "%s", res.Payload)
	var batchResp events.SQSEventResponse
	require.NoError(t, json.Unmarshal(res.Payload, &batchResp))
	require.Len(t, batchResp.BatchItemFailures, 1, "%s", res.Payload)
	assert.Equal(t, batch.Records[2].MessageId, batchResp.BatchItemFailures[0].ItemIdentifier)
	mu.Lock()
	require.Len(t, got, 1, "carol received the message")
	assert.Equal(t, id, got[0]["message_id"])
	mu.Unlock()
	st, err := store.GetStatuses(context.Background(), sid)
	require.NoError(t, err)
	assert.Equal(t, gateway.StateDelivered, st[0].Status)

	// 3. deadletter: dave's message to erin never got through; the raw task
	// SQS moved to the DLQ fails erin and reports to dave.
	status, out = apiCall(t, api, "POST", "/v1/messages", daveKey, `{"sender":"dave@example.com","recipients":["erin@example.com"],"subject":"ping","payload":{"n":1}}`)
	require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, status, "%v", out)
	id2 := out["message_id"].(string)
	var dlq events.SQSEvent
	loadEvent(t, "sqs-deadletter-record.json", &dlq)
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(dlq.Records[0].Body), &raw))
	raw["message_id"], raw["id"] = id2, gateway.TaskID(id2, "erin@example.com")
	b, _ := json.Marshal(raw)
	dlq.Records[0].Body = string(b)
	dead := startFunction(t, "deadletter", env)
	payload, _ = json.Marshal(dlq)
	res = dead.invoke(t, payload)
	require.False(t, res.Err, "%s", res.Payload)
	require.NoError(t, json.Unmarshal(res.Payload, &batchResp))
	assert.Empty(t, batchResp.BatchItemFailures)
	st, err = store.GetStatuses(context.Background(), id2)
	require.NoError(t, err)
	assert.Equal(t, gateway.StateFailed, st[0].Status)
	assert.NotEmpty(t, st[0].ErrorCode)
	require.Eventually(t, func() bool {
		inbox, _, err := store.ListInbox(context.Background(), "dave@example.com", 10, "")
		if err != nil || len(inbox) == 0 {
			return false
		}
		return strings.Contains(string(inbox[0].Raw), `"delivery_failure"`) && strings.Contains(string(inbox[0].Raw), id2)
	}, settleWithin, 100*time.Millisecond, "dave received the failure report")
}

// blackhole accepts connections and never answers: an SQS endpoint that
// hangs, so that the api function is stuck between its DynamoDB write and
// its SQS send when the test kills it.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return "http://" + l.Addr().String()
}

// The api function is killed after the message is in DynamoDB and before
// its task reaches SQS. The client retries with the same idempotency key:
// the retry re-enqueues the original task, and the message is delivered
// exactly once.
func TestAPIKilledBetweenStoreAndEnqueueLosesNothing(t *testing.T) {
	be := newBackend(t)
	env, sqsc, store, ep := be.env, be.sqs, be.store, be.ep

	var (
		mu    sync.Mutex
		calls int
	)
	carol := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer carol.Close()
	setup := startFunction(t, "api", env)
	status, out := apiCall(t, setup, "POST", "/v1/admin/agents", adminKey, `{"address":"carol","delivery_mode":"push","webhook_url":"`+carol.URL+`"}`)
	require.Equal(t, http.StatusCreated, status, "%v", out)

	// First attempt: SQS hangs; kill the function once the message is stored.
	stuck := startFunction(t, "api", append(env, "AWS_ENDPOINT_URL_SQS="+blackhole(t)))
	var post events.APIGatewayV2HTTPRequest
	loadEvent(t, "api-post-message.json", &post)
	payload, _ := json.Marshal(post)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), settleWithin)
		defer cancel()
		_, _ = stuck.rt.Invoke(ctx, payload)
	}()
	var id string
	require.Eventually(t, func() bool {
		list, _, err := store.ListMessages(context.Background(), gateway.MessageQuery{Limit: 10})
		if err != nil || len(list) == 0 {
			return false
		}
		id = list[0].MessageID
		return true
	}, settleWithin, 50*time.Millisecond, "the message reaches DynamoDB")
	require.NoError(t, stuck.cmd.Process.Kill())
	_, _ = stuck.cmd.Process.Wait()
	recv, err := sqsc.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(ep.DeliveryQueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	require.NoError(t, err)
	require.Empty(t, recv.Messages, "the task never reached SQS")

	// The client's retry with the same idempotency key.
	retry := startFunction(t, "api", env)
	res := retry.invoke(t, payload)
	require.False(t, res.Err, "%s", res.Payload)
	var resp events.APIGatewayV2HTTPResponse
	require.NoError(t, json.Unmarshal(res.Payload, &resp))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, resp.Body)
	assert.Contains(t, resp.Body, gateway.MessageIDOf(id), "the retry answers with the original message")

	// Exactly one task, delivered once.
	var tasks []*sqs.ReceiveMessageOutput
	deadline := time.Now().Add(settleWithin)
	total := 0
	for time.Now().Before(deadline) && total == 0 {
		r, err := sqsc.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(ep.DeliveryQueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60})
		require.NoError(t, err)
		tasks = append(tasks, r)
		total += len(r.Messages)
	}
	r, err := sqsc.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(ep.DeliveryQueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60})
	require.NoError(t, err)
	total += len(r.Messages)
	tasks = append(tasks, r)
	require.Equal(t, 1, total, "exactly one delivery task")
	var msgRec events.SQSMessage
	for _, o := range tasks {
		for _, m := range o.Messages {
			msgRec = events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body), Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
		}
	}
	deliver := startFunction(t, "deliver", env)
	batch, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{msgRec}})
	res = deliver.invoke(t, batch)
	require.False(t, res.Err, "%s", res.Payload)
	st, err := store.GetStatuses(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, gateway.StateDelivered, st[0].Status)
	mu.Lock()
	assert.Equal(t, 1, calls, "carol got the message exactly once")
	mu.Unlock()
}

// TestWorkersDoNotLinkTheSchemaValidator: payloads are validated where
// messages are accepted (api). The validator's template engine makes the
// linker keep every AWS client method, about 7 MB, so deliver and
// deadletter must not link it (gateway.SchemaRegistry, schema.metaSchema).
func TestWorkersDoNotLinkTheSchemaValidator(t *testing.T) {
	const compiler = "github.com/xeipuuv/gojsonschema.(*SchemaLoader).Compile"
	for fn, want := range map[string]bool{"api": true, "deliver": false, "deadletter": false} {
		out, err := exec.Command("go", "tool", "nm", bootstrap(t, fn)).Output()
		require.NoError(t, err, "go tool nm %s", fn)
		assert.Equal(t, want, strings.Contains(string(out), compiler), "%s links %s", fn, compiler)
	}
}

// TestFunctionsDoNotLinkUnusedAWSOperations: the api function's schema
// validator calls methods by name (text/template), so its linker keeps
// every exported method of every type stored in an interface. An AWS
// client stored in one — a port's struct holding it, a waiter given it —
// brings in all of its operations, each with its serializers: megabytes
// of operations no function calls. Adapters hold method values of the
// operations they make instead (sqsq, dynamo, awsgw's sfnCalls), and the
// resource creation that only `agentry serve` runs (awsres.Ensure) is not
// linked into the functions at all.
//
// S3's client is not on the list: s3.New itself stores the client in an
// interface (its S3 Express credentials provider), so s3blob's client
// links every S3 operation. That is accepted since the bootstrap target
// became 50 MB (issue 20): s3blob uses the SDK's client as intended.
func TestFunctionsDoNotLinkUnusedAWSOperations(t *testing.T) {
	unused := []string{
		"github.com/agentry/agentry/internal/adapter/awsres.Ensure",
		"github.com/aws/aws-sdk-go-v2/service/dynamodb.(*Client).CreateTable",
		"github.com/aws/aws-sdk-go-v2/service/dynamodb.(*Client).DeleteTable",
		"github.com/aws/aws-sdk-go-v2/service/dynamodb.(*Client).Scan",
		"github.com/aws/aws-sdk-go-v2/service/sqs.(*Client).CreateQueue",
		"github.com/aws/aws-sdk-go-v2/service/sqs.(*Client).PurgeQueue",
		"github.com/aws/aws-sdk-go-v2/service/sfn.(*Client).CreateStateMachine",
		"github.com/aws/aws-sdk-go-v2/service/secretsmanager.(*Client).DeleteSecret",
	}
	for _, fn := range []string{"api", "deliver", "deadletter"} {
		out, err := exec.Command("go", "tool", "nm", bootstrap(t, fn)).Output()
		require.NoError(t, err, "go tool nm %s", fn)
		linked := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 3 {
				linked[f[len(f)-1]] = true
			}
		}
		for _, sym := range unused {
			assert.False(t, linked[sym], "%s links %s", fn, sym)
		}
	}
}
