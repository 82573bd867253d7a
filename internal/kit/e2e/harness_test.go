// Package e2e runs real gateways on loopback against a real DNS server and
// real HTTP agents, and checks what users of the gateway would check.
package e2e

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/core/signature"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/runtime/awsgw"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/runtime/localgw"
)

const adminKey = "test-admin-key-0123456789"

// gw is one running local gateway.
type gw struct {
	t      *testing.T
	domain string
	url    string
	cancel context.CancelFunc
	done   chan error
	signer *signature.Signer // signs with the gateway's own key, published in DNS
	key    crypto.Signer     // that key, to sign under other selectors in tests
	// machine is the coordination state machine's ARN when the gateway
	// runs on the AWS adapters, "" otherwise.
	machine string
	// lambda is the api function's handler of API Gateway events when the
	// gateway runs on the AWS adapters, nil otherwise.
	lambda apiEventHandler
	// local and aws are the gateway itself, for what only the runtime
	// offers (the email bridge's inbound side); one of them is nil.
	local *localgw.Gateway
	aws   *awsgw.Gateway
}

type gwOpts struct {
	listener net.Listener // reuse a reserved port
	dataDir  string
	secure   bool // production settings: no http:// or private targets
	aws      bool // run on the AWS adapters (DynamoDB, SQS, S3 in moto)
	tls      bool // serve HTTPS (env gives AGENTRY_TLS_CERT/KEY)
	env      map[string]string
	// On the AWS adapters only (chaos tests): awsConfig adjusts the SDK
	// configuration (endpoint, test middleware) before the gateway is
	// built, awsOptions go to awsgw.New, and awsDeliver, when set, consumes
	// the delivery queue instead of the poller (Worker.Run).
	awsConfig  func(*aws.Config)
	awsOptions []awsgw.Option
	awsDeliver func(context.Context, *awsgw.Gateway)
}

// publishKey makes a signing key for domain, publishes its record at
// k1._amtpkey.<domain> (k1 is the gateway's default selector) and returns the PEM to configure the gateway
// with (AGENTRY_SIGNING_KEY) and a signer for crafting messages in tests.
func publishKey(t *testing.T, dns *dnstest.Server, domain string) (string, *signature.Signer) {
	t.Helper()
	pemData, s, _ := publishKeyPair(t, dns, domain)
	return pemData, s
}

// publishKeyPair is publishKey that also returns the private key.
func publishKeyPair(t *testing.T, dns *dnstest.Server, domain string) (string, *signature.Signer, crypto.Signer) {
	t.Helper()
	key, err := signature.GenerateKey(signature.ES256)
	require.NoError(t, err)
	pemData, err := signature.EncodePrivateKeyPEM(key)
	require.NoError(t, err)
	s, err := signature.NewSigner(domain, "k1", key)
	require.NoError(t, err)
	txt, err := signature.PublicKeyTXT(key.Public())
	require.NoError(t, err)
	dns.SetTXT("k1._amtpkey."+domain, 300, txt)
	return string(pemData), s, key
}

// startGateway starts a gateway for domain on a loopback port and
// publishes its _amtp record in dns.
func startGateway(t *testing.T, dns *dnstest.Server, domain string, o gwOpts) *gw {
	t.Helper()
	l := o.listener
	if l == nil {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
	}
	dir := o.dataDir
	if dir == "" {
		dir = t.TempDir()
	}
	base := "http://" + l.Addr().String()
	if o.tls {
		base = "https://" + l.Addr().String()
	}
	env := map[string]string{
		"AGENTRY_DOMAIN":         domain,
		"AGENTRY_ADDR":           l.Addr().String(),
		"AGENTRY_DATA_DIR":       dir,
		"AGENTRY_ADMIN_KEY":      adminKey,
		"AGENTRY_DNS_SERVER":     dns.Addr(),
		"AGENTRY_ALLOW_INSECURE": "1",
		"AGENTRY_PUBLIC_URL":     base,
		"AGENTRY_RETRY_BASE":     "100ms",
		"AGENTRY_RETRY_MAX":      "1s",
		"AGENTRY_LOG_LEVEL":      "warn",
	}
	if o.secure {
		env["AGENTRY_ALLOW_INSECURE"] = "0"
	}
	// Every test gateway signs with a key published in the test DNS, as a
	// real deployment must, so that receivers requiring signatures (the
	// default) accept its mail.
	pemKey, signer, key := publishKeyPair(t, dns, domain)
	env["AGENTRY_SIGNING_KEY"] = pemKey
	for k, v := range o.env {
		env[k] = v
	}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var machine string
	var lambda apiEventHandler
	var localG *localgw.Gateway
	var awsG *awsgw.Gateway
	if o.aws {
		names, ep := awstest.Resources(t)
		machine = ep.StateMachineARN
		cfg.Backend, cfg.ResourcePrefix, cfg.Table, cfg.Bucket = "aws", names.Prefix, names.Table, names.Bucket
		cfg.QueueURL, cfg.DLQURL = ep.DeliveryQueueURL, ep.DeadLetterURL
		// Workflows run on the coordination machine from the synthesized
		// template, executed by moto.
		cfg.StateMachineARN = ep.StateMachineARN
		awsCfg := awstest.Config(t)
		if o.awsConfig != nil {
			o.awsConfig(&awsCfg)
		}
		g, err := awsgw.New(ctx, cfg, awsCfg, log, o.awsOptions...)
		require.NoError(t, err)
		lambda = g.ServeAPIGateway
		awsG = g
		deliver := func(ctx context.Context) { _ = g.Worker.Run(ctx) }
		if o.awsDeliver != nil {
			deliver = func(ctx context.Context) { o.awsDeliver(ctx, g) }
		}
		go func() {
			done <- localgw.RunServer(ctx, g.Config, l, g.Handler, log, deliver, g.PollDeadLetters)
		}()
	} else {
		g, err := localgw.New(cfg, localgw.Options{Listener: l, Logger: log})
		require.NoError(t, err)
		// Bound before the test goes on, so that its addresses are known.
		require.NoError(t, g.Listen())
		localG = g
		go func() { done <- g.Serve(ctx) }()
	}
	dns.SetTXT("_amtp."+domain, 60, "v=amtp1;gateway="+base+";auth=apikey;max-size=10485760")
	x := &gw{t: t, domain: domain, url: base, cancel: cancel, done: done, signer: signer, key: key, machine: machine, lambda: lambda, local: localG, aws: awsG}
	t.Cleanup(x.stop)
	return x
}

func (x *gw) stop() {
	if x.cancel == nil {
		return
	}
	x.cancel()
	select {
	case err := <-x.done:
		if err != nil {
			x.t.Errorf("gateway %s stopped with %v", x.domain, err)
		}
	case <-time.After(40 * time.Second):
		x.t.Errorf("gateway %s did not stop", x.domain)
	}
	x.cancel = nil
}

// testWriter sends gateway logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// call does one API request and decodes the JSON answer.
func call(t *testing.T, method, url, key string, body any) (int, map[string]any) {
	t.Helper()
	status, raw := callRaw(t, method, url, key, body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), "answer is not a JSON object: %s", raw)
	}
	return status, out
}

func callRaw(t *testing.T, method, url, key string, body any) (int, []byte) {
	t.Helper()
	status, _, raw := do(t, clientFor(url), method, url, key, body)
	return status, raw
}

// do is one request with client: the status, headers and body of the answer.
func do(t *testing.T, client *http.Client, method, url, key string, body any) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := checked(client).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, raw
}

// clientFor is the test's HTTP client: for https, one trusting the test
// CA that TLS gateways' certificates come from (and presenting no client
// certificate, like an agent). Either checks every answer against
// docs/openapi.yaml (openapi_test.go).
func clientFor(url string) *http.Client {
	if strings.HasPrefix(url, "https://") {
		return checked(testPKI().client(nil))
	}
	return checked(http.DefaultClient)
}

// register registers an agent and returns its API key and webhook secret.
func (x *gw) register(name, mode, webhook string) (key, secret string) {
	x.t.Helper()
	body := map[string]any{"address": name, "delivery_mode": mode}
	if webhook != "" {
		body["webhook_url"] = webhook
	}
	status, out := call(x.t, "POST", x.url+"/v1/admin/agents", adminKey, body)
	require.Equal(x.t, http.StatusCreated, status, "register %s: %v", name, out)
	key, _ = out["api_key"].(string)
	require.NotEmpty(x.t, key)
	secret, _ = out["webhook_secret"].(string)
	return key, secret
}

// send posts a message as an agent.
func (x *gw) send(key string, msg map[string]any) (int, map[string]any) {
	x.t.Helper()
	return call(x.t, "POST", x.url+"/v1/messages", key, msg)
}

func (x *gw) status(key, id string) map[string]any {
	x.t.Helper()
	st, out := call(x.t, "GET", x.url+"/v1/messages/"+id+"/status", key, nil)
	require.Equal(x.t, http.StatusOK, st, "status: %v", out)
	return out
}

// recipientStatus returns the status object of one recipient.
func recipientStatus(t *testing.T, st map[string]any, addr string) map[string]any {
	t.Helper()
	list, _ := st["recipients"].([]any)
	for _, r := range list {
		m := r.(map[string]any)
		if strings.EqualFold(m["address"].(string), addr) {
			return m
		}
	}
	t.Fatalf("no recipient %s in %v", addr, st)
	return nil
}

// waitStatus polls until the recipient reaches want (or fails the test).
func (x *gw) waitStatus(key, id, addr, want string, within time.Duration) map[string]any {
	x.t.Helper()
	deadline := time.Now().Add(within)
	var last map[string]any
	for time.Now().Before(deadline) {
		st := x.status(key, id)
		last = recipientStatus(x.t, st, addr)
		if last["status"] == want {
			return last
		}
		time.Sleep(25 * time.Millisecond)
	}
	x.t.Fatalf("recipient %s of %s did not become %s within %s; last: %v", addr, id, want, within, last)
	return nil
}

// inbox lists an inbox.
func (x *gw) inbox(key, rcpt string) []map[string]any {
	x.t.Helper()
	st, out := call(x.t, "GET", x.url+"/v1/inbox/"+url.PathEscape(rcpt), key, nil)
	require.Equal(x.t, http.StatusOK, st, "inbox: %v", out)
	list, _ := out["messages"].([]any)
	res := make([]map[string]any, 0, len(list))
	for _, m := range list {
		res = append(res, m.(map[string]any))
	}
	return res
}

// waitInbox polls until the inbox holds at least n messages.
func (x *gw) waitInbox(key, rcpt string, n int, within time.Duration) []map[string]any {
	x.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := x.inbox(key, rcpt)
		if len(got) >= n || time.Now().After(deadline) {
			require.GreaterOrEqual(x.t, len(got), n, "inbox of %s", rcpt)
			return got
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// pushAgent is a real HTTP agent receiving webhooks.
type pushAgent struct {
	t       *testing.T
	srv     *httptest.Server
	secret  string
	mu      sync.Mutex
	got     []map[string]any
	bad     int      // deliveries with an invalid signature
	script  []int    // status codes to answer, in order; 200 after the script ends
	reply   any      // JSON reply body for 2xx answers, if any
	calls   int      //
	headers []string // webhook-id of each call
}

func newPushAgent(t *testing.T, script ...int) *pushAgent {
	a := &pushAgent{t: t, script: script}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *pushAgent) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	code := http.StatusOK
	if a.calls < len(a.script) {
		code = a.script[a.calls]
	}
	a.calls++
	a.headers = append(a.headers, r.Header.Get("webhook-id"))
	if code >= 200 && code < 300 {
		// Checked by a verifier written from the specification, not by
		// the gateway's own code (stdwebhook_test.go).
		if err := verifyStandardWebhook(a.secret, r.Header, body, time.Now()); err != nil {
			a.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			a.bad++
		} else {
			a.got = append(a.got, m)
		}
	}
	if a.reply != nil && code == http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(a.reply)
		return
	}
	w.WriteHeader(code)
}

func (a *pushAgent) received() []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]map[string]any(nil), a.got...)
}

func (a *pushAgent) stats() (calls, bad int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls, a.bad
}

func msg(from string, to []string, payload any) map[string]any {
	return map[string]any{"version": "1.0", "sender": from, "recipients": to, "subject": "test", "payload": payload}
}

func str(v any) string { return fmt.Sprint(v) }
