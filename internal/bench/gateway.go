package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/amtp"
	"github.com/agentry/agentry/internal/config"
	"github.com/agentry/agentry/internal/localgw"
	"github.com/agentry/agentry/internal/signature"
)

// gateway is a local gateway running in this process, composed by
// localgw exactly as `agentry serve` composes it.
type gateway struct {
	domain   string
	url      string
	adminKey string
	dataDir  string
	g        *localgw.Gateway
	cancel   context.CancelFunc
	done     chan error
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
// waits until it is ready.
func startGateway(dir, domain, dnsAddr string, extra map[string]string) (*gateway, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	x := &gateway{domain: domain, url: "http://" + l.Addr().String(), adminKey: randomKey("bench-admin-"), dataDir: filepath.Join(dir, "data"), done: make(chan error, 1)}
	env := gatewayEnv(domain, l.Addr().String(), x.dataDir, x.adminKey, dnsAddr, extra)
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("gateway %s configuration: %w", domain, err)
	}
	// Logs go to a file, as `make run 2>file` would: formatting and
	// writing them is part of the cost, a terminal is not.
	x.logFile, err = os.Create(filepath.Join(dir, "gateway.log"))
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(x.logFile, &slog.HandlerOptions{Level: level}))
	x.g, err = localgw.New(cfg, localgw.Options{Listener: l, Logger: log})
	if err != nil {
		_ = l.Close()
		_ = x.logFile.Close()
		return nil, fmt.Errorf("gateway %s: %w", domain, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	go func() { x.done <- x.g.Serve(ctx) }()
	if err := waitReady(x.url, 15*time.Second); err != nil {
		_ = x.stop()
		return nil, fmt.Errorf("gateway %s: %w", domain, err)
	}
	return x, nil
}

// publish puts the gateway's _amtp record and signing key record in DNS.
func (x *gateway) publish(d *dnsServer) error {
	if err := d.SetTXT("_amtp."+x.domain, x.g.Service.TXTRecord()); err != nil {
		return err
	}
	s := x.g.Signer
	txt, err := signature.PublicKeyTXT(s.Public())
	if err != nil {
		return err
	}
	return d.SetTXT(s.Selector()+"._amtpkey."+s.Domain(), txt)
}

func (x *gateway) stop() error {
	if x.cancel == nil {
		return nil
	}
	x.cancel()
	x.cancel = nil
	var err error
	select {
	case err = <-x.done:
	case <-time.After(45 * time.Second):
		err = errors.New("gateway " + x.domain + " did not stop")
	}
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
	return fmt.Errorf("not ready within %v: %v", within, last)
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
// with a payload of a fixed size.
type messages struct {
	sender, recipient string
	filler            string
}

// payloadOverhead is the length of the payload around the filler:
// {"seq":"0000000000","text":""}.
const payloadOverhead = len(`{"seq":"0000000000","text":""}`)

func newMessages(sender, recipient string, payloadBytes int) *messages {
	const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
	n := max(payloadBytes-payloadOverhead, 0)
	return &messages{sender: sender, recipient: recipient, filler: strings.Repeat(words, n/len(words)+1)[:n]}
}

// PayloadBytes is the exact size of every payload made.
func (m *messages) PayloadBytes() int { return payloadOverhead + len(m.filler) }

// Make returns a new message: a fresh UUIDv7 message_id, a fresh UUIDv4
// idempotency_key, and seq in the payload.
func (m *messages) Make(seq int) (id string, body []byte) {
	id = amtp.NewUUIDv7()
	body = fmt.Appendf(make([]byte, 0, 320+len(m.filler)),
		`{"version":"1.0","message_id":%q,"idempotency_key":%q,"timestamp":%q,"sender":%q,"recipients":[%q],"subject":"bench","payload":{"seq":"%010d","text":%q}}`,
		id, amtp.NewUUIDv4(), amtp.FormatTime(time.Now()), m.sender, m.recipient, seq%10_000_000_000, m.filler)
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
