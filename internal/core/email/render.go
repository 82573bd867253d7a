package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"net/mail"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-message"

	"github.com/agentry/agentry/internal/core/amtp"
)

// AttachmentName is the filename of the part that carries the full AMTP
// message.
const AttachmentName = "amtp-message.json"

// dateLayout is RFC 5322's date-time (§3.3).
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// Render renders m (whose exact received bytes are raw) as the email for
// one recipient, per draft §11.2.1. The output is a function of its
// inputs (the MIME boundaries are derived from them), so a retried send
// renders the same bytes.
func Render(m *amtp.Message, raw []byte, to amtp.Address, o RenderOptions) ([]byte, error) {
	if err := checkRender(m, raw, to, o); err != nil {
		return nil, err
	}
	mixed, alt := boundaries(raw, to)
	h := renderHeader(m, to, o, mixed)

	var out bytes.Buffer
	out.Grow(len(raw)*4/3 + 8<<10)
	w, err := message.CreateWriter(&out, h)
	if err != nil {
		return nil, fmt.Errorf("email: render %s: %w", m.MessageID, err)
	}
	text, htmlBody := present(m, o)
	if err := writeAlternative(w, alt, text, htmlBody); err != nil {
		return nil, fmt.Errorf("email: render %s: %w", m.MessageID, err)
	}
	if err := writeAMTPPart(w, raw); err != nil {
		return nil, fmt.Errorf("email: render %s: %w", m.MessageID, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("email: render %s: %w", m.MessageID, err)
	}
	return out.Bytes(), nil
}

func checkRender(m *amtp.Message, raw []byte, to amtp.Address, o RenderOptions) error {
	switch {
	case m == nil || len(raw) == 0:
		return fmt.Errorf("email: render: no message")
	case !amtp.ValidMessageID(m.MessageID):
		return fmt.Errorf("email: render: the message has no valid message_id")
	case m.Timestamp.IsZero():
		return fmt.Errorf("email: render %s: the message has no timestamp", m.MessageID)
	case !validAddress(to):
		return fmt.Errorf("email: render %s: invalid recipient", m.MessageID)
	case !validAddress(o.Bridge):
		return fmt.Errorf("email: render %s: invalid bridge address", m.MessageID)
	case !o.ReplyTo.IsZero() && !validAddress(o.ReplyTo):
		return fmt.Errorf("email: render %s: invalid reply-to address", m.MessageID)
	}
	return nil
}

// validAddress re-checks an address a caller may have built by hand: only
// a dot-atom local-part and a host name may reach an address header.
func validAddress(a amtp.Address) bool {
	_, err := amtp.ParseAddress(a.String())
	return err == nil && !a.IsZero()
}

// renderHeader builds the header fields. go-message writes the field
// added last first, so they are added in reverse.
func renderHeader(m *amtp.Message, to amtp.Address, o RenderOptions, boundary string) message.Header {
	domain := strings.ToLower(o.Bridge.Domain)
	fields := [][2]string{
		{"Date", m.Timestamp.UTC().Format(dateLayout)},
		{"From", (&mail.Address{Name: clip(oneLine(m.Sender), 200) + " via AMTP", Address: o.Bridge.String()}).String()},
	}
	if !o.ReplyTo.IsZero() {
		fields = append(fields, [2]string{"Reply-To", (&mail.Address{Address: o.ReplyTo.String()}).String()})
	}
	fields = append(fields,
		[2]string{"To", (&mail.Address{Address: to.String()}).String()},
		[2]string{"Subject", headerText(subjectLine(m))},
		[2]string{"Message-Id", "<" + bridgedMessageID(m.MessageID, domain) + ">"},
	)
	if amtp.ValidMessageID(m.InReplyTo) {
		ref := "<" + bridgedMessageID(amtp.NormalizeMessageID(m.InReplyTo), domain) + ">"
		fields = append(fields, [2]string{"In-Reply-To", ref}, [2]string{"References", ref})
	}
	fields = append(fields,
		[2]string{"MIME-Version", "1.0"},
		// RFC 3834: an agent's message is machine-made; vacation
		// responders must not answer it (a person still may).
		[2]string{"Auto-Submitted", "auto-generated"},
		[2]string{HeaderMessageID, m.MessageID},
		[2]string{HeaderSender, headerText(clip(m.Sender, amtp.MaxAddressLen))},
	)
	if m.Schema != "" {
		fields = append(fields, [2]string{HeaderSchema, headerText(clip(m.Schema, 256))})
	}
	if m.IdempotencyKey != "" {
		fields = append(fields, [2]string{HeaderIdempotencyKey, headerText(clip(m.IdempotencyKey, amtp.MaxIdempotencyKeyLen))})
	}
	var h message.Header
	h.SetContentType("multipart/mixed", map[string]string{"boundary": boundary})
	for i := len(fields) - 1; i >= 0; i-- {
		h.Add(fields[i][0], fields[i][1])
	}
	return h
}

// subjectLine is "[AMTP] <subject>", one line of at most amtp.MaxSubjectLen
// bytes of text.
func subjectLine(m *amtp.Message) string {
	s := strings.TrimSpace(oneLine(m.Subject))
	if s == "" {
		s = "Message from " + oneLine(m.Sender)
	}
	return clip("[AMTP] "+s, amtp.MaxSubjectLen)
}

// boundaries derives the two MIME boundaries from the content they
// enclose: a payload cannot contain its own digest, so it cannot contain
// the boundary either, and the same input renders the same bytes.
func boundaries(raw []byte, to amtp.Address) (mixed, alt string) {
	d := sha256.New()
	d.Write(raw)
	d.Write([]byte{0})
	d.Write([]byte(to.Key()))
	sum := hex.EncodeToString(d.Sum(nil))
	return "amtp-mixed-" + sum[:40], "amtp-alt-" + sum[24:64]
}

func writeAlternative(w *message.Writer, boundary, text, htmlBody string) error {
	var h message.Header
	h.SetContentType("multipart/alternative", map[string]string{"boundary": boundary})
	aw, err := w.CreatePart(h)
	if err != nil {
		return err
	}
	for _, p := range []struct{ typ, body string }{{"text/plain", text}, {"text/html", htmlBody}} {
		var ph message.Header
		ph.Set("Content-Transfer-Encoding", "quoted-printable")
		ph.SetContentType(p.typ, map[string]string{"charset": "utf-8"})
		pw, err := aw.CreatePart(ph)
		if err != nil {
			return err
		}
		if _, err := pw.Write([]byte(p.body)); err != nil {
			return err
		}
		if err := pw.Close(); err != nil {
			return err
		}
	}
	return aw.Close()
}

func writeAMTPPart(w *message.Writer, raw []byte) error {
	var h message.Header
	h.Set("Content-Transfer-Encoding", "base64")
	h.SetContentDisposition("attachment", map[string]string{"filename": AttachmentName})
	h.SetContentType("application/json", map[string]string{"name": AttachmentName})
	pw, err := w.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := pw.Write(raw); err != nil {
		return err
	}
	return pw.Close()
}

// present renders the text and the HTML body.
func present(m *amtp.Message, o RenderOptions) (text, htmlBody string) {
	meta := metadata(m)
	intro := "This message was sent by " + oneLine(m.Sender) + " over AMTP (the Agent Message Transfer Protocol) " +
		"and delivered as email because your domain has no AMTP gateway."
	reply := "Reply to this email to answer " + oneLine(m.Sender) + ". The complete AMTP message is attached as " + AttachmentName + "."
	hint := "To receive AMTP messages directly instead of email, publish this DNS TXT record:"

	t := &boundedWriter{max: maxShownBytes + 64<<10}
	t.WriteString(intro + "\n\n")
	for _, f := range meta {
		t.WriteString(fmt.Sprintf("%-12s %s\n", f[0]+":", f[1]))
	}
	for _, k := range sortedKeys(m.Headers) {
		t.WriteString(fmt.Sprintf("%-12s %s: %s\n", "Header:", oneLine(k), oneLine(m.Headers[k])))
	}
	t.WriteString("\nPayload\n-------\n")
	tree, cut := payloadPresentation(m)
	body := &boundedWriter{max: maxShownBytes}
	textTree(body, tree, 0)
	t.WriteString(body.b.String())
	if cut || body.cut {
		t.WriteString("… (cut here: the attached " + AttachmentName + " has the rest)\n")
	}
	for i, a := range m.Attachments {
		if i == 0 {
			t.WriteString("\nAttachments (links from the sender):\n")
		}
		t.WriteString("- " + oneLine(a.Filename) + " (" + oneLine(a.ContentType) + ", " + strconv.FormatInt(a.Size, 10) + " bytes): " + oneLine(a.URL) + "\n")
	}
	t.WriteString("\n" + reply + "\n")
	if o.UpgradeHint != "" {
		t.WriteString("\n" + hint + "\n  " + oneLine(o.UpgradeHint) + "\n")
	}

	hw := &boundedWriter{max: 2*maxShownBytes + 64<<10}
	hw.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.EscapeString(subjectLine(m)) + "</title></head>\n<body style=\"font-family:sans-serif\">\n")
	hw.WriteString("<p>" + html.EscapeString(intro) + "</p>\n<table>\n")
	for _, f := range meta {
		hw.WriteString("<tr><th align=\"left\">" + html.EscapeString(f[0]) + "</th><td>" + html.EscapeString(f[1]) + "</td></tr>\n")
	}
	for _, k := range sortedKeys(m.Headers) {
		hw.WriteString("<tr><th align=\"left\">Header</th><td>" + html.EscapeString(oneLine(k)+": "+oneLine(m.Headers[k])) + "</td></tr>\n")
	}
	hw.WriteString("</table>\n<h3>Payload</h3>\n")
	hb := &boundedWriter{max: 2 * maxShownBytes}
	htmlTree(hb, tree)
	hw.WriteString(hb.b.String())
	if cut || hb.cut {
		hw.WriteString("\n<p><em>… (cut here: the attached " + AttachmentName + " has the rest)</em></p>")
	}
	if len(m.Attachments) > 0 {
		hw.WriteString("\n<h3>Attachments (links from the sender)</h3>\n<ul>")
		for _, a := range m.Attachments {
			hw.WriteString("<li>" + html.EscapeString(oneLine(a.Filename)+" ("+oneLine(a.ContentType)+", "+strconv.FormatInt(a.Size, 10)+" bytes): "+oneLine(a.URL)) + "</li>\n")
		}
		hw.WriteString("</ul>")
	}
	hw.WriteString("\n<p>" + html.EscapeString(reply) + "</p>\n")
	if o.UpgradeHint != "" {
		hw.WriteString("<p>" + html.EscapeString(hint) + "</p>\n<pre>" + html.EscapeString(oneLine(o.UpgradeHint)) + "</pre>\n")
	}
	hw.WriteString("</body></html>\n")
	return t.b.String(), hw.b.String()
}

// metadata lists the message's fields a person may want, as label/value.
func metadata(m *amtp.Message) [][2]string {
	meta := [][2]string{{"From", oneLine(m.Sender)}}
	if m.Subject != "" {
		meta = append(meta, [2]string{"Subject", oneLine(m.Subject)})
	}
	if m.Schema != "" {
		meta = append(meta, [2]string{"Schema", oneLine(m.Schema)})
	}
	meta = append(meta, [2]string{"Message ID", oneLine(m.MessageID)}, [2]string{"Sent", amtp.FormatTime(m.Timestamp)})
	if m.InReplyTo != "" {
		meta = append(meta, [2]string{"In reply to", oneLine(m.InReplyTo)})
	}
	if m.WorkflowID != "" {
		meta = append(meta, [2]string{"Workflow", oneLine(m.WorkflowID)})
	}
	return meta
}

func payloadPresentation(m *amtp.Message) (*node, bool) {
	if amtp.EncryptedPayload(m.Payload) {
		return &node{scalar: "(end-to-end encrypted: an AMTP agent can read it from the attached " + AttachmentName + ")"}, false
	}
	return payloadTree(m.Payload)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
