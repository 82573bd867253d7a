package e2e

// The kit of the AWS chaos tests (chaos_aws_test.go): a TCP proxy that
// makes moto unreachable, AWS faults injected as aws-sdk-go-v2 middleware
// (never a fake AWS), agents that count what they receive per message_id,
// a client that sends like a well-behaved agent (retrying 503 with the same
// idempotency key), and the figures the tests print.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/runtime/awsgw"
	"github.com/agentry/agentry/internal/usecase/delivery"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// ---- AWS unreachable: a TCP proxy in front of moto ----

// outage is how AWS's endpoint fails while the proxy is cut.
type outage int

const (
	// outageRefused: every open connection is reset and every new one too, so
	// the SDK fails fast ("connection reset by peer").
	outageRefused outage = iota
	// outageBlackhole: connections stay open (new ones are accepted) but
	// nothing goes through either way, as when packets are dropped: the
	// SDK waits for answers that never come. At restore they are reset.
	outageBlackhole
)

// awsProxy forwards TCP connections to moto until cut, then fails them
// as the outage says until restored. moto keeps running, so nothing of
// its state is lost.
type awsProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	down   bool
	mode   outage
	conns  map[net.Conn]bool // open connections (both sides) → held by a blackhole
}

func startAWSProxy(t *testing.T, target string) *awsProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &awsProxy{l: l, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		_ = l.Close()
		p.cut(outageRefused)
	})
	return p
}

func (p *awsProxy) url() string { return "http://" + p.l.Addr().String() }

func (p *awsProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return // closed
		}
		go p.handle(c)
	}
}

func (p *awsProxy) handle(c net.Conn) {
	if !p.track(c) {
		resetConn(c)
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(up) {
		p.drop(c)
		if up != nil {
			resetConn(up)
		}
		return
	}
	done := make(chan struct{}, 2)
	go p.pipe(up, c, done)
	go p.pipe(c, up, done)
	<-done // either side ended: end both
	p.drop(c)
	p.drop(up)
	<-done
}

// pipe copies src to dst until either fails; what arrives on a held
// connection is read and dropped.
func (p *awsProxy) pipe(dst, src net.Conn, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.held(src) && !p.held(dst) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// track registers an open connection; false when it is to be refused.
// A connection opened during a blackhole is held.
func (p *awsProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down && p.mode == outageRefused {
		return false
	}
	p.conns[c] = p.down
	return true
}

func (p *awsProxy) held(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[c]
}

func (p *awsProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// cut makes AWS unreachable in the given way.
func (p *awsProxy) cut(mode outage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.mode = true, mode
	for c := range p.conns {
		if mode == outageRefused {
			resetConn(c)
			delete(p.conns, c)
			continue
		}
		p.conns[c] = true
	}
}

// restore ends the outage; connections a blackhole held are reset (their
// requests and answers were lost in it).
func (p *awsProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
	for c, held := range p.conns {
		if held {
			resetConn(c)
			delete(p.conns, c)
		}
	}
}

// resetConn closes c with a TCP RST rather than an orderly FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// ---- AWS faults as SDK middleware ----

// awsFaults injects failures into the gateway's own AWS calls through the
// SDK's middleware stack (aws.Config.APIOptions), so that the real clients,
// deserializers and retryer handle them, and keeps the ledger that explains
// duplicates: which writes failed, about which message, and when.
type awsFaults struct {
	throttleEvery atomic.Int64 // every Nth attempt is throttled; 0: none
	attempts      atomic.Int64 // attempts counted while throttling
	throttled     atomic.Int64 // attempts answered with a throttling error

	mu       sync.Mutex
	crash    func(c awsCall) bool
	failures []failedCall           // operations that returned an error to the gateway
	receipts map[string]sqsTask     // SQS receipt handle → the task it carries
	received map[string]int         // SQS message id → times received by the gateway
	again    map[string][]time.Time // task id → when SQS handed out a copy it had handed out before
	crashes  map[string]int         // operation → calls crashed on purpose
}

// awsCall is one operation the gateway is about to make, as a crash rule
// sees it.
type awsCall struct {
	op    string // UpdateItem, DeleteMessage, …
	input []byte // the input as JSON, lower-cased
	// task is the delivery task a DeleteMessage or ChangeMessageVisibility
	// is about (known from its receipt handle); zero for other calls.
	task sqsTask
}

// sqsTask is what the test reads of a delivery task's SQS body.
type sqsTask struct {
	ID        string `json:"id"`
	MessageID string `json:"message_id"`
}

// failedCall is one operation whose error reached the gateway (after the
// SDK's retries), with the text of its input to find the messages it was
// about.
type failedCall struct {
	op    string
	code  string // the AWS error code, or what failed without one
	input string
	at    time.Time
}

func newAWSFaults() *awsFaults {
	return &awsFaults{receipts: map[string]sqsTask{}, again: map[string][]time.Time{}, received: map[string]int{}, crashes: map[string]int{}}
}

// install adds the fault middleware to every client built from cfg.
func (f *awsFaults) install(cfg *aws.Config) {
	cfg.APIOptions = append(slices.Clone(cfg.APIOptions), func(st *middleware.Stack) error {
		// Innermost in the deserialize step, i.e. in place of the HTTP
		// round trip of one attempt: the retry middleware (finalize step)
		// sees the throttling error as AWS would send it.
		if err := st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("chaosThrottle", f.throttle), middleware.After); err != nil {
			return err
		}
		// Before any attempt: the process "died" before the call.
		if err := st.Initialize.Add(middleware.InitializeMiddlewareFunc("chaosCrash", f.crashCall), middleware.After); err != nil {
			return err
		}
		// Outermost: it sees what the gateway sees, crashes included.
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("chaosLedger", f.observe), middleware.Before)
	})
}

func (f *awsFaults) throttle(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	if every := f.throttleEvery.Load(); every > 0 && f.attempts.Add(1)%every == 0 {
		f.throttled.Add(1)
		return middleware.DeserializeOutput{RawResponse: throttlingResponse()}, middleware.Metadata{}, nil
	}
	return next.HandleDeserialize(ctx, in)
}

// throttlingResponse is the answer DynamoDB and SQS (JSON protocol) give a
// throttled request; the request itself never reached AWS.
func throttlingResponse() *smithyhttp.Response {
	body := `{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}`
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-Requestid", "chaos-throttled")
	return &smithyhttp.Response{Response: &http.Response{
		StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
	}}
}

// errCrash is what a crashed call returns: the gateway's process "died"
// before making it (its caller then fails as after a real crash: nothing
// recorded, nothing acknowledged).
var errCrash = errors.New("chaos: the process stopped before this call")

func (f *awsFaults) crashCall(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	f.mu.Lock()
	rule := f.crash
	f.mu.Unlock()
	if rule != nil {
		c := f.call(in.Parameters)
		if rule(c) {
			f.mu.Lock()
			f.crashes[c.op]++
			f.mu.Unlock()
			return middleware.InitializeOutput{}, middleware.Metadata{}, errCrash
		}
	}
	return next.HandleInitialize(ctx, in)
}

func (f *awsFaults) observe(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleInitialize(ctx, in)
	if err != nil && isFault(err) {
		c := f.call(in.Parameters)
		text := string(c.input)
		if c.task.MessageID != "" {
			text += " " + strings.ToLower(c.task.MessageID)
		}
		f.mu.Lock()
		f.failures = append(f.failures, failedCall{op: c.op, code: awsErrorCode(err), input: text, at: time.Now()})
		f.mu.Unlock()
		return out, md, err
	}
	if r, ok := out.Result.(*sqs.ReceiveMessageOutput); ok {
		f.noteReceived(r.Messages)
	}
	return out, md, err
}

// isFault tells a failure (AWS unreachable, throttled beyond the SDK's
// retries, a crash) from an answer AWS gives on purpose, such as a failed
// condition, which the gateway's logic expects.
func isFault(err error) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return true
	}
	return api.ErrorFault() == smithy.FaultServer || retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool()
}

func awsErrorCode(err error) string {
	var api smithy.APIError
	switch {
	case errors.Is(err, errCrash):
		return "crash"
	case errors.As(err, &api):
		return api.ErrorCode()
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return "unreachable"
}

// call describes an operation: named by its input type (UpdateItemInput
// → UpdateItem), its input rendered as JSON, lower-cased, to search for
// message ids and addresses, and for SQS calls that carry a receipt handle
// (and name no message), the task received with it.
func (f *awsFaults) call(params any) awsCall {
	c := awsCall{op: strings.TrimSuffix(reflect.TypeOf(params).Elem().Name(), "Input")}
	text, _ := json.Marshal(params)
	c.input = bytes.ToLower(text)
	var receipt string
	switch in := params.(type) {
	case *sqs.DeleteMessageInput:
		receipt = aws.ToString(in.ReceiptHandle)
	case *sqs.ChangeMessageVisibilityInput:
		receipt = aws.ToString(in.ReceiptHandle)
	}
	if receipt != "" {
		f.mu.Lock()
		c.task = f.receipts[receipt]
		f.mu.Unlock()
	}
	return c
}

func (f *awsFaults) noteReceived(msgs []sqstypes.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range msgs {
		var task sqsTask
		_ = json.Unmarshal([]byte(aws.ToString(m.Body)), &task)
		f.receipts[aws.ToString(m.ReceiptHandle)] = task
		f.received[aws.ToString(m.MessageId)]++
		if f.received[aws.ToString(m.MessageId)] > 1 {
			f.again[task.ID] = append(f.again[task.ID], time.Now())
		}
	}
}

// setCrash installs the rule that decides which calls crash.
func (f *awsFaults) setCrash(rule func(c awsCall) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crash = rule
}

// explains names why the delivery of message id to rcpt was made again
// between first and last, or "" when nothing does. A delivery is made
// again (at-least-once) only when its task came back: a write recording or
// acknowledging the first delivery failed, so SQS handed the task out
// again after its visibility timeout; or the first delivery outlasted that
// timeout and SQS handed the task out again meanwhile.
func (f *awsFaults) explains(id, rcpt string, first, last time.Time) string {
	lid := strings.ToLower(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.failures {
		if isWrite(c.op) && strings.Contains(c.input, lid) && c.at.After(first) && c.at.Before(last) {
			return "failed " + c.op
		}
	}
	for _, at := range f.again[id+"|"+rcpt] {
		if at.After(first) && at.Before(last) {
			return "visibility timeout"
		}
	}
	return ""
}

func isWrite(op string) bool {
	switch op {
	case "UpdateItem", "PutItem", "TransactWriteItems", "DeleteItem", "BatchWriteItem",
		"DeleteMessage", "SendMessage", "SendMessageBatch", "ChangeMessageVisibility":
		return true
	}
	return false
}

// failedByOp counts the operations that failed (after the SDK's
// retries), by operation and error.
func (f *awsFaults) failedByOp() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	for _, c := range f.failures {
		n[c.op+"/"+c.code]++
	}
	return n
}

// redelivered counts SQS messages the gateway received more than once,
// and the receives beyond the first.
func (f *awsFaults) redelivered() (messages, extra int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.received {
		if n > 1 {
			messages++
			extra += n - 1
		}
	}
	return messages, extra
}

func (f *awsFaults) crashed() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.crashes))
	for k, v := range f.crashes {
		out[k] = v
	}
	return out
}

// ---- agents that count ----

// countingAgent is a push agent that records every delivery it receives
// per message_id, checks each one's Standard Webhooks signature, and
// answers 200 without a reply.
type countingAgent struct {
	srv     *httptest.Server
	secret  string
	mu      sync.Mutex
	got     map[string][]webhookCall // by message_id
	onFirst func(messageID string)   // called before answering the first delivery of a message
}

type webhookCall struct {
	at        time.Time
	body      []byte
	webhookID string
	signed    bool // the signature verified
}

func newCountingAgent(t *testing.T) *countingAgent {
	a := &countingAgent{got: map[string][]webhookCall{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *countingAgent) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h := map[string]string{
		delivery.HeaderWebhookID:        r.Header.Get(delivery.HeaderWebhookID),
		delivery.HeaderWebhookTimestamp: r.Header.Get(delivery.HeaderWebhookTimestamp),
		delivery.HeaderWebhookSignature: r.Header.Get(delivery.HeaderWebhookSignature),
	}
	a.mu.Lock()
	secret := a.secret
	a.mu.Unlock()
	call := webhookCall{at: time.Now(), body: body, webhookID: h[delivery.HeaderWebhookID],
		signed: delivery.VerifyWebhook(secret, h, body, time.Now(), 5*time.Minute) == nil}
	var m struct {
		MessageID string `json:"message_id"`
	}
	_ = json.Unmarshal(body, &m)
	a.mu.Lock()
	first := len(a.got[m.MessageID]) == 0
	a.got[m.MessageID] = append(a.got[m.MessageID], call)
	hook := a.onFirst
	a.mu.Unlock()
	if first && hook != nil {
		hook(m.MessageID)
	}
	w.WriteHeader(http.StatusOK)
}

func (a *countingAgent) calls(id string) []webhookCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]webhookCall(nil), a.got[id]...)
}

// ---- the world: one gateway on the AWS adapters, one sender, two agents ----

const chaosDomain = "chaos.test"

var (
	chaosBob   = "bob@" + chaosDomain
	chaosCarol = "carol@" + chaosDomain
)

type chaosWorld struct {
	t      *testing.T
	gw     *gw
	aws    *awsgw.Gateway
	faults *awsFaults
	proxy  *awsProxy // nil unless the world was asked for one
	alice  string    // the sender's API key
	agents map[string]*countingAgent
	direct *sqs.Client // straight to moto, unfaulted: the test's own look at the queues
}

type chaosOpts struct {
	proxy bool          // reach moto through an awsProxy
	lease time.Duration // visibility of received delivery tasks
	// callTimeout bounds each AWS call (awsgw.AWSCallTimeout); zero for
	// the default.
	callTimeout time.Duration
	// lambda: the deliver function's handler (DeliverBatch) consumes the
	// queue, fed by an event source mapping like Lambda's, instead of the
	// poller; crashBatch, if set, says which batches "crash" after the
	// handler returned (nothing of them is deleted).
	lambda     bool
	crashBatch func(ev events.SQSEvent) bool
}

func newChaosWorld(t *testing.T, o chaosOpts) *chaosWorld {
	t.Helper()
	w := &chaosWorld{t: t, faults: newAWSFaults(), agents: map[string]*countingAgent{}}
	moto := awstest.Endpoint(t)
	direct := awstest.Config(t)
	w.direct = sqs.NewFromConfig(direct)
	if o.proxy {
		w.proxy = startAWSProxy(t, strings.TrimPrefix(moto, "http://"))
	}
	got := make(chan *awsgw.Gateway, 1)
	opts := gwOpts{
		aws: true,
		awsConfig: func(c *aws.Config) {
			if w.proxy != nil {
				c.BaseEndpoint = aws.String(w.proxy.url())
			}
			w.faults.install(c)
		},
		awsOptions: []awsgw.Option{awsgw.DeliveryLease(o.lease), awsgw.AWSCallTimeout(o.callTimeout), awsgw.MetricsTo(io.Discard)},
		awsDeliver: func(ctx context.Context, g *awsgw.Gateway) {
			got <- g
			if o.lambda {
				runEventSourceMapping(ctx, w.direct, g, o.lease, o.crashBatch, w.faults.noteReceived)
				return
			}
			_ = g.Worker.Run(ctx)
		},
	}
	w.gw = startGateway(t, dnstest.Start(t), chaosDomain, opts)
	select {
	case w.aws = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway's delivery consumer did not start")
	}
	w.alice, _ = w.gw.register("alice", "pull", "")
	for _, addr := range []string{chaosBob, chaosCarol} {
		a := newCountingAgent(t)
		_, secret := w.gw.register(addr, "push", a.srv.URL+"/amtp")
		a.secret = secret
		w.agents[addr] = a
	}
	return w
}

// runEventSourceMapping does for DeliverBatch what Lambda's SQS event
// source mapping does for the deliver function: receive a batch, invoke
// the handler, delete the records it did not report as failed. It uses its
// own client (the mapping is Lambda's, not the function's), so the faults
// injected into the gateway's calls do not touch it.
func runEventSourceMapping(ctx context.Context, c *sqs.Client, g *awsgw.Gateway, visibility time.Duration, crash func(events.SQSEvent) bool, seen func([]sqstypes.Message)) {
	for ctx.Err() == nil {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(g.Config.QueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			VisibilityTimeout:           int32(visibility / time.Second),
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil || len(out.Messages) == 0 {
			continue
		}
		seen(out.Messages)
		ev := events.SQSEvent{Records: make([]events.SQSMessage, len(out.Messages))}
		for i, m := range out.Messages {
			ev.Records[i] = events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body), Attributes: m.Attributes}
		}
		resp, _ := g.DeliverBatch(ctx, ev)
		if crash != nil && crash(ev) {
			continue // the invocation died before Lambda got its answer
		}
		failed := map[string]bool{}
		for _, f := range resp.BatchItemFailures {
			failed[f.ItemIdentifier] = true
		}
		for _, m := range out.Messages {
			if !failed[aws.ToString(m.MessageId)] {
				_, _ = c.DeleteMessage(context.WithoutCancel(ctx), &sqs.DeleteMessageInput{QueueUrl: aws.String(g.Config.QueueURL), ReceiptHandle: m.ReceiptHandle})
			}
		}
	}
}

// ---- the sending side ----

// chaosAnswer is one HTTP answer to a submission.
type chaosAnswer struct {
	status     int
	retryAfter string
	start, end time.Time
	err        error // transport error (no answer)
}

// chaosSent is one message as its sender saw it: every answer, and the final
// one's message id.
type chaosSent struct {
	recipients []string
	answers    []chaosAnswer
	id         string // from the 200/202 answer; "" when never accepted
}

// chaosLoad sends messages from several goroutines like well-behaved agents:
// each message has its own idempotency key, and a 503 is retried with the
// same bytes after its Retry-After.
type chaosLoad struct {
	w       *chaosWorld
	next    atomic.Int64
	mu      sync.Mutex
	msgs    []*chaosSent
	stopped atomic.Bool
	wg      sync.WaitGroup
	client  *http.Client
}

// startLoad runs workers senders; plan gives the recipients of message i,
// or false when the load is over.
func (w *chaosWorld) startLoad(workers int, plan func(i int) ([]string, bool)) *chaosLoad {
	l := &chaosLoad{w: w, client: &http.Client{Timeout: 60 * time.Second}}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for !l.stopped.Load() {
				i := int(l.next.Add(1) - 1)
				rcpts, ok := plan(i)
				if !ok {
					return
				}
				l.sendOne(i, rcpts)
			}
		}()
	}
	return l
}

func (l *chaosLoad) stop() { l.stopped.Store(true); l.wg.Wait() }
func (l *chaosLoad) wait() { l.wg.Wait() }

// sendOne submits message i until it is accepted, or refused otherwise
// than by 503, or a minute has passed.
func (l *chaosLoad) sendOne(i int, rcpts []string) {
	s := &chaosSent{recipients: rcpts}
	l.mu.Lock()
	l.msgs = append(l.msgs, s)
	l.mu.Unlock()
	body, _ := json.Marshal(map[string]any{
		"version": "1.0", "sender": "alice@" + chaosDomain, "recipients": rcpts, "subject": "chaos",
		"idempotency_key": fmt.Sprintf("chaos-%d-%d", time.Now().UnixNano(), i), "payload": map[string]any{"n": i},
	})
	deadline := time.Now().Add(time.Minute)
	for {
		a, id := l.post(body)
		l.mu.Lock()
		s.answers = append(s.answers, a)
		if id != "" {
			s.id = id
		}
		l.mu.Unlock()
		retry := a.err != nil || a.status == http.StatusServiceUnavailable || a.status == http.StatusTooManyRequests
		if !retry || time.Now().After(deadline) {
			return
		}
		wait := time.Second
		if n, err := strconv.Atoi(a.retryAfter); err == nil && n >= 0 {
			wait = min(time.Duration(n)*time.Second, 2*time.Second)
		}
		time.Sleep(wait) // the client's backoff, as Retry-After asks
	}
}

func (l *chaosLoad) post(body []byte) (chaosAnswer, string) {
	a := chaosAnswer{start: time.Now()}
	req, err := http.NewRequest(http.MethodPost, l.w.gw.url+"/v1/messages", bytes.NewReader(body))
	if err != nil {
		a.err = err
		return a, ""
	}
	req.Header.Set("Authorization", "Bearer "+l.w.alice)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	a.end = time.Now()
	if err != nil {
		a.err = err
		return a, ""
	}
	defer resp.Body.Close()
	a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	var out struct {
		MessageID string `json:"message_id"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if a.status == http.StatusOK || a.status == http.StatusAccepted {
		_ = json.Unmarshal(raw, &out)
	}
	return a, out.MessageID
}

func (l *chaosLoad) snapshot() []chaosSent {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]chaosSent, len(l.msgs))
	for i, s := range l.msgs {
		out[i] = chaosSent{recipients: s.recipients, answers: append([]chaosAnswer(nil), s.answers...), id: s.id}
	}
	return out
}

// accepted counts the messages answered 200/202 so far.
func (l *chaosLoad) accepted() int {
	n := 0
	for _, s := range l.snapshot() {
		if s.id != "" {
			n++
		}
	}
	return n
}

// ---- waiting and counting ----

// queueEmpty reports whether the delivery queue holds nothing: no message
// visible, in flight or delayed. Only then can no further delivery happen.
func (w *chaosWorld) queueEmpty(ctx context.Context) bool {
	out, err := w.direct.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(w.aws.Config.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return false
	}
	for _, v := range out.Attributes {
		if v != "0" {
			return false
		}
	}
	return true
}

// owed is every (message, recipient) the gateway answered 200/202 for.
func owedPairs(msgs []chaosSent) [][2]string {
	var out [][2]string
	for _, s := range msgs {
		if s.id == "" {
			continue
		}
		for _, r := range s.recipients {
			out = append(out, [2]string{s.id, r})
		}
	}
	return out
}

// drain waits until every owed delivery has reached its agent and the
// delivery queue is empty (so that no later duplicate can still come).
func (w *chaosWorld) drain(msgs []chaosSent, within time.Duration) bool {
	pairs := owedPairs(msgs)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		all := true
		for _, p := range pairs {
			if len(w.agents[p[1]].calls(p[0])) == 0 {
				all = false
				break
			}
		}
		if all && w.queueEmpty(context.Background()) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// finalStates reads the state of every accepted message, a few at a time.
func (w *chaosWorld) finalStates(msgs []chaosSent) map[string]string {
	ids := make(chan string)
	var (
		mu  sync.Mutex
		out = map[string]string{}
		wg  sync.WaitGroup
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				state := w.messageState(id)
				mu.Lock()
				out[id] = state
				mu.Unlock()
			}
		}()
	}
	for _, s := range msgs {
		if s.id != "" {
			ids <- s.id
		}
	}
	close(ids)
	wg.Wait()
	return out
}

// messageState is the message's state as the gateway derives it for
// GET /v1/messages/{id}/status, read from its store (the HTTP round trip
// adds nothing here but time), or what went wrong reading it.
func (w *chaosWorld) messageState(id string) string {
	st, err := w.aws.Store.GetStatuses(context.Background(), id)
	if err != nil {
		return err.Error()
	}
	return string(gateway.DeriveState(st))
}

// chaosFigures are what a chaos run prints.
type chaosFigures struct {
	messages    int            // messages the clients sent
	answers     map[int]int    // every HTTP answer by status (0: no answer)
	accepted    int            // messages finally answered 200/202
	refused     int            // messages never accepted
	owed        int            // (message, recipient) pairs owed a delivery
	delivered   int            // pairs received at least once
	duplicated  int            // deliveries beyond the first
	explained   int            // of those, explained duplicates
	causes      map[string]int // what explained them
	lost        int            // owed pairs never received
	unexplained []string
	lostPairs   []string
}

// count compares what the agents received with what was accepted. A
// duplicate is explained when it is byte-for-byte the first delivery with
// the same webhook-id (the message_id), so the receiver can de-duplicate
// it, and the task came back between the deliveries for a reason the
// ledger shows (awsFaults.explains).
func (w *chaosWorld) count(msgs []chaosSent) chaosFigures {
	f := chaosFigures{messages: len(msgs), answers: map[int]int{}, causes: map[string]int{}}
	byID := make(map[string]chaosSent, len(msgs))
	for _, s := range msgs {
		byID[s.id] = s
		for _, a := range s.answers {
			f.answers[a.status]++
		}
		if s.id != "" {
			f.accepted++
		} else {
			f.refused++
		}
	}
	for _, p := range owedPairs(msgs) {
		f.owed++
		calls := w.agents[p[1]].calls(p[0])
		if len(calls) == 0 {
			f.lost++
			f.lostPairs = append(f.lostPairs, p[0]+" → "+p[1])
			continue
		}
		f.delivered++
		for i, c := range calls[1:] {
			f.duplicated++
			same := bytes.Equal(c.body, calls[0].body) && c.webhookID == p[0] && calls[0].webhookID == p[0] && c.signed && calls[0].signed
			if why := w.faults.explains(p[0], p[1], calls[0].at, c.at); same && why != "" {
				f.explained++
				f.causes[why]++
				continue
			}
			f.unexplained = append(f.unexplained, fmt.Sprintf("%s → %s (delivery %d of %d, identical=%v; %s)", p[0], p[1], i+2, len(calls), same, timeline(byID[p[0]], calls)))
		}
	}
	return f
}

// timeline tells when a message was sent, answered and delivered, for
// the report of an unexplained duplicate.
func timeline(s chaosSent, calls []webhookCall) string {
	if len(s.answers) == 0 {
		return "no request"
	}
	last := s.answers[len(s.answers)-1]
	out := fmt.Sprintf("%d requests; the last started at T, answered %d at T+%s; delivered at", len(s.answers), last.status, last.end.Sub(last.start).Round(time.Millisecond))
	for _, c := range calls {
		out += " T+" + c.at.Sub(last.start).Round(time.Millisecond).String()
	}
	return out
}

// log prints the figures, labelled, so that they show in the test output.
func (f chaosFigures) log(t *testing.T, scenario string, extra ...string) {
	t.Helper()
	codes := make([]int, 0, len(f.answers))
	for c := range f.answers {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var ans []string
	for _, c := range codes {
		label := strconv.Itoa(c)
		if c == 0 {
			label = "no-answer"
		}
		ans = append(ans, fmt.Sprintf("%s×%d", label, f.answers[c]))
	}
	t.Logf("CHAOS FIGURES [%s]\n"+
		"  messages sent:        %d (accepted 200/202: %d, never accepted: %d)\n"+
		"  HTTP answers:         %s\n"+
		"  deliveries owed:      %d (message × recipient)\n"+
		"  delivered:            %d\n"+
		"  duplicated:           %d (explained: %d %v)\n"+
		"  lost:                 %d\n"+
		"  %s",
		scenario, f.messages, f.accepted, f.refused, strings.Join(ans, " "), f.owed, f.delivered, f.duplicated, f.explained, f.causes, f.lost,
		strings.Join(extra, "\n  "))
}
