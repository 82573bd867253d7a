package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/smithy-go"
	"github.com/emersion/go-message/mail"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/kit/awstest"
)

// bridgedEmail is an email the bridge sent, read as a mail client would.
type bridgedEmail struct {
	header mail.Header
	parts  map[string]string // decoded body by media type
}

func readEmail(t *testing.T, raw []byte) bridgedEmail {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(raw))
	require.NoError(t, err, "a readable email")
	e := bridgedEmail{header: r.Header, parts: map[string]string{}}
	for {
		p, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		var mt string
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			mt, _, _ = h.ContentType()
		case *mail.AttachmentHeader:
			mt, _, _ = h.ContentType()
		}
		body, err := io.ReadAll(p.Body)
		require.NoError(t, err)
		e.parts[mt] = string(body)
	}
	return e
}

// reportSchema is the schema of the bridged test message, registered at
// the sending gateway so that X-AMTP-Schema has something to carry.
const reportSchema = "agntcy:finance.report.v1"

// quarterly is alice's message to bob@mx.test that the email tests bridge.
func quarterly(t *testing.T, a *gw) map[string]any {
	t.Helper()
	code, out := call(t, "POST", a.url+"/v1/admin/schemas", adminKey, map[string]any{"id": reportSchema,
		"schema": json.RawMessage(`{"type":"object","required":["quarter"],"properties":{"quarter":{"type":"string"},"revenue":{"type":"number"}}}`)})
	require.Contains(t, []int{http.StatusCreated, http.StatusOK}, code, "%v", out)
	m := msg("alice@a.test", []string{"bob@mx.test"}, map[string]any{"quarter": "Q3", "revenue": 12})
	m["subject"] = "Quarterly report"
	m["schema"] = reportSchema
	return m
}

// checkBridged checks the email bridged for message id (subject "Quarterly
// report", payload {"quarter":"Q3","revenue":12}) from alice to bob.
func checkBridged(t *testing.T, e bridgedEmail, id, alice, bob, domain string) {
	t.Helper()
	from, err := e.header.AddressList("From")
	require.NoError(t, err)
	require.Len(t, from, 1)
	assert.Equal(t, "amtp-bridge@"+domain, from[0].Address)
	replyTo, err := e.header.AddressList("Reply-To")
	require.NoError(t, err)
	require.Len(t, replyTo, 1)
	assert.Equal(t, alice, replyTo[0].Address, "a person's answer goes back to the sender")
	to, err := e.header.AddressList("To")
	require.NoError(t, err)
	require.Len(t, to, 1)
	assert.Equal(t, bob, to[0].Address)
	subject, err := e.header.Subject()
	require.NoError(t, err)
	assert.Equal(t, "[AMTP] Quarterly report", subject)
	assert.Equal(t, id, e.header.Get("X-AMTP-Message-ID"))
	assert.Equal(t, alice, e.header.Get("X-AMTP-Sender"))
	assert.Equal(t, reportSchema, e.header.Get("X-AMTP-Schema"))
	assert.NotEmpty(t, e.header.Get("X-AMTP-Idempotency-Key"))
	mid, err := e.header.MessageID()
	require.NoError(t, err)
	assert.Contains(t, mid, id)
	_, err = e.header.Date()
	assert.NoError(t, err)

	assert.Contains(t, e.parts["text/plain"], "revenue", "a text part a person can read, with the payload's fields")
	assert.Contains(t, e.parts["text/plain"], "_amtp.", "with the upgrade hint")
	assert.Contains(t, e.parts["text/html"], "revenue")
	var carried map[string]any
	require.NoError(t, json.Unmarshal([]byte(e.parts["application/json"]), &carried), "the whole AMTP message is attached")
	assert.Equal(t, id, carried["message_id"])
	assert.Equal(t, alice, carried["sender"])
	assert.Equal(t, map[string]any{"quarter": "Q3", "revenue": float64(12)}, carried["payload"])
	assert.NotNil(t, carried["signature"], "signed as for any other domain")
}

// TestBridgeToOutbox: on the local gateway, a message to a domain whose
// DNS has only an MX record becomes an .eml file in the outbox under the
// data dir, and the recipient is delivered with "via":"smtp".
func TestBridgeToOutbox(t *testing.T) {
	dns := dnstest.Start(t)
	dir := t.TempDir()
	a := startGateway(t, dns, "a.test", gwOpts{dataDir: dir})
	alice, _ := a.register("alice", "pull", "")
	dns.SetMX("mx.test", 60, "mail.mx.test", 10)

	m := quarterly(t, a)
	code, out := a.send(alice, m)
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	id := str(out["message_id"])
	st := a.waitStatus(alice, id, "bob@mx.test", "delivered", settleWithin)
	assert.Equal(t, "smtp", st["via"])

	files, err := filepath.Glob(filepath.Join(dir, "outbox", "*.eml"))
	require.NoError(t, err)
	require.Len(t, files, 1, "one email for the one bridged recipient")
	raw, err := os.ReadFile(files[0])
	require.NoError(t, err)
	checkBridged(t, readEmail(t, raw), id, "alice@a.test", "bob@mx.test", "a.test")
}

// TestNoBridgeWithoutMX: a domain with neither an AMTP record nor mail
// exchangers still fails its recipient, and nothing is written.
func TestNoBridgeWithoutMX(t *testing.T) {
	dns := dnstest.Start(t)
	dir := t.TempDir()
	a := startGateway(t, dns, "a.test", gwOpts{dataDir: dir})
	alice, _ := a.register("alice", "pull", "")
	code, out := a.send(alice, msg("alice@a.test", []string{"bob@nowhere.test"}, map[string]any{"n": 1}))
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	st := a.waitStatus(alice, str(out["message_id"]), "bob@nowhere.test", "failed", settleWithin)
	assert.Equal(t, "RECIPIENT_NOT_FOUND", st["error_code"])
	files, _ := filepath.Glob(filepath.Join(dir, "outbox", "*.eml"))
	assert.Empty(t, files)
}

// sesSent reads back the raw emails moto's SES has sent (its model data),
// keyed by their X-AMTP-Message-ID.
func sesSent(t *testing.T) map[string][]byte {
	t.Helper()
	resp, err := http.Get(awstest.Endpoint(t) + "/moto-api/data.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var data map[string]map[string][]struct {
		RawData string `json:"raw_data"`
	}
	require.NoError(t, json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&data))
	out := map[string][]byte{}
	for _, m := range data["ses"]["RawMessage"] {
		msg, err := mail.CreateReader(strings.NewReader(m.RawData))
		if err != nil {
			continue
		}
		out[msg.Header.Get("X-AMTP-Message-ID")] = []byte(m.RawData)
	}
	return out
}

// sesReady makes moto's SES accept mail from domain with configuration
// set cs, as the stack's identity and configuration set do.
func sesReady(t *testing.T, domain, cs string) {
	t.Helper()
	c := sesv2.NewFromConfig(awstest.Config(t))
	ctx := context.Background()
	_, err := c.CreateEmailIdentity(ctx, &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(domain)})
	var ae smithy.APIError
	if err != nil && !(errors.As(err, &ae) && ae.ErrorCode() == "AlreadyExistsException") {
		require.NoError(t, err)
	}
	_, err = c.CreateConfigurationSet(ctx, &sesv2.CreateConfigurationSetInput{ConfigurationSetName: aws.String(cs)})
	// SES answers AlreadyExistsException; moto names the resource.
	if err != nil && !(errors.As(err, &ae) && strings.HasSuffix(ae.ErrorCode(), "AlreadyExistsException")) {
		require.NoError(t, err)
	}
}

// TestBridgeThroughSES: on the AWS backend, the same message leaves
// through SES (moto) as a raw email with the same headers and parts.
func TestBridgeThroughSES(t *testing.T) {
	dns := dnstest.Start(t)
	sesReady(t, "a.test", "agentry-e2e-email")
	a := startGateway(t, dns, "a.test", gwOpts{aws: true, env: map[string]string{"AGENTRY_SES_CONFIGURATION_SET": "agentry-e2e-email"}})
	alice, _ := a.register("alice", "pull", "")
	dns.SetMX("mx.test", 60, "mail.mx.test", 10)

	m := quarterly(t, a)
	code, out := a.send(alice, m)
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	id := str(out["message_id"])
	st := a.waitStatus(alice, id, "bob@mx.test", "delivered", settleWithin)
	assert.Equal(t, "smtp", st["via"])
	raw, ok := sesSent(t)[id]
	require.True(t, ok, "SES sent the email of %s", id)
	checkBridged(t, readEmail(t, raw), id, "alice@a.test", "bob@mx.test", "a.test")
}
