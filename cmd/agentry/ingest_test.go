package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/runtime/localgw"
)

// ingestSite is a local gateway for cli.test in a data dir the test keeps
// across starts, with a DNS server where mx.test has only mail exchangers.
type ingestSite struct {
	t   *testing.T
	dns *dnstest.Server
	dir string
	env map[string]string
}

func newIngestSite(t *testing.T, extra map[string]string) *ingestSite {
	s := &ingestSite{t: t, dns: dnstest.Start(t), dir: t.TempDir()}
	s.env = map[string]string{"AGENTRY_DOMAIN": "cli.test", "AGENTRY_DATA_DIR": s.dir, "AGENTRY_ADMIN_KEY": testAdmin,
		"AGENTRY_DNS_SERVER": s.dns.Addr(), "AGENTRY_ALLOW_INSECURE": "1", "AGENTRY_RETRY_BASE": "100ms", "AGENTRY_LOG_LEVEL": "error"}
	for k, v := range extra {
		s.env[k] = v
	}
	for k, v := range s.env {
		t.Setenv(k, v)
	}
	s.dns.SetMX("mx.test", 60, "mail.mx.test", 10)
	return s
}

// start runs the gateway until the returned stop is called.
func (s *ingestSite) start() (string, func()) {
	t := s.t
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg, err := config.FromEnv(func(k string) string { return s.env[k] })
	require.NoError(t, err)
	g, err := localgw.New(cfg, localgw.Options{Listener: l})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop")
		}
	}
	t.Cleanup(stop)
	return "http://" + l.Addr().String(), stop
}

func api(t *testing.T, method, url, key string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// bridgedWorkflow registers ann (pull) and has her start a workflow with
// bob@mx.test, bridged to the outbox; it returns the workflow id and the
// email's Message-ID.
func bridgedWorkflow(t *testing.T, url, dir string) (string, string) {
	t.Helper()
	st, reg := api(t, "POST", url+"/v1/admin/agents", testAdmin, map[string]any{"address": "ann", "delivery_mode": "pull"})
	require.Equal(t, http.StatusCreated, st, "%v", reg)
	st, out := api(t, "POST", url+"/v1/messages", testAdmin, map[string]any{"version": "1.0", "sender": "ann@cli.test",
		"recipients": []string{"bob@mx.test"}, "subject": "Approve?", "payload": map[string]any{"q": 1},
		"coordination": map[string]any{"type": "parallel", "timeout": 3600}})
	require.Equal(t, http.StatusAccepted, st, "%v", out)
	id, _ := out["message_id"].(string)
	var files []string
	require.Eventually(t, func() bool {
		files, _ = filepath.Glob(filepath.Join(dir, "outbox", "*.eml"))
		return len(files) == 1
	}, time.Minute, 20*time.Millisecond, "the bridged email in the outbox")
	raw, err := os.ReadFile(files[0])
	require.NoError(t, err)
	r, err := mail.CreateReader(bytes.NewReader(raw))
	require.NoError(t, err)
	mid, err := r.Header.MessageID()
	require.NoError(t, err)
	return id, mid
}

// reply is bob's DKIM-signed answer to the email mid.
func reply(t *testing.T, dns *dnstest.Server, mid, to string) []byte {
	t.Helper()
	raw := "From: Bob <bob@mx.test>\r\nTo: " + to + "\r\nSubject: Re: [AMTP] Approve?\r\nMessage-ID: <re-" + mid + ">\r\n" +
		"In-Reply-To: <" + mid + ">\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nApproved.\r\n"
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	dns.SetTXT("s1._domainkey.mx.test", 60, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	var signed bytes.Buffer
	require.NoError(t, msgdkim.Sign(&signed, strings.NewReader(raw), &msgdkim.SignOptions{Domain: "mx.test", Selector: "s1", Signer: priv}))
	return signed.Bytes()
}

func ingest(args []string, raw []byte) (int, string, string) {
	var out, errb bytes.Buffer
	code := ingestEmail(args, bytes.NewReader(raw), &out, &errb)
	return code, out.String(), errb.String()
}

// TestIngestEmailIntoStoppedGateway: with the gateway stopped,
// `agentry ingest-email` opens its data dir: bob's proven answer to the
// bridged workflow message completes the workflow.
func TestIngestEmailIntoStoppedGateway(t *testing.T) {
	s := newIngestSite(t, nil)
	url, stop := s.start()
	id, mid := bridgedWorkflow(t, url, s.dir)
	stop()

	code, out, errText := ingest(nil, reply(t, s.dns, mid, "ann@cli.test"))
	require.Equal(t, 0, code, "stderr: %s", errText)
	assert.Contains(t, out, "accepted reply")

	url, _ = s.start()
	st, wf := api(t, "GET", url+"/v1/workflows/"+id, testAdmin, nil)
	require.Equal(t, http.StatusOK, st, "%v", wf)
	assert.Equal(t, "completed", wf["status"])
}

// TestIngestEmailThroughListener: with AGENTRY_SMTP_LISTEN the running
// gateway takes the email over SMTP; a refusal exits 1 with the reason.
func TestIngestEmailThroughListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	s := newIngestSite(t, map[string]string{"AGENTRY_SMTP_LISTEN": addr})
	url, _ := s.start()
	id, mid := bridgedWorkflow(t, url, s.dir)

	code, out, errText := ingest(nil, reply(t, s.dns, mid, "ann@cli.test"))
	require.Equal(t, 0, code, "stderr: %s", errText)
	assert.Contains(t, out, "accepted by the gateway")
	require.Eventually(t, func() bool {
		_, wf := api(t, "GET", url+"/v1/workflows/"+id, testAdmin, nil)
		return wf["status"] == "completed"
	}, time.Minute, 20*time.Millisecond)

	code, _, errText = ingest([]string{"-to", "nobody@cli.test"}, reply(t, s.dns, mid, "nobody@cli.test"))
	assert.Equal(t, exitRefused, code)
	assert.Contains(t, errText, "refused")
}

// TestIngestEmailRefusals: what cannot be ingested exits with sendmail's
// codes and says why.
func TestIngestEmailRefusals(t *testing.T) {
	newIngestSite(t, nil)
	for _, tc := range []struct {
		name string
		args []string
		raw  string
		code int
		says string
	}{
		{"unknown agent", nil, "From: x@mx.test\r\nTo: nobody@cli.test\r\nSubject: hi\r\n\r\nhello\r\n", exitRefused, "AGENT_UNKNOWN"},
		{"not ours", nil, "From: x@mx.test\r\nTo: y@elsewhere.test\r\nSubject: hi\r\n\r\nhello\r\n", exitRefused, "no recipient at cli.test"},
		{"bad flag", []string{"-bogus"}, "", exitUsage, "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errText := ingest(tc.args, []byte(tc.raw))
			assert.Equal(t, tc.code, code)
			assert.Contains(t, errText, tc.says)
		})
	}
}
