package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	msgdkim "github.com/emersion/go-msgauth/dkim"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/kit/awstest"
)

// emailWorld is a.test with alice (pull) and the bridge set up on either
// runtime: the outbox and an SMTP listener locally, SES on AWS; mx.test
// is a domain with only mail exchangers, where bob reads email.
type emailWorld struct {
	dns   *dnstest.Server
	a     *gw
	alice string
	dir   string // the local data dir
	onAWS bool
}

const sesConfigurationSet = "agentry-e2e-email"

func newEmailWorld(t *testing.T, onAWS bool, env map[string]string) *emailWorld {
	t.Helper()
	w := &emailWorld{dns: dnstest.Start(t), dir: t.TempDir(), onAWS: onAWS}
	all := map[string]string{"AGENTRY_SMTP_LISTEN": "127.0.0.1:0"}
	if onAWS {
		sesReady(t, "a.test", sesConfigurationSet)
		all["AGENTRY_SES_CONFIGURATION_SET"] = sesConfigurationSet
	}
	for k, v := range env {
		all[k] = v
	}
	w.a = startGateway(t, w.dns, "a.test", gwOpts{aws: onAWS, dataDir: w.dir, env: all})
	w.alice, _ = w.a.register("alice", "pull", "")
	w.dns.SetMX("mx.test", 60, "mail.mx.test", 10)
	return w
}

// bridged has alice send m and waits until the bridge delivered it to
// bob@mx.test; it returns the message id and the email's Message-ID.
func (w *emailWorld) bridged(t *testing.T, m map[string]any) (string, string) {
	t.Helper()
	code, out := w.a.send(w.alice, m)
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	id := str(out["message_id"])
	st := w.a.waitStatus(w.alice, id, "bob@mx.test", "delivered", settleWithin)
	require.Equal(t, "smtp", st["via"])
	var raw []byte
	if w.onAWS {
		raw = sesSent(t)[id]
	} else {
		files, err := filepath.Glob(filepath.Join(w.dir, "outbox", "*.eml"))
		require.NoError(t, err)
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			if e := readEmail(t, b); e.header.Get("X-AMTP-Message-ID") == id {
				raw = b
			}
		}
	}
	require.NotEmpty(t, raw, "the email of %s", id)
	e := readEmail(t, raw)
	mid, err := e.header.MessageID()
	require.NoError(t, err)
	return id, mid
}

// smtpSend hands raw to the listener at addr for rcpt, as a mail server
// on loopback would (plaintext: the test listener offers no STARTTLS).
func smtpSend(addr, rcpt string, raw []byte) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if err := c.SendMail("bob@mx.test", []string{rcpt}, bytes.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

// answer is bob's answer (from from) to the email whose Message-ID is mid.
func answer(from, mid, text string) []byte {
	return []byte("From: Bob <" + from + ">\r\nTo: alice@a.test\r\nSubject: Re: [AMTP] Approve?\r\n" +
		"Message-ID: <answer-" + mid + ">\r\nIn-Reply-To: <" + mid + ">\r\nReferences: <" + mid + ">\r\n" +
		"Date: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n\r\nOn Monday alice wrote:\r\n> Approve?\r\n")
}

// receive hands an email for rcpt to the gateway's inbound bridge as its
// runtime receives mail: the SMTP listener locally; on AWS what the
// receipt rule does (store it in the bucket, invoke inbound-email with
// SES's verdicts, DMARC passing when proven).
func (w *emailWorld) receive(t *testing.T, raw []byte, rcpt string, proven bool) {
	t.Helper()
	if !w.onAWS {
		require.NoError(t, smtpSend(w.a.local.SMTPAddr(), rcpt, raw))
		return
	}
	g := w.a.aws
	sesID := "ses-" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "")
	c := s3.NewFromConfig(awstest.Config(t), func(o *s3.Options) { o.UsePathStyle = true })
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(g.Config.Bucket),
		Key: aws.String(g.Config.Email.SESInboundPrefix + sesID), Body: bytes.NewReader(raw)})
	require.NoError(t, err)
	dmarc := "FAIL"
	if proven {
		dmarc = "PASS"
	}
	pass := events.SimpleEmailVerdict{Status: "PASS"}
	ev := events.SimpleEmailEvent{Records: []events.SimpleEmailRecord{{EventSource: "aws:ses", SES: events.SimpleEmailService{
		Mail: events.SimpleEmailMessage{MessageID: sesID, Destination: []string{rcpt}},
		Receipt: events.SimpleEmailReceipt{Recipients: []string{rcpt}, SPFVerdict: pass, DKIMVerdict: pass,
			DMARCVerdict: events.SimpleEmailVerdict{Status: dmarc}, SpamVerdict: pass, VirusVerdict: pass},
	}}}}
	require.NoError(t, g.ReceiveEmail(context.Background(), ev))
}

// TestEmailReplyUnprovenIsNotAttributed: an answer to a bridged workflow
// message whose From nobody proved reaches alice from the bridge address,
// marked, and moves no workflow.
func TestEmailReplyUnprovenIsNotAttributed(t *testing.T) {
	bothRuntimes(t, func(t *testing.T, onAWS bool) {
		w := newEmailWorld(t, onAWS, nil)
		m := msg("alice@a.test", []string{"bob@mx.test"}, map[string]any{"question": "Approve?"})
		m["subject"] = "Approve?"
		m["coordination"] = map[string]any{"type": "parallel", "timeout": 3600}
		id, mid := w.bridged(t, m)

		w.receive(t, answer("bob@mx.test", mid, "Approved."), "alice@a.test", false)
		got := w.a.waitInbox(w.alice, "alice@a.test", 1, settleWithin)
		require.Len(t, got, 1)
		assert.Equal(t, "amtp-bridge@a.test", got[0]["sender"], "an unproven From is never the sender")
		assert.Equal(t, "agntcy:email.message.v1", got[0]["schema"])
		headers, _ := got[0]["headers"].(map[string]any)
		assert.Equal(t, "false", headers["email-from-proven"])
		payload, _ := got[0]["payload"].(map[string]any)
		assert.Contains(t, str(payload["text"]), "Approved.")
		_, wf := w.a.workflow(w.alice, id)
		assert.Equal(t, "in_progress", wf["status"], "the workflow did not move")
	})
}

// TestEmailUnprovenRefusedUnderReject: AGENTRY_EMAIL_INBOUND_POLICY=reject
// refuses such mail (5xx at SMTP; dropped on AWS) and delivers nothing.
func TestEmailUnprovenRefusedUnderReject(t *testing.T) {
	w := newEmailWorld(t, false, map[string]string{"AGENTRY_EMAIL_INBOUND_POLICY": "reject"})
	err := smtpSend(w.a.local.SMTPAddr(), "alice@a.test", answer("bob@mx.test", "nothing@a.test", "Hello"))
	var se *gosmtp.SMTPError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 550, se.Code)
	err = smtpSend(w.a.local.SMTPAddr(), "nobody@a.test", answer("bob@mx.test", "nothing@a.test", "Hello"))
	require.ErrorAs(t, err, &se, "an unknown agent is refused")
	assert.Equal(t, 5, se.Code/100)
	assert.Empty(t, w.a.inbox(w.alice, "alice@a.test"))
}

// TestEmailBounceFailsRecipient: on AWS, SES's bounce notification about
// a bridged email turns its delivered recipient into failed, and alice
// gets a failure report.
func TestEmailBounceFailsRecipient(t *testing.T) {
	w := newEmailWorld(t, true, nil)
	m := msg("alice@a.test", []string{"bob@mx.test"}, map[string]any{"n": 1})
	id, _ := w.bridged(t, m)
	note := `{"notificationType":"Bounce","mail":{"messageId":"0100019-ses","headers":[{"name":"X-AMTP-Message-ID","value":"` + id + `"}]},` +
		`"bounce":{"bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"bob@mx.test","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}]}}`
	require.NoError(t, w.a.aws.EmailEvents(context.Background(), events.SNSEvent{Records: []events.SNSEventRecord{{SNS: events.SNSEntity{MessageID: "sns-1", Message: note}}}}))
	st := recipientStatus(t, w.a.status(w.alice, id), "bob@mx.test")
	assert.Equal(t, "failed", st["status"])
	assert.Contains(t, str(st["error_message"]), "550 5.1.1 user unknown")
	reports := w.a.waitInbox(w.alice, "alice@a.test", 1, settleWithin)
	require.Len(t, reports, 1)
	assert.Equal(t, "postmaster@a.test", reports[0]["sender"])
	assert.Equal(t, id, reports[0]["in_reply_to"])
}

// dkimSign signs raw for domain with a fresh Ed25519 key, published at
// s1._domainkey.<domain> in dns, as bob's mail service would.
func dkimSign(t *testing.T, dns *dnstest.Server, domain string, raw []byte) []byte {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	dns.SetTXT("s1._domainkey."+domain, 60, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	var signed bytes.Buffer
	require.NoError(t, msgdkim.Sign(&signed, bytes.NewReader(raw), &msgdkim.SignOptions{
		Domain: domain, Selector: "s1", Signer: priv, HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID", "In-Reply-To"},
	}))
	return signed.Bytes()
}

// TestEmailReplyCompletesWorkflow: bob answers the bridged workflow
// message by email from a proven From (DKIM locally, SES's DMARC verdict
// on AWS): the answer is his AMTP reply, and the workflow completes.
func TestEmailReplyCompletesWorkflow(t *testing.T) {
	bothRuntimes(t, func(t *testing.T, onAWS bool) {
		w := newEmailWorld(t, onAWS, nil)
		m := msg("alice@a.test", []string{"bob@mx.test"}, map[string]any{"question": "Approve?"})
		m["subject"] = "Approve?"
		m["coordination"] = map[string]any{"type": "parallel", "timeout": 3600}
		id, mid := w.bridged(t, m)

		raw := answer("bob@mx.test", mid, "Approved.")
		if !onAWS {
			raw = dkimSign(t, w.dns, "mx.test", raw)
		}
		w.receive(t, raw, "alice@a.test", true)
		require.Eventually(t, func() bool {
			_, wf := w.a.workflow(w.alice, id)
			return wf["status"] == "completed"
		}, settleWithin, 25*time.Millisecond, "the workflow completes")
		got := w.a.waitInbox(w.alice, "alice@a.test", 2, settleWithin)
		var reply, result map[string]any
		for _, g := range got {
			switch g["response_type"] {
			case "workflow_response":
				reply = g
			case "workflow_result":
				result = g
			}
		}
		require.NotNil(t, reply, "bob's answer, as his AMTP reply")
		assert.Equal(t, "bob@mx.test", reply["sender"])
		assert.Equal(t, id, reply["in_reply_to"])
		assert.Equal(t, id, reply["workflow_id"])
		require.NotNil(t, result, "the workflow's result")
		w.a.checkExecution(t, id, "SUCCEEDED", "")
	})
}
