package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/kit/bench/load"
	"github.com/agentry/agentry/internal/kit/bench/report"
	"github.com/agentry/agentry/internal/kit/lambdatest"
)

// Targets (issue 20: the earlier 15 MB bound on a bootstrap is retired;
// it cost hand-written replacements of the SDK for an init of 4–9 ms).
const (
	lambdaSizeTargetMB      = 50  // each bootstrap as deployed (linux/arm64, stripped)
	lambdaInitTargetMS      = 50  // process start to the first poll of the Runtime API
	lambdaFirstPostTargetMS = 100 // the api's first request after init, against moto
)

// How much the lambda scenario measures; its test makes both tiny.
var (
	lambdaInitRuns    = 5   // process starts per function
	lambdaInvocations = 200 // warm api invocations of each kind
)

// lambdaFunctions are the functions `make lambdas` builds (LAMBDAS in
// mk/infra.mk).
var lambdaFunctions = []string{"api", "deliver", "deadletter"}

// lambdaBuildFlags are the flags of the lambdas target of mk/infra.mk
// (its test keeps the two in step): what is measured is what deploys.
var lambdaBuildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w"}

// lambda measures the Lambda functions: the size of each bootstrap as
// `make lambdas` builds it, the init time of each under our Runtime API
// harness (internal/kit/lambdatest) with the environment a deployed function
// has (resources created in moto from the synthesized template), and the
// api function's latency per warm invocation.
//
// Sizes are of the linux/arm64 build that deploys; the processes run are
// the same build for this machine's architecture (identical to it on a
// linux/arm64 machine). Against moto on loopback the AWS calls cost what
// a Python emulator costs, not what DynamoDB and SQS cost: the warm
// figures are also given without the time in AWS calls.
func (r *run) lambda(ctx context.Context) error {
	if runtime.GOOS != "linux" {
		return errors.New("the lambda scenario runs linux bootstraps, so it runs on Linux only")
	}
	root := awstest.RepoRoot()
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("the functions' source is not at %s (is this binary built with -trimpath?): %w", root, err)
	}
	dir, err := r.scenarioDir(Lambda)
	if err != nil {
		return err
	}
	r.rep.Settings["lambda_init_runs"] = strconv.Itoa(lambdaInitRuns)
	r.rep.Settings["lambda_invocations"] = strconv.Itoa(lambdaInvocations)

	deployDir := filepath.Join(dir, "linux-arm64")
	r.logf("lambda: building %s for linux/arm64 as `make lambdas` does (a minute or two on a cold cache)", strings.Join(lambdaFunctions, ", "))
	t0 := time.Now()
	if err := buildLambdas(ctx, root, deployDir, "arm64"); err != nil {
		return err
	}
	r.logf("lambda: built in %v", time.Since(t0).Round(100*time.Millisecond))
	for _, fn := range lambdaFunctions {
		fi, err := os.Stat(filepath.Join(deployDir, fn))
		if err != nil {
			return fmt.Errorf("built %s: %w", fn, err)
		}
		r.rep.Add(report.Row{Section: Lambda, Name: fn + " size", Value: float64(fi.Size()) / (1 << 20), Unit: "MB",
			Target: report.AtMost(lambdaSizeTargetMB), Note: fmt.Sprintf("%d bytes, linux/arm64 stripped", fi.Size())})
	}
	runDir := deployDir
	if runtime.GOARCH != "arm64" {
		runDir = filepath.Join(dir, "linux-"+runtime.GOARCH)
		r.logf("lambda: building them again for linux/%s, to run them here", runtime.GOARCH)
		t0 = time.Now()
		if err := buildLambdas(ctx, root, runDir, runtime.GOARCH); err != nil {
			return err
		}
		r.logf("lambda: built in %v", time.Since(t0).Round(100*time.Millisecond))
	}

	r.logf("lambda: starting moto and creating the stack's resources in it")
	be, err := newLambdaBackend(ctx, dir, r.dns.Addr())
	if err != nil {
		return err
	}
	defer be.close()

	for _, fn := range lambdaFunctions {
		if err := r.lambdaInit(ctx, be, filepath.Join(runDir, fn), fn); err != nil {
			return err
		}
	}
	return r.lambdaWarm(ctx, be, filepath.Join(runDir, "api"))
}

// buildLambdas builds every function into dir/<name> for linux/goarch.
func buildLambdas(ctx context.Context, root, dir, goarch string) error {
	args := append([]string{"build"}, lambdaBuildFlags...)
	// One go build for the three: they share nearly every package.
	args = append(args, "-o", dir+string(filepath.Separator))
	for _, fn := range lambdaFunctions {
		args = append(args, "./functions/"+fn)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s (GOARCH=%s): %w\n%s", strings.Join(args, " "), goarch, err, truncate(string(out), 4000))
	}
	return nil
}

// lambdaBackend is what a deployed function talks to, in moto: the
// stack's table, queues, bucket and state machine, and the admin key's
// secret.
type lambdaBackend struct {
	dir      string
	env      []string // AWS variables, endpoint excepted
	moto     string   // the emulator's URL
	counter  *awsCallCounter
	xray     *net.UDPConn
	adminKey string
	fnEnv    map[string][]string // AGENTRY_* variables of each function
}

func newLambdaBackend(ctx context.Context, dir, dnsAddr string) (*lambdaBackend, error) {
	be := &lambdaBackend{dir: dir, adminKey: randomKey("bench-admin-")}
	var (
		cfg    aws.Config
		awsEnv []string
	)
	var names struct{ prefix, table, bucket string }
	var queue, dlq, machine string
	err := withAWS(func(t awstest.TB) {
		n, ep := awstest.Resources(t)
		names.prefix, names.table, names.bucket = n.Prefix, n.Table, n.Bucket
		queue, dlq, machine = ep.DeliveryQueueURL, ep.DeadLetterURL, ep.StateMachineARN
		cfg = awstest.Config(t)
		awsEnv = awstest.Env(t)
		be.moto = awstest.Endpoint(t)
	})
	if err != nil {
		return nil, fmt.Errorf("moto: %w", err)
	}
	for _, kv := range awsEnv {
		if !strings.HasPrefix(kv, "AWS_ENDPOINT_URL=") {
			be.env = append(be.env, kv)
		}
	}
	// The stack gives the api function the admin key as a secret's ARN:
	// the function builds its Secrets Manager client at init and reads
	// the secret on the first admin call.
	sm := secretsmanager.NewFromConfig(cfg)
	out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(names.prefix + "-admin-key"), SecretString: aws.String(be.adminKey)})
	if err != nil {
		return nil, fmt.Errorf("create the admin key secret in moto: %w", err)
	}
	common := []string{
		"AGENTRY_DOMAIN=example.com", "AGENTRY_RESOURCE_PREFIX=" + names.prefix, "AGENTRY_TABLE=" + names.table,
		"AGENTRY_QUEUE_URL=" + queue, "AGENTRY_DLQ_URL=" + dlq, "AGENTRY_BUCKET=" + names.bucket,
		"AGENTRY_PUBLIC_URL=https://amtp.example.com", "AGENTRY_LOG_LEVEL=info",
		"AGENTRY_STATE_MACHINE_ARN=" + machine,
		// Not in a deployed function's environment: where the bench's
		// loopback DNS server is (the api resolves nothing in what is
		// measured; this keeps a stray lookup off the real network).
		"AGENTRY_DNS_SERVER=" + dnsAddr,
	}
	be.fnEnv = map[string][]string{
		"api": append(slices.Clone(common), "AGENTRY_ADMIN_KEY_SECRET_ARN="+aws.ToString(out.ARN), "AGENTRY_POLICY=",
			"AGENTRY_OAUTH_ISSUER=", "AGENTRY_OAUTH_AUDIENCE=", "AGENTRY_REQUIRE_PEER_MTLS=0"),
		// Read on the first forward to another domain, which the bench
		// never makes: the secret need not exist.
		"deliver":    append(slices.Clone(common), "AGENTRY_SIGNING_KEY_SECRET_ARN=arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-signing-key"),
		"deadletter": common,
	}
	// Deployed functions have active tracing: Lambda then tells them the
	// X-Ray daemon's address, and the X-Ray instrumentation is set up at
	// init. Our daemon swallows what it is sent.
	be.xray, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		be.close()
		return nil, fmt.Errorf("x-ray daemon stand-in: %w", err)
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, _, err := be.xray.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	if be.counter, err = startAWSCallCounter(be.moto); err != nil {
		be.close()
		return nil, err
	}
	return be, nil
}

// environ is the whole environment of function fn's process (besides the
// Runtime API's variables), its AWS calls going to endpoint.
func (be *lambdaBackend) environ(fn, endpoint string) []string {
	env := []string{
		// Lambda's own PATH; HOME is an empty directory so that no
		// ~/.aws of this machine is read.
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin", "HOME=" + be.dir, "LANG=en_US.UTF-8", "TZ=:UTC",
		"AWS_ENDPOINT_URL=" + endpoint, "AWS_XRAY_DAEMON_ADDRESS=" + be.xray.LocalAddr().String(),
		"AWS_XRAY_CONTEXT_MISSING=LOG_ERROR", "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/bench-" + fn,
	}
	env = append(env, be.env...)
	return append(env, be.fnEnv[fn]...)
}

func (be *lambdaBackend) close() {
	if be.counter != nil {
		_ = be.counter.srv.Close()
	}
	if be.xray != nil {
		_ = be.xray.Close()
	}
}

// awsCallCounter is a reverse proxy in front of moto that counts the
// calls going through it and times them: the init runs point the
// functions at it to learn whether their init talks to AWS, the warm runs
// to tell the function's own time from the emulator's.
type awsCallCounter struct {
	srv   *http.Server
	url   string
	n     atomic.Int64
	mu    sync.Mutex
	calls []string // the first few, to name them in a note
	spans []span   // every call's time in the proxy, in the order they ended
}

type span struct{ from, to time.Time }

func startAWSCallCounter(moto string) (*awsCallCounter, error) {
	target, err := url.Parse(moto)
	if err != nil {
		return nil, fmt.Errorf("moto endpoint %q: %w", moto, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("aws call counter: %w", err)
	}
	c := &awsCallCounter{url: "http://" + l.Addr().String()}
	proxy := httputil.NewSingleHostReverseProxy(target)
	c.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		c.n.Add(1)
		what := q.Header.Get("X-Amz-Target")
		if what == "" {
			what = q.Method + " " + q.URL.Path
		}
		c.mu.Lock()
		if len(c.calls) < 5 {
			c.calls = append(c.calls, what)
		}
		c.mu.Unlock()
		from := time.Now()
		proxy.ServeHTTP(w, q)
		to := time.Now()
		c.mu.Lock()
		c.spans = append(c.spans, span{from, to})
		c.mu.Unlock()
	})}
	go func() { _ = c.srv.Serve(l) }()
	return c, nil
}

// mark is where the calls that end from now on will start in spans.
func (c *awsCallCounter) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spans)
}

// since returns how many calls ended since mark and the time during which
// at least one of them was in progress (calls made in parallel count
// once).
func (c *awsCallCounter) since(mark int) (int, time.Duration) {
	c.mu.Lock()
	spans := slices.Clone(c.spans[mark:])
	c.mu.Unlock()
	slices.SortFunc(spans, func(a, b span) int { return a.from.Compare(b.from) })
	var busy time.Duration
	var end time.Time
	for _, s := range spans {
		if s.from.After(end) {
			busy += s.to.Sub(s.from)
			end = s.to
		} else if s.to.After(end) {
			busy += s.to.Sub(end)
			end = s.to
		}
	}
	return len(spans), busy
}

func (c *awsCallCounter) named() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.calls, ", ")
}

// lambdaProcess is one bootstrap process under its own Runtime API.
type lambdaProcess struct {
	name   string
	rt     *lambdatest.Runtime
	cmd    *exec.Cmd
	out    *tail
	exited chan error
	init   time.Duration // process start to its first poll
}

// startLambda starts bin as function fn and waits for its first poll.
func startLambda(ctx context.Context, bin, fn string, env []string) (*lambdaProcess, error) {
	rt, err := lambdatest.Start()
	if err != nil {
		return nil, err
	}
	p := &lambdaProcess{name: fn, rt: rt, out: &tail{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(rt.Env(fn), env...)
	// Lambda sends the function's output to CloudWatch Logs; writing it
	// to a pipe that we read is the nearest equivalent.
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		_ = rt.Close()
		return nil, fmt.Errorf("start %s: %w", fn, err)
	}
	pid := p.cmd.Process.Pid
	liveChildren.Store(pid, struct{}{})
	go func() {
		err := p.cmd.Wait()
		liveChildren.Delete(pid)
		p.exited <- err
		cancel() // an init that dies must not be waited for
	}()
	first, err := rt.FirstNext(waitCtx)
	if err != nil {
		select {
		case werr := <-p.exited:
			err = fmt.Errorf("exited during init (%v)", werr) //nolint:errorlint // werr is nil when it exited 0
		default:
		}
		p.stop()
		return nil, fmt.Errorf("%s never polled the Runtime API: %w; its output: %s", fn, err, truncate(p.out.String(), 2000))
	}
	p.init = first.Sub(start)
	return p, nil
}

func (p *lambdaProcess) stop() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.exited: //nolint:errcheck // killed on purpose: its exit status says nothing
	case <-time.After(10 * time.Second):
	}
	_ = p.rt.Close()
}

// invoke hands the function one event and returns its answer and the
// time from handing it over to the answer.
func (p *lambdaProcess) invoke(ctx context.Context, payload []byte) (lambdatest.Result, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	t0 := time.Now()
	res, err := p.rt.Invoke(ctx, payload)
	d := time.Since(t0)
	if err != nil {
		return res, d, fmt.Errorf("%s: %w; its output: %s", p.name, err, truncate(p.out.String(), 2000))
	}
	if res.Err {
		return res, d, fmt.Errorf("%s reported an error: %s", p.name, truncate(string(res.Payload), 500))
	}
	return res, d, nil
}

// lambdaInit starts function fn lambdaInitRuns times and reports the
// median time from process start to its first poll of the Runtime API,
// and whether the init called AWS.
func (r *run) lambdaInit(ctx context.Context, be *lambdaBackend, bin, fn string) error {
	var times []time.Duration
	calls := int64(0)
	for range lambdaInitRuns {
		before := be.counter.n.Load()
		p, err := startLambda(ctx, bin, fn, be.environ(fn, be.counter.url))
		if err != nil {
			return err
		}
		calls += be.counter.n.Load() - before
		p.stop()
		times = append(times, p.init)
	}
	slices.Sort(times)
	median := times[len(times)/2]
	if len(times)%2 == 0 {
		median = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	note := fmt.Sprintf("median of %d, min %.1f, max %.1f ms; no AWS call", len(times), ms(times[0]), ms(times[len(times)-1]))
	if calls > 0 {
		note = fmt.Sprintf("median of %d, min %.1f, max %.1f ms; init CALLS AWS: %d calls in %d inits (%s)",
			len(times), ms(times[0]), ms(times[len(times)-1]), calls, len(times), be.counter.named())
	}
	r.rep.Add(report.Row{Section: Lambda, Name: fn + " init", Value: ms(median), Unit: "ms", Target: report.AtMost(lambdaInitTargetMS), Note: note})
	r.logf("lambda: %s init %v … %v", fn, times[0].Round(time.Millisecond/10), times[len(times)-1].Round(time.Millisecond/10))
	return nil
}

// lambdaWarm drives the api function with API Gateway v2 events: a
// sender agent posting messages to a pull agent of the same domain (the
// message is stored and in the recipient's inbox when the 202 is
// answered), then GET /.well-known/amtp, which makes no AWS call.
//
// Its AWS calls go through the counting proxy, which times them: moto
// answers as a Python emulator does (and, for some access patterns, more
// slowly as the table fills), so the total says more about moto than
// about us; the time outside AWS calls is the function's own. The
// proxy's hop (well under a millisecond per call on loopback) is in the
// total and in the AWS time.
func (r *run) lambdaWarm(ctx context.Context, be *lambdaBackend, bin string) error {
	env := be.environ("api", be.counter.url)
	ev, err := loadAPIEvent()
	if err != nil {
		return err
	}
	// Agents are registered by another instance, so that the measured one
	// meets them, and the admin secret, first in its first request.
	setup, err := startLambda(ctx, bin, "api", env)
	if err != nil {
		return err
	}
	alice, err := registerLambda(ctx, setup, ev, be.adminKey, "alice")
	if err == nil {
		_, err = registerLambda(ctx, setup, ev, be.adminKey, "bob")
	}
	setup.stop()
	if err != nil {
		return err
	}

	p, err := startLambda(ctx, bin, "api", env)
	if err != nil {
		return err
	}
	defer p.stop()
	msgs := newMessages("alice@example.com", "bob@example.com", r.o.PayloadBytes)
	seq := 0
	postOnce := func() (invocation, error) {
		seq++
		_, body := msgs.Make(seq)
		mark := be.counter.mark()
		status, answer, d, err := apiInvoke(ctx, p, ev, seq, "POST", "/v1/messages", alice, string(body))
		if err == nil && status != http.StatusAccepted {
			err = fmt.Errorf("POST /v1/messages: HTTP %d %s", status, truncate(answer, 300))
		}
		calls, inAWS := be.counter.since(mark)
		return invocation{total: d, aws: inAWS, calls: calls}, err
	}
	first, err := postOnce()
	if err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	r.rep.Add(report.Row{Section: Lambda, Name: "api first POST", Value: ms(first.total), Unit: "ms", Target: report.AtMost(lambdaFirstPostTargetMS),
		Note: fmt.Sprintf("the instance's first request after init, invoke to response; %.1f ms of it outside %d AWS calls", ms(first.total-first.aws), first.calls)})

	// A few uncounted ones, so that what follows is warm.
	if _, err := lambdaSeries(max(lambdaInvocations/20, 1), postOnce); err != nil {
		return err
	}
	res, err := lambdaSeries(lambdaInvocations, postOnce)
	if err != nil {
		return err
	}
	r.addWarm("POST /v1/messages", res, "alice → bob (pull)")
	res, err = lambdaSeries(lambdaInvocations, func() (invocation, error) {
		seq++
		mark := be.counter.mark()
		status, answer, d, err := apiInvoke(ctx, p, ev, seq, "GET", "/.well-known/amtp", "", "")
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("GET /.well-known/amtp: HTTP %d %s", status, truncate(answer, 300))
		}
		calls, inAWS := be.counter.since(mark)
		return invocation{total: d, aws: inAWS, calls: calls}, err
	})
	if err != nil {
		return err
	}
	r.addWarm("GET /.well-known/amtp", res, "")
	return nil
}

// invocation is one warm call's timing as the Runtime API saw it.
type invocation struct {
	total time.Duration // event handed over to answer received
	aws   time.Duration // of which AWS calls were in progress
	calls int
}

// series is the latencies of invocations made one after the other.
type series struct {
	n, errors  int
	firstError string
	total, own load.Histogram // own: total less the time in AWS calls
	calls      int
}

// lambdaSeries makes n calls one after the other (an instance handles one
// invocation at a time).
func lambdaSeries(n int, call func() (invocation, error)) (*series, error) {
	s := &series{}
	for range n {
		inv, err := call()
		s.n++
		if err != nil {
			s.errors++
			if s.firstError == "" {
				s.firstError = err.Error()
			}
			continue
		}
		s.total.Record(inv.total)
		s.own.Record(inv.total - inv.aws)
		s.calls += inv.calls
	}
	if s.n > 0 && s.errors == s.n {
		return s, fmt.Errorf("every one of %d invocations failed; first error: %s", s.n, s.firstError)
	}
	return s, nil
}

// addWarm reports a series: invoke-to-response p50 and p99, and, when
// the requests call AWS, the same without the time in those calls.
func (r *run) addWarm(what string, s *series, note string) {
	ok := s.n - s.errors
	counts := fmt.Sprintf("%d invocations, %d errors", s.n, s.errors)
	if s.errors > 0 {
		counts += " (first: " + truncate(s.firstError, 120) + ")"
	}
	perCall := float64(s.calls) / float64(max(ok, 1))
	name := "api " + what
	r.rep.Add(report.Row{Section: Lambda, Name: name + " p50", Value: ms(s.total.Quantile(0.5)), Unit: "ms",
		Note: strings.TrimPrefix(fmt.Sprintf("%s; invoke to response; %s; %.1f AWS calls each", note, counts, perCall), "; ")})
	r.rep.Add(report.Row{Section: Lambda, Name: name + " p99", Value: ms(s.total.Quantile(0.99)), Unit: "ms",
		Note: fmt.Sprintf("max %.1f ms", ms(s.total.Max()))})
	if s.calls > 0 {
		r.rep.Add(report.Row{Section: Lambda, Name: name + " own p50", Value: ms(s.own.Quantile(0.5)), Unit: "ms",
			Note: "invoke to response less the time in AWS calls (moto)"})
		r.rep.Add(report.Row{Section: Lambda, Name: name + " own p99", Value: ms(s.own.Quantile(0.99)), Unit: "ms",
			Note: fmt.Sprintf("max %.1f ms", ms(s.own.Max()))})
	}
	r.logf("lambda: api %s: p50 %v, p99 %v (own p50 %v, p99 %v), %s", what, s.total.Quantile(0.5), s.total.Quantile(0.99),
		s.own.Quantile(0.5), s.own.Quantile(0.99), counts)
}

// loadAPIEvent reads the sample API Gateway v2 event that `sam local
// invoke` sends.
func loadAPIEvent() (events.APIGatewayV2HTTPRequest, error) {
	var ev events.APIGatewayV2HTTPRequest
	path := filepath.Join(awstest.RepoRoot(), "events", "api-post-message.json")
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &ev)
	}
	if err != nil {
		return ev, fmt.Errorf("sample event %s: %w", path, err)
	}
	return ev, nil
}

// apiInvoke sends one request to the api function as API Gateway would
// and returns the status and body of its answer.
func apiInvoke(ctx context.Context, p *lambdaProcess, ev events.APIGatewayV2HTTPRequest, seq int, method, path, key, body string) (int, string, time.Duration, error) {
	// A copy: one event's headers must not leak into the next.
	ev.Headers = maps.Clone(ev.Headers)
	ev.RawPath, ev.RequestContext.HTTP.Path, ev.RequestContext.HTTP.Method, ev.Body = path, path, method, body
	ev.RequestContext.RequestID = fmt.Sprintf("bench-%d", seq)
	now := time.Now()
	ev.RequestContext.TimeEpoch = now.UnixMilli()
	ev.RequestContext.Time = now.UTC().Format("02/Jan/2006:15:04:05 -0700")
	if key != "" {
		ev.Headers["authorization"] = "Bearer " + key
	}
	if body == "" {
		delete(ev.Headers, "content-type")
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return 0, "", 0, err
	}
	res, d, err := p.invoke(ctx, payload)
	if err != nil {
		return 0, "", d, err
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(res.Payload, &resp); err != nil {
		return 0, "", d, fmt.Errorf("api answer is not an API Gateway v2 response: %w: %s", err, truncate(string(res.Payload), 300))
	}
	return resp.StatusCode, resp.Body, d, nil
}

// registerLambda registers a pull agent through the api function and
// returns its key.
func registerLambda(ctx context.Context, p *lambdaProcess, ev events.APIGatewayV2HTTPRequest, adminKey, name string) (string, error) {
	body := fmt.Sprintf(`{"address":%q,"delivery_mode":"pull"}`, name)
	status, answer, _, err := apiInvoke(ctx, p, ev, 0, "POST", "/v1/admin/agents", adminKey, body)
	if err != nil {
		return "", fmt.Errorf("register %s: %w", name, err)
	}
	var out struct {
		APIKey string `json:"api_key"`
	}
	_ = json.Unmarshal([]byte(answer), &out)
	if status != http.StatusCreated || out.APIKey == "" {
		return "", fmt.Errorf("register %s: HTTP %d %s", name, status, truncate(answer, 300))
	}
	return out.APIKey, nil
}
