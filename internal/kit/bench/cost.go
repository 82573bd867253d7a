package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/adapter/dynamo"
	"github.com/agentry/agentry/internal/adapter/observe"
	"github.com/agentry/agentry/internal/kit/awscost"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/kit/bench/report"
	"github.com/agentry/agentry/internal/kit/cfntemplate"
	"github.com/agentry/agentry/internal/runtime/awsgw"
	"github.com/agentry/agentry/internal/runtime/config"
)

// costMessages is how many messages each flow of the cost scenario sends
// per pass (the scenario's test sends fewer).
var costMessages = 20

// Targets of the issue, per single-recipient message.
const (
	costWriteUnitsTarget = 3 // DynamoDB write request units
	costSQSSendsTarget   = 1 // messages put on a queue
	costUSDTarget        = 4 // $ per million messages
)

// Who makes the calls, as the cost rows break them down.
const (
	actorAPI     = "api"
	actorDeliver = "deliver"
	// actorPoller is Lambda's event source mapping of the deliver
	// function: its receives and deletes are billed to the account too.
	actorPoller = "sqs-poller"

	costDomain = "localhost"
)

// stackSpec is what the synthesized stack says of the functions the
// cost depends on.
type stackSpec struct {
	apiMB, deliverMB int
	batchSize        int // records per deliver invocation, at most
	maxConcurrency   int // deliver invocations at once, at most (the event source's)
}

// readStackSpec reads the functions' memory sizes and the deliver event
// source's batch size from the committed `cdk synth` output, so that the
// prices follow the stack.
func readStackSpec() (stackSpec, error) {
	path := awstest.SnapshotPath()
	t, err := cfntemplate.Load(path)
	if err != nil {
		return stackSpec{}, fmt.Errorf("read the stack: %w", err)
	}
	byRole := map[string]string{}
	for id, r := range t.Resources {
		if role, _ := r.Metadata[cfntemplate.MetaRole].(string); role != "" {
			byRole[role] = id
		}
	}
	memory := func(role string) (int, error) {
		r := t.Resources[byRole[role]]
		if r == nil {
			return 0, fmt.Errorf("%s: no resource with role %s", path, role)
		}
		mb, ok := r.Properties["MemorySize"].(float64)
		if !ok || mb <= 0 {
			return 0, fmt.Errorf("%s: the %s has no MemorySize", path, role)
		}
		// The price table has the arm64 duration price only.
		if archs, _ := r.Properties["Architectures"].([]any); !slices.Equal(archs, []any{"arm64"}) {
			return 0, fmt.Errorf("%s: the %s runs on %v, priced here as arm64", path, role, archs)
		}
		return int(mb), nil
	}
	var s stackSpec
	if s.apiMB, err = memory(cfntemplate.RoleAPIFunction); err != nil {
		return s, err
	}
	if s.deliverMB, err = memory(cfntemplate.RoleDeliverFunction); err != nil {
		return s, err
	}
	for _, r := range t.Resources {
		if r.Type != "AWS::Lambda::EventSourceMapping" {
			continue
		}
		if ref, _ := r.Properties["FunctionName"].(map[string]any); ref["Ref"] == byRole[cfntemplate.RoleDeliverFunction] {
			n, _ := r.Properties["BatchSize"].(float64)
			s.batchSize = int(n)
			if sc, ok := r.Properties["ScalingConfig"].(map[string]any); ok {
				c, _ := sc["MaximumConcurrency"].(float64)
				s.maxConcurrency = int(c)
			}
		}
	}
	if s.batchSize <= 0 {
		return s, fmt.Errorf("%s: no event source mapping with a batch size for the deliver function", path)
	}
	return s, nil
}

// costGateway is the gateway on the AWS adapters, in this process, with
// moto behind them: the api function is its HTTP handler, the deliver
// function its DeliverBatch.
type costGateway struct {
	g        *awsgw.Gateway
	adminKey string
	queueURL string
	// poller makes the event source mapping's calls (counted); depth
	// reads the queue's attributes for the bench (uncounted).
	poller, depth *sqs.Client
	// logs receives what the functions write to stdout (their JSON log
	// and EMF metric lines): CloudWatch Logs bills it by size.
	logs *os.File
}

// startCostGateway builds the gateway as awsgw.New builds it for the
// Lambda functions, its clients counted by counter.
func startCostGateway(ctx context.Context, dir, dnsAddr string, awsCfg aws.Config, counter *awscost.Counter, names awsres.Names, ep awsres.Endpoints) (*costGateway, error) {
	cg := &costGateway{adminKey: randomKey("bench-admin-"), queueURL: ep.DeliveryQueueURL}
	env := map[string]string{
		"AGENTRY_DOMAIN":     costDomain,
		"AGENTRY_ADMIN_KEY":  cg.adminKey,
		"AGENTRY_DNS_SERVER": dnsAddr,
		// Loopback webhooks, as in the push scenario.
		"AGENTRY_ALLOW_INSECURE": "1",
	}
	// The table's sharding may be chosen for a run (the heat scenario's
	// figures depend on it).
	for _, k := range []string{"AGENTRY_DYNAMO_LISTING_SHARDS", "AGENTRY_DYNAMO_INBOX_SHARDS"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		return nil, fmt.Errorf("cost gateway configuration: %w", err)
	}
	cfg.Backend, cfg.ResourcePrefix, cfg.Table, cfg.Bucket = "aws", names.Prefix, names.Table, names.Bucket
	cfg.QueueURL, cfg.DLQURL = ep.DeliveryQueueURL, ep.DeadLetterURL
	if cg.logs, err = os.Create(filepath.Join(dir, "functions.log")); err != nil {
		return nil, err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	// The functions log and write their metric lines to stdout; here
	// both go to the log file, out of the bench's table, where they are
	// measured.
	cg.g, err = awsgw.New(ctx, cfg, counter.Instrument(awsCfg), observe.NewLogger(cg.logs, level), awsgw.MetricsTo(cg.logs))
	if err != nil {
		_ = cg.logs.Close()
		return nil, fmt.Errorf("cost gateway: %w", err)
	}
	cg.poller = sqs.NewFromConfig(counter.Instrument(awsCfg))
	cg.depth = sqs.NewFromConfig(awsCfg)
	return cg, nil
}

func (cg *costGateway) Close() error { return cg.logs.Close() }

// logBytes is how much the functions have logged so far.
func (cg *costGateway) logBytes() (int64, error) {
	fi, err := cg.logs.Stat()
	if err != nil {
		return 0, fmt.Errorf("functions' log: %w", err)
	}
	return fi.Size(), nil
}

// invoke is one api function invocation: the request through the
// gateway's HTTP handler (the Lambda adapter does no more), timed.
func (cg *costGateway) invoke(ctx context.Context, method, path, key string, body []byte) (int, map[string]any, time.Duration, error) {
	req, err := http.NewRequestWithContext(awscost.WithActor(ctx, actorAPI), method, "https://"+costDomain+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	start := time.Now()
	cg.g.Handler.ServeHTTP(rec, req)
	took := time.Since(start)
	var out map[string]any
	if raw := bytes.TrimSpace(rec.Body.Bytes()); len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return rec.Code, nil, took, fmt.Errorf("%s %s: answer is not JSON: %.200s", method, path, raw)
		}
	}
	return rec.Code, out, took, nil
}

// register registers an agent and returns its API key.
func (cg *costGateway) register(ctx context.Context, name, mode, webhook string) (string, error) {
	body := map[string]any{"address": name, "delivery_mode": mode}
	if webhook != "" {
		body["webhook_url"] = webhook
	}
	data, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	status, out, _, err := cg.invoke(ctx, "POST", "/v1/admin/agents", cg.adminKey, data)
	if err != nil {
		return "", err
	}
	key, _ := out["api_key"].(string)
	if status != http.StatusCreated || key == "" {
		return "", fmt.Errorf("register %s: HTTP %d %v", name, status, out)
	}
	return key, nil
}

// queueDepth is how many messages of the delivery queue are visible, and
// how many are delayed or out on a receive.
func (cg *costGateway) queueDepth(ctx context.Context) (visible, hidden int, err error) {
	out, err := cg.depth.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(cg.queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("delivery queue depth: %w", err)
	}
	n := func(a sqstypes.QueueAttributeName) int {
		v, _ := strconv.Atoi(out.Attributes[string(a)])
		return v
	}
	return n(sqstypes.QueueAttributeNameApproximateNumberOfMessages),
		n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed) + n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible), nil
}

// drain plays the deliver function's event source mapping until the
// delivery queue is empty. It waits until every queued copy is visible,
// so that each receive fills a batch as far as the mapping's batch size
// allows (a queue under steady load); invokes DeliverBatch with the
// records as Lambda passes them; and deletes the records the function did
// not report as failures, as the mapping does. It returns each
// invocation's duration.
func (cg *costGateway) drain(ctx context.Context, batchSize int, within time.Duration) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var took []time.Duration
	for {
		visible, hidden, err := cg.queueDepth(ctx)
		if err != nil {
			return took, err
		}
		switch {
		case visible == 0 && hidden == 0:
			return took, nil
		case hidden > 0:
			select {
			case <-ctx.Done():
				return took, fmt.Errorf("delivery queue not drained within %v: %d visible, %d delayed or in flight", within, visible, hidden)
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		out, err := cg.poller.ReceiveMessage(awscost.WithActor(ctx, actorPoller), &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(cg.queueURL),
			MaxNumberOfMessages: int32(batchSize),
			// The mapping long-polls; with messages visible the answer
			// is immediate.
			WaitTimeSeconds:             20,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		if err != nil {
			return took, fmt.Errorf("receive a delivery batch: %w", err)
		}
		if len(out.Messages) == 0 {
			continue
		}
		ev := events.SQSEvent{Records: make([]events.SQSMessage, len(out.Messages))}
		for i, m := range out.Messages {
			ev.Records[i] = events.SQSMessage{
				MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
				Body: aws.ToString(m.Body), Attributes: m.Attributes, EventSource: "aws:sqs", AWSRegion: awstest.Region,
			}
		}
		start := time.Now()
		resp, err := cg.g.DeliverBatch(awscost.WithActor(ctx, actorDeliver), ev)
		took = append(took, time.Since(start))
		if err != nil {
			return took, fmt.Errorf("deliver batch: %w", err)
		}
		if n := len(resp.BatchItemFailures); n > 0 {
			return took, fmt.Errorf("deliver reported %d of %d records as failures (see the functions' log)", n, len(ev.Records))
		}
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(out.Messages))
		for i, m := range out.Messages {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		// Entries the worker deleted already fail one by one; the request
		// is billed all the same.
		if _, err := cg.poller.DeleteMessageBatch(awscost.WithActor(ctx, actorPoller), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(cg.queueURL), Entries: entries}); err != nil {
			return took, fmt.Errorf("delete a delivered batch: %w", err)
		}
	}
}

// flowRun is one pass of a flow: how long each function invocation took.
type flowRun struct {
	api, deliver []time.Duration
}

// measured is a flow measured in two passes: one counted (calls, units,
// log bytes), one timed with the counter off, since the counter's own
// uncounted reads would be billed as duration.
type measured struct {
	name     string
	n        int
	flow     func(context.Context) (flowRun, error)
	usage    awscost.Usage
	byActor  map[string]awscost.Usage
	counted  flowRun
	timed    flowRun
	logBytes int64
}

// measureFlows runs the flows in order, counted, then again in order,
// timed: a flow may depend on the one before it in the same pass.
func measureFlows(ctx context.Context, counter *awscost.Counter, cg *costGateway, flows ...*measured) error {
	defer counter.SetEnabled(true)
	for _, counted := range []bool{true, false} {
		counter.SetEnabled(counted)
		for _, m := range flows {
			// Whatever ran before (set-up, the flow before) is not this
			// flow's.
			if _, _, err := counter.Take(); err != nil {
				return fmt.Errorf("before %s: %w", m.name, err)
			}
			log0, err := cg.logBytes()
			if err != nil {
				return err
			}
			fr, err := m.flow(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if !counted {
				m.timed = fr
				continue
			}
			m.counted = fr
			log1, err := cg.logBytes()
			if err != nil {
				return err
			}
			m.logBytes = log1 - log0
			if m.usage, m.byActor, err = counter.Take(); err != nil {
				return fmt.Errorf("%s: counting failed: %w", m.name, err)
			}
		}
	}
	return nil
}

// cost runs single-recipient messages through the AWS adapters against
// moto — a push recipient (webhook on loopback) and a pull recipient, and
// the pull recipient reading its messages — counting the AWS calls each
// makes and pricing them per million messages.
func (r *run) cost(ctx context.Context) (err error) {
	env, err := r.startAWSScenario(ctx, Cost)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close()) }()
	spec, counter, hook, cg := env.spec, env.counter, env.hook, env.cg

	alice, err := cg.register(ctx, "alice", "pull", "")
	if err != nil {
		return err
	}
	bob, err := cg.register(ctx, "bob", "pull", "")
	if err != nil {
		return err
	}
	if _, err := cg.register(ctx, "carol", "push", hook.URL); err != nil {
		return err
	}
	n := costMessages
	within := 2*time.Minute + time.Duration(n)*r.o.DeliveryTimeout

	// Each message posted, then the queue drained: what is left there
	// after the 202 (for push, the copy the Immediate Path holds back in
	// case its attempt fails) is part of the message's cost.
	post := func(recipient string, ids *[]string) func(context.Context) (flowRun, error) {
		msgs := newMessages("alice@"+costDomain, recipient+"@"+costDomain, r.o.PayloadBytes)
		return func(ctx context.Context) (flowRun, error) {
			var fr flowRun
			hooked := hook.received.Load()
			*ids = (*ids)[:0]
			for i := range n {
				id, body := msgs.Make(i)
				status, out, took, err := cg.invoke(ctx, "POST", "/v1/messages", alice, body)
				if err != nil {
					return fr, err
				}
				if status != http.StatusAccepted && status != http.StatusOK {
					return fr, fmt.Errorf("POST /v1/messages to %s: HTTP %d %v", recipient, status, out)
				}
				fr.api = append(fr.api, took)
				*ids = append(*ids, id)
			}
			var err error
			if fr.deliver, err = cg.drain(ctx, spec.batchSize, within); err != nil {
				return fr, err
			}
			if recipient == "carol" {
				if got := hook.received.Load() - hooked; got != int64(n) {
					return fr, fmt.Errorf("the webhook received %d deliveries of %d messages", got, n)
				}
			}
			return fr, nil
		}
	}
	var pushIDs, pullIDs []string
	// bob reads each message (one at a time: the most calls a reader can
	// make) and acknowledges it.
	read := func(ctx context.Context) (flowRun, error) {
		var fr flowRun
		left := map[string]bool{}
		for _, id := range pullIDs {
			left[id] = true
		}
		for range pullIDs {
			status, out, took, err := cg.invoke(ctx, "GET", "/v1/inbox/bob@"+costDomain+"?limit=1", bob, nil)
			if err != nil {
				return fr, err
			}
			fr.api = append(fr.api, took)
			list, _ := out["messages"].([]any)
			if status != http.StatusOK || len(list) != 1 {
				return fr, fmt.Errorf("GET bob's inbox: HTTP %d %v", status, out)
			}
			first, _ := list[0].(map[string]any)
			id, _ := first["message_id"].(string)
			if !left[id] {
				return fr, fmt.Errorf("bob's inbox holds %q, not one of the messages sent", id)
			}
			delete(left, id)
			status, out, took, err = cg.invoke(ctx, "DELETE", "/v1/inbox/bob@"+costDomain+"/"+id, bob, nil)
			if err != nil {
				return fr, err
			}
			fr.api = append(fr.api, took)
			if status != http.StatusOK {
				return fr, fmt.Errorf("acknowledge %s: HTTP %d %v", id, status, out)
			}
		}
		return fr, nil
	}

	push := &measured{name: "push", n: n, flow: post("carol", &pushIDs)}
	if err := measureFlows(ctx, counter, cg, push); err != nil {
		return err
	}
	r.logf("cost: push measured (%d messages a pass)", n)
	pull := &measured{name: "pull", n: n, flow: post("bob", &pullIDs)}
	reading := &measured{name: "pull read", n: n, flow: read}
	if err := measureFlows(ctx, counter, cg, pull, reading); err != nil {
		return err
	}
	r.logf("cost: pull measured (%d messages a pass)", n)

	for _, m := range []*measured{push, pull, reading} {
		r.costRows(m, spec, m.name != "pull read")
	}
	r.costNotes(spec)
	return nil
}

// quantities turns a measured flow into what one message uses.
func (m *measured) quantities(spec stackSpec) awscost.Quantities {
	per := 1 / float64(m.n)
	u := m.usage.Scale(per)
	gbs := 0.0
	for _, d := range m.timed.api {
		gbs += awscost.GBSeconds(spec.apiMB, d)
	}
	for _, d := range m.timed.deliver {
		gbs += awscost.GBSeconds(spec.deliverMB, d)
	}
	return awscost.Quantities{
		// Each api invocation is one HTTP API request (all far under
		// the 512 KB metering step).
		APIRequests:       float64(len(m.counted.api)) * per,
		LambdaInvocations: float64(len(m.counted.api)+len(m.counted.deliver)) * per,
		// From the timed pass, which batches as the counted one does.
		LambdaGBSeconds: gbs * per,
		SQSRequests:     u.SQSRequests,
		WriteUnits:      u.WriteUnits,
		ReadUnits:       u.ReadUnits,
		S3Tier1:         u.S3Tier1,
		S3Tier2:         u.S3Tier2,
		LogBytes:        float64(m.logBytes) * per,
	}
}

// costRows reports one flow: calls, units, sends and the price per
// million messages, in total and by service. targets: the flow is one of
// the (a message sent), not the reader's extra.
func (r *run) costRows(m *measured, spec stackSpec, targets bool) {
	per := 1 / float64(m.n)
	u := m.usage.Scale(per)
	q := m.quantities(spec)
	bill := awscost.Estimate(q)
	target := func(t *report.Target) *report.Target {
		if targets {
			return t
		}
		return nil
	}
	row := func(name string, v float64, unit string, t *report.Target, note string) {
		r.rep.Add(report.Row{Section: Cost, Name: m.name + " " + name, Value: v, Unit: unit, Target: t, Note: note})
	}

	actors := make([]string, 0, len(m.byActor))
	for a := range m.byActor {
		actors = append(actors, a)
	}
	slices.Sort(actors)
	var who []string
	for _, a := range actors {
		who = append(who, fmt.Sprintf("%s %s", a, awscost.Num(m.byActor[a].TotalCalls()*per)))
	}
	callNote := u.CallList() + "; by caller: " + strings.Join(who, ", ")
	if u.Retries > 0 {
		callNote += fmt.Sprintf("; SDK retries %s", awscost.Num(u.Retries))
	}
	row("AWS calls/msg", u.TotalCalls(), "calls", nil, callNote)

	wNote := fmt.Sprintf("table %s, indexes %s (computed from the items: moto reports no capacity)",
		awscost.Num(u.WriteUnits-u.IndexWriteUnits), awscost.Num(u.IndexWriteUnits))
	if u.FailedWrites > 0 {
		wNote += fmt.Sprintf("; failed conditional writes %s", awscost.Num(u.FailedWrites))
	}
	row("DynamoDB WRU/msg", u.WriteUnits, "WRU", target(report.AtMost(costWriteUnitsTarget)), wNote)
	if targets {
		row("SQS sends/msg", u.SQSMessagesSent, "msgs", report.AtMost(costSQSSendsTarget),
			fmt.Sprintf("billed SQS requests %s/msg (sends, receives, deletes; one per 64 KB)", awscost.Num(u.SQSRequests)))
	}
	row("DynamoDB RRU/msg", u.ReadUnits, "RRU", nil, "")

	var parts []string
	for _, svc := range []string{awscost.ServiceAPIGateway, awscost.ServiceLambda, awscost.ServiceSQS, awscost.ServiceDynamoDB, awscost.ServiceS3, awscost.ServiceLogs} {
		if v := bill.Service(svc); v > 0 || svc != awscost.ServiceS3 {
			parts = append(parts, fmt.Sprintf("%s %.3f", svc, v))
		}
	}
	totalNote := strings.Join(parts, " + ")
	if len(u.Unmetered) > 0 {
		totalNote += "; not priced: " + awscost.Usage{Calls: u.Unmetered}.CallList()
	}
	// The target counts API Gateway, Lambda, SQS and DynamoDB
	// (and S3, the store's overflow); the functions' logs are shown
	// beside it, not in it.
	logs := bill.Service(awscost.ServiceLogs)
	row("$/M msgs", bill.Total()-logs, "$", target(report.AtMost(costUSDTarget)), totalNote+" (logs not in the target's total)")
	row("$/M msgs with logs", bill.Total(), "$", nil, "")
	apiMS := func() {
		row("api ms/invocation", ms(mean(m.timed.api)), "ms", nil,
			fmt.Sprintf("mean of %d (%s a msg), max %.1f ms; in process against moto on loopback",
				len(m.timed.api), awscost.Num(q.APIRequests), ms(slices.Max(m.timed.api))))
	}
	if !targets {
		apiMS()
		return
	}

	row("$/M API Gateway", bill.Service(awscost.ServiceAPIGateway), "$", nil,
		fmt.Sprintf("%s HTTP API requests/msg", awscost.Num(q.APIRequests)))
	row("$/M Lambda", bill.Service(awscost.ServiceLambda), "$", nil,
		fmt.Sprintf("%s invocations, %.5f GB-s per msg (api %d MB, deliver %d MB, arm64; measured durations)",
			awscost.Num(q.LambdaInvocations), q.LambdaGBSeconds, spec.apiMB, spec.deliverMB))
	row("$/M SQS", bill.Service(awscost.ServiceSQS), "$", nil,
		fmt.Sprintf("%s requests/msg", awscost.Num(q.SQSRequests)))
	row("$/M DynamoDB", bill.Service(awscost.ServiceDynamoDB), "$", nil,
		fmt.Sprintf("%s WRU + %s RRU per msg, on-demand", awscost.Num(q.WriteUnits), awscost.Num(q.ReadUnits)))
	if v := bill.Service(awscost.ServiceS3); v > 0 {
		row("$/M S3", v, "$", nil, fmt.Sprintf("%s tier-1 + %s tier-2 requests/msg", awscost.Num(q.S3Tier1), awscost.Num(q.S3Tier2)))
	}
	row("$/M CloudWatch Logs", bill.Service(awscost.ServiceLogs), "$", nil,
		fmt.Sprintf("%.0f bytes/msg of the functions' log and EMF lines at info level (Lambda's own START/END/REPORT lines not counted)", q.LogBytes))

	apiMS()
	if len(m.timed.deliver) > 0 {
		recs := m.usage.SQSMessagesSent / float64(len(m.counted.deliver))
		row("deliver ms/invocation", ms(mean(m.timed.deliver)), "ms", nil,
			fmt.Sprintf("mean of %d batches of %s records, max %.1f ms", len(m.timed.deliver), awscost.Num(recs), ms(slices.Max(m.timed.deliver))))
		// The batches here are as full as the batch size allows; at one
		// record per invocation each queued copy costs its own
		// invocation, receive and delete.
		sent := u.SQSMessagesSent
		quiet := q
		quiet.LambdaInvocations = q.APIRequests + sent
		quiet.LambdaGBSeconds = q.LambdaGBSeconds + (sent-float64(len(m.counted.deliver))*per)*awscost.GBSeconds(spec.deliverMB, mean(m.timed.deliver))
		poller := m.byActor[actorPoller].Scale(per)
		quiet.SQSRequests = q.SQSRequests - poller.SQSRequests + 2*sent
		r.rep.Note("cost: %s at one record per deliver invocation (a quiet queue) instead of batches of %d: %.3f $/M instead of %.3f (a one-record invocation taken to last as long as a batch: an upper bound)",
			m.name, spec.batchSize, awscost.Estimate(quiet).Total(), bill.Total())
	}
}

// costNotes states the prices and the assumptions behind the figures.
func (r *run) costNotes(spec stackSpec) {
	prices := make([]string, len(awscost.Prices))
	for i, p := range awscost.Prices {
		prices[i] = p.String()
	}
	r.rep.Note("cost: prices (%s): %s", awscost.PricesRead, strings.Join(prices, "; "))
	r.rep.Note("cost: per message, from the POST until the message is delivered (push: webhook answered; pull: in the inbox) and the delivery queue is empty again; agent registration and set-up not counted; 'pull read' is the recipient listing its inbox one message at a time and acknowledging each")
	r.rep.Note("cost: Lambda durations are measured with the handlers in this process against moto on loopback, in a pass without the counter; in AWS each DynamoDB/SQS round trip and a real webhook's answer time add billed duration, and cold starts (init is billed) are not included")
	r.rep.Note("cost: the deliver function's SQS event source mapping is played by the bench: batches of up to %d records (the stack's BatchSize), received once every queued copy is visible (steady load), records deleted after the invocation; its empty long polls while idle (about 5 pollers × 3 receives a minute) are a fixed monthly cost, not per message", spec.batchSize)
	r.rep.Note("cost: DynamoDB units are computed from the requests by DynamoDB's rules (1 KB per write unit, ×2 in transactions; 4 KB per read unit, ½ eventually consistent; the larger of the item before and after; index entries 1 KB per unit, not doubled); a failed conditional write is billed on the existing item")
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t / time.Duration(len(ds))
}

// awsScenario is what the AWS scenarios (cost, heat) run on: moto with the
// stack's resources, the stack's settings, a webhook on loopback and a
// gateway on the AWS adapters whose calls the counter meters.
type awsScenario struct {
	spec    stackSpec
	counter *awscost.Counter
	hook    *webhook
	cg      *costGateway
}

// startAWSScenario starts moto (or finds it), creates the resources and
// starts the webhook and the metered gateway.
func (r *run) startAWSScenario(ctx context.Context, name string) (*awsScenario, error) {
	dir, err := r.scenarioDir(name)
	if err != nil {
		return nil, err
	}
	spec, err := readStackSpec()
	if err != nil {
		return nil, err
	}
	var (
		awsCfg aws.Config
		names  awsres.Names
		ep     awsres.Endpoints
	)
	r.logf("%s: starting moto and creating the stack's resources…", name)
	if err := withAWS(func(t awstest.TB) {
		names, ep = awstest.Resources(t)
		awsCfg = awstest.Config(t)
	}); err != nil {
		return nil, err
	}
	// The stack's table is new: no idempotency record of the layout before
	// records were spread can be in it, and telling it so measures the
	// steady state (a table that changed layout reads the old place too
	// for a week; docs/dynamodb.md).
	if err := dynamo.MarkTableNew(ctx, dynamodb.NewFromConfig(awsCfg), names.Table); err != nil {
		return nil, err
	}
	counter := awscost.New(awsCfg)
	hook, err := startWebhook()
	if err != nil {
		return nil, err
	}
	cg, err := startCostGateway(ctx, dir, r.dns.Addr(), awsCfg, counter, names, ep)
	if err != nil {
		return nil, errors.Join(err, hook.Close())
	}
	return &awsScenario{spec: spec, counter: counter, hook: hook, cg: cg}, nil
}

// Close stops the gateway, then the webhook.
func (e *awsScenario) Close() error { return errors.Join(e.cg.Close(), e.hook.Close()) }
