package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countMessages is how many messages the admin can list: a bad request
// must not change it.
func (x *gw) countMessages() int {
	x.t.Helper()
	st, out := call(x.t, "GET", x.url+"/v1/messages?limit=1000", adminKey, nil)
	require.Equal(x.t, http.StatusOK, st, "%v", out)
	return len(out["messages"].([]any))
}

func TestBadInputGetsExactErrorAndStoresNothing(t *testing.T) {
	w := newWorld(t)
	long := strings.Repeat("x", 65)
	cases := []struct {
		name   string
		key    string // "" = anonymous, "alice" = alice's key
		body   string
		status int
		code   string
		field  string
	}{
		{"malformed JSON", "alice", `{"sender": "alice@a.test", `, 400, "INVALID_MESSAGE_FORMAT", ""},
		{"not an object", "alice", `["alice@a.test"]`, 400, "INVALID_MESSAGE_FORMAT", ""},
		{"recipients wrong type", "alice", `{"version":"1.0","sender":"alice@a.test","recipients":"bob@b.test","payload":{}}`, 400, "INVALID_MESSAGE_FORMAT", "recipients"},
		{"sender wrong type", "alice", `{"version":"1.0","sender":7,"recipients":["bob@b.test"],"payload":{}}`, 400, "INVALID_MESSAGE_FORMAT", "sender"},
		{"headers wrong type", "alice", `{"sender":"alice@a.test","recipients":["bob@b.test"],"payload":{},"headers":[1]}`, 400, "INVALID_MESSAGE_FORMAT", "headers"},
		{"missing sender", "alice", `{"version":"1.0","recipients":["bob@b.test"],"payload":{}}`, 400, "INVALID_MESSAGE_FORMAT", "sender"},
		{"missing recipients", "alice", `{"version":"1.0","sender":"alice@a.test","payload":{}}`, 400, "INVALID_MESSAGE_FORMAT", "recipients"},
		{"missing payload", "alice", `{"version":"1.0","sender":"alice@a.test","recipients":["bob@b.test"]}`, 400, "INVALID_MESSAGE_FORMAT", "payload"},
		{"display name recipient", "alice", `{"sender":"alice@a.test","recipients":["Bob <bob@b.test>"],"payload":{}}`, 400, "INVALID_RECIPIENT", "recipients[0]"},
		{"no @", "alice", `{"sender":"alice@a.test","recipients":["bob.b.test"],"payload":{}}`, 400, "INVALID_RECIPIENT", "recipients[0]"},
		{"IP literal", "alice", `{"sender":"alice@a.test","recipients":["bob@b.test","bob@[127.0.0.1]"],"payload":{}}`, 400, "INVALID_RECIPIENT", "recipients[1]"},
		{"over-long local part", "alice", `{"sender":"alice@a.test","recipients":["` + long + `@b.test"],"payload":{}}`, 400, "INVALID_RECIPIENT", "recipients[0]"},
		{"bad sender address", "alice", `{"sender":"Alice <alice@a.test>","recipients":["bob@b.test"],"payload":{}}`, 400, "INVALID_MESSAGE_FORMAT", "sender"},
		{"unknown version", "alice", `{"version":"2.0","sender":"alice@a.test","recipients":["bob@b.test"],"payload":{}}`, 400, "UNSUPPORTED_VERSION", ""},
		{"too many recipients", "alice", tooMany(101), 400, "INVALID_MESSAGE_FORMAT", "recipients"},
		{"bad timestamp", "alice", `{"sender":"alice@a.test","recipients":["bob@b.test"],"payload":{},"timestamp":"yesterday"}`, 400, "INVALID_MESSAGE_FORMAT", "timestamp"},
		{"spoofed sender", "alice", `{"sender":"mallory@a.test","recipients":["bob@b.test"],"payload":{}}`, 403, "SENDER_CREDENTIAL_MISMATCH", "sender"},
		{"foreign sender with local key", "alice", `{"sender":"alice@evil.test","recipients":["bob@b.test"],"payload":{}}`, 403, "SENDER_CREDENTIAL_MISMATCH", "sender"},
		{"relay attempt", "", `{"sender":"mallory@evil.test","recipients":["bob@b.test"],"payload":{}}`, 403, "FORBIDDEN", "recipients[0]"},
		{"local sender without key", "", `{"sender":"alice@a.test","recipients":["bob@b.test"],"payload":{}}`, 401, "LOCAL_SENDER_AUTH_REQUIRED", "sender"},
		{"unknown key", "bogus-key", `{"sender":"alice@a.test","recipients":["bob@b.test"],"payload":{}}`, 401, "AUTHENTICATION_REQUIRED", ""},
		{"unknown local recipient", "alice", `{"sender":"alice@a.test","recipients":["ghost@a.test"],"payload":{}}`, 400, "AGENT_UNKNOWN", ""},
	}
	before := w.a.countMessages()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := c.key
			if key == "alice" {
				key = w.alice
			}
			status, out := call(t, "POST", w.a.url+"/v1/messages", key, c.body)
			require.Equal(t, c.status, status, "%v", out)
			e, ok := out["error"].(map[string]any)
			require.True(t, ok, "error body: %v", out)
			assert.Equal(t, c.code, e["code"])
			assert.NotEmpty(t, e["message"])
			assert.NotEmpty(t, e["timestamp"])
			assert.NotEmpty(t, e["request_id"])
			if c.field != "" {
				d, _ := e["details"].(map[string]any)
				assert.Equal(t, c.field, d["field"], "details: %v", e["details"])
			}
		})
	}
	assert.Equal(t, before, w.a.countMessages(), "no bad request stored anything")
}

func tooMany(n int) string {
	var b strings.Builder
	b.WriteString(`{"sender":"alice@a.test","payload":{},"recipients":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"r%d@b.test"`, i)
	}
	b.WriteString("]}")
	return b.String()
}

// An 11 MB body is refused with 413 before the gateway reads it: the test
// declares the length, sends only the first kilobyte, and still gets the
// answer.
func TestOversizedBodyRefusedBeforeReading(t *testing.T) {
	w := newWorld(t)
	before := w.a.countMessages()
	conn, err := net.Dial("tcp", strings.TrimPrefix(w.a.url, "http://"))
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	_, err = fmt.Fprintf(conn, "POST /v1/messages HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", w.alice, 11<<20)
	require.NoError(t, err)
	_, err = conn.Write([]byte(`{"sender":"alice@a.test","payload":"` + strings.Repeat("x", 1000)))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the gateway must answer without waiting for 11 MB")
	defer resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Equal(t, before, w.a.countMessages())

	// Without a declared length (chunked), the read stops at the limit.
	big := `{"sender":"alice@a.test","recipients":["bob@b.test"],"payload":"` + strings.Repeat("y", 11<<20) + `"}`
	req, err := http.NewRequest("POST", w.a.url+"/v1/messages", struct{ *strings.Reader }{strings.NewReader(big)})
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+w.alice)
	resp2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp2.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp2.StatusCode)
}

func TestErrorBodiesEverywhere(t *testing.T) {
	w := newWorld(t)
	cases := []struct {
		method, path, key string
		status            int
		code              string
	}{
		{"GET", "/nope", "", 404, "NOT_FOUND"},
		{"PUT", "/v1/messages", w.alice, 405, "METHOD_NOT_ALLOWED"},
		{"GET", "/v1/admin/agents", "", 401, "AUTHENTICATION_REQUIRED"},
		{"GET", "/v1/admin/agents", w.alice, 403, "FORBIDDEN"},
		{"GET", "/v1/inbox/bob@a.test", w.alice, 403, "FORBIDDEN"},
		{"GET", "/v1/inbox/alice@a.test", "", 401, "AUTHENTICATION_REQUIRED"},
		{"GET", "/v1/messages/0190f5d2-0000-7000-8000-000000000000/status", w.alice, 404, "NOT_FOUND"},
	}
	for _, c := range cases {
		status, out := call(t, c.method, w.a.url+c.path, c.key, nil)
		require.Equal(t, c.status, status, "%s %s: %v", c.method, c.path, out)
		e, ok := out["error"].(map[string]any)
		require.True(t, ok, "%s %s: %v", c.method, c.path, out)
		assert.Equal(t, c.code, e["code"], "%s %s", c.method, c.path)
		assert.NotEmpty(t, e["request_id"])
	}
	// An unsupported X-AMTP-Version header.
	req, _ := http.NewRequest("GET", w.a.url+"/healthz", nil)
	req.Header.Set("X-AMTP-Version", "2.0")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}
