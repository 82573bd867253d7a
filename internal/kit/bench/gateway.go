package bench

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// gateway is a local gateway in a child process (see startChild),
// composed by localgw exactly as `agentry serve` composes it.
type gateway struct {
	domain   string
	url      string
	adminKey string
	dataDir  string
	proc     *child
	logFile  *os.File
}

// gatewayEnv is the environment of a gateway for domain with its data in
// dir: only what every deployment sets (domain, address, data dir, admin
// key, DNS server, public URL); everything else is the default unless
// extra says otherwise.
func gatewayEnv(domain, addr, dir, adminKey, dnsAddr string, extra map[string]string) map[string]string {
	env := map[string]string{
		"AGENTRY_DOMAIN":     domain,
		"AGENTRY_ADDR":       addr,
		"AGENTRY_DATA_DIR":   dir,
		"AGENTRY_ADMIN_KEY":  adminKey,
		"AGENTRY_DNS_SERVER": dnsAddr,
		"AGENTRY_PUBLIC_URL": "http://" + addr,
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func randomKey(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// startGateway starts a gateway for domain with its store under dir
// (dir/data; its log, at the configured level, in dir/gateway.log) and
// waits until it is ready. With -pprof the child writes its CPU profile,
// for its whole life, to <name>.gateway.pprof there.
func (r *run) startGateway(name, dir, domain string, extra map[string]string) (*gateway, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	x := &gateway{domain: domain, adminKey: randomKey("bench-admin-"), dataDir: filepath.Join(dir, "data")}
	env := gatewayEnv(domain, "", x.dataDir, x.adminKey, r.dns.Addr(), extra)
	if r.o.ProfileDir != "" {
		if err := os.MkdirAll(r.o.ProfileDir, 0o755); err != nil {
			return nil, err
		}
		env[childProfileEnv] = filepath.Join(r.o.ProfileDir, name+".gateway.pprof")
	}
	delete(env, "AGENTRY_ADDR") // the child's listener decides both
	delete(env, "AGENTRY_PUBLIC_URL")
	// Logs go to a file, as `make run 2>file` would: formatting and
	// writing them is part of the cost, a terminal is not.
	var err error
	if x.logFile, err = os.Create(filepath.Join(dir, "gateway.log")); err != nil {
		return nil, err
	}
	if x.proc, err = startChild(childGateway, env, "", x.logFile); err != nil {
		_ = x.logFile.Close()
		return nil, fmt.Errorf("gateway %s: %w", domain, err)
	}
	x.url = x.proc.url
	return x, nil
}

// publish puts the gateway's _amtp record and signing key record in DNS.
func (x *gateway) publish(d *dnsServer) error {
	var records []txtRecord
	if err := x.proc.ask("records", &records); err != nil {
		return err
	}
	for _, r := range records {
		if err := d.SetTXT(r.Name, r.Text); err != nil {
			return err
		}
	}
	return nil
}

// commits reads the gateway's group-commit counters.
func (x *gateway) commits() (commitStats, error) {
	var st commitStats
	err := x.proc.ask("commits", &st)
	return st, err
}

func (x *gateway) stop() error {
	if x.proc == nil {
		return nil
	}
	err := x.proc.stop()
	x.proc = nil
	return errors.Join(err, x.logFile.Close())
}

// waitReady polls /readyz.
func waitReady(base string, within time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz: HTTP %d", resp.StatusCode)
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %v: %w", within, last)
}

// callJSON does one API call and decodes a JSON object answer.
func callJSON(method, url, key string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%s %s: answer is not JSON: %.200s", method, url, raw)
		}
	}
	return resp.StatusCode, out, nil
}

// register registers an agent through the admin API and returns its key.
func register(base, adminKey, name, mode, webhook string) (string, error) {
	body := map[string]any{"address": name, "delivery_mode": mode}
	if webhook != "" {
		body["webhook_url"] = webhook
	}
	status, out, err := callJSON("POST", base+"/v1/admin/agents", adminKey, body)
	if err != nil {
		return "", err
	}
	key, _ := out["api_key"].(string)
	if status != http.StatusCreated || key == "" {
		return "", fmt.Errorf("register %s: HTTP %d %v", name, status, out)
	}
	return key, nil
}

// messages makes unique AMTP messages from one sender to one recipient
// (or to several: also) with a payload of a fixed size.
type messages struct {
	sender     string
	recipients string // the JSON array's elements
	count      int
	filler     string
	random     bool // a fresh random filler per message (incompressible)
}

// payloadOverhead is the length of the payload around the filler:
// {"seq":"0000000000","text":""}.
const payloadOverhead = len(`{"seq":"0000000000","text":""}`)

func newMessages(sender, recipient string, payloadBytes int) *messages {
	const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
	n := max(payloadBytes-payloadOverhead, 0)
	return &messages{sender: sender, recipients: strconv.Quote(recipient), count: 1, filler: strings.Repeat(words, n/len(words)+1)[:n]}
}

// also adds recipients to every message made.
func (m *messages) also(recipients ...string) *messages {
	for _, r := range recipients {
		m.recipients += "," + strconv.Quote(r)
		m.count++
	}
	return m
}

// incompressible makes every message's filler fresh random bytes as
// base64, of the same length: nothing for a store to compress.
func (m *messages) incompressible() *messages {
	m.random = true
	return m
}

// fillerFor is the filler of one message.
func (m *messages) fillerFor() string {
	if !m.random {
		return m.filler
	}
	raw := make([]byte, base64.RawStdEncoding.DecodedLen(len(m.filler))+1)
	_, _ = rand.Read(raw)
	return base64.RawStdEncoding.EncodeToString(raw)[:len(m.filler)]
}

// PayloadBytes is the exact size of every payload made.
func (m *messages) PayloadBytes() int { return payloadOverhead + len(m.filler) }

// Make returns a new message: a fresh UUIDv7 message_id, a fresh UUIDv4
// idempotency_key, and seq in the payload.
func (m *messages) Make(seq int) (id string, body []byte) {
	id = amtp.NewUUIDv7()
	body = fmt.Appendf(make([]byte, 0, 320+len(m.filler)),
		`{"version":"1.0","message_id":%q,"idempotency_key":%q,"timestamp":%q,"sender":%q,"recipients":[%s],"subject":"bench","payload":{"seq":"%010d","text":%q}}`,
		id, amtp.NewUUIDv4(), amtp.FormatTime(time.Now()), m.sender, m.recipients, seq%10_000_000_000, m.fillerFor())
	return id, body
}

// post is the request submitting body with key.
func post(url, key string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	return req, nil
}
