package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/emersion/go-message"
	// Registers the charsets a mail client reads (ISO-8859-*, Windows-125x,
	// Shift_JIS, ISO-2022-JP, GB18030, …) with go-message.
	_ "github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"

	"github.com/agentry/agentry/internal/core/amtp"
)

// maxRefs is how many message ids of In-Reply-To and References are kept
// (the newest): a long thread's References grows by one per answer.
const maxRefs = 100

// Parse reads one Internet message within l, as a mail client would:
// transfer encodings and charsets decoded, RFC 2047 words in the subject
// and display names decoded, multipart trees walked. The text/plain and
// text/html parts that are not attachments become Text and HTML; every
// other leaf part is an Attachment (digest and size, not content); a
// message/rfc822 part is an attachment too, not walked. Errors wrap
// ErrTooLarge (or ErrTooComplex) or ErrMalformed.
func Parse(r io.Reader, l Limits) (*Email, error) {
	l = l.withDefaults()
	in := &limitReader{r: r, left: l.MaxBytes, sum: sha256.New()}
	p := &parser{l: l, in: in, fields: &fieldCounter{r: in, max: l.MaxHeaders, lineEmpty: true}}
	e, err := p.parse()
	if err != nil {
		return nil, p.classify(err)
	}
	// Read to the end so that a message over the limit is refused
	// whichever part of it the parts above left unread.
	if _, err := io.Copy(io.Discard, p.fields); err != nil {
		return nil, p.classify(err)
	}
	copy(e.digest[:], p.in.sum.Sum(nil))
	return e, nil
}

type parser struct {
	l      Limits
	in     *limitReader
	fields *fieldCounter
	parts  int
	e      *Email
	buf    []byte // one copy buffer for every part
}

// fieldCounter counts the fields of the message's header as the bytes
// pass, so that a header of endless fields is refused after MaxHeaders
// of them rather than after go-message has parsed MaxBytes of them.
type fieldCounter struct {
	r         io.Reader
	max       int
	count     int
	lineEmpty bool // nothing but CR seen since the last LF
	done      bool // the header has ended
	over      bool
}

func (c *fieldCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for _, b := range p[:n] {
		if c.done {
			break
		}
		switch b {
		case '\n':
			c.done = c.lineEmpty
			c.lineEmpty = true
		case '\r':
		default:
			// A line that starts with a space or tab continues a field.
			if c.lineEmpty && b != ' ' && b != '\t' {
				c.count++
				if c.count > c.max {
					c.over = true
					return 0, ErrTooComplex
				}
			}
			c.lineEmpty = false
		}
	}
	return n, err
}

// limitReader reads at most left bytes and then fails, remembering that
// it did: go-message wraps some read errors with %v, so the verdict is
// taken from here rather than from the error chain. It bounds the whole
// message as received (and hashes it into sum) and each part's decoded
// bytes (sum nil): reading stops one byte past the limit, however small
// the encoded input that produced them.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
	sum  hash.Hash // nil: not hashed
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		l.over = true
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return 0, ErrTooLarge
	}
	if l.sum != nil {
		l.sum.Write(p[:n])
	}
	return n, err
}

// classify turns any failure into one of the package's sentinels.
func (p *parser) classify(err error) error {
	switch {
	case p.in.over:
		return fmt.Errorf("email: the message is larger than %d bytes: %w", p.l.MaxBytes, ErrTooLarge)
	case p.fields.over:
		return fmt.Errorf("email: the header has more than %d fields: %w", p.l.MaxHeaders, ErrTooComplex)
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrMalformed):
		return err
	}
	return fmt.Errorf("%w: %s", ErrMalformed, clip(oneLine(err.Error()), 200))
}

func (p *parser) parse() (*Email, error) {
	// No header limit of go-message's own: p.in bounds the header with
	// the rest, and says "too large" where go-message would not.
	ent, err := message.ReadWithOptions(p.fields, &message.ReadOptions{MaxHeaderBytes: -1})
	if err != nil && !decodable(err) {
		return nil, err
	}
	p.e = &Email{}
	if err := p.checkHeader(ent.Header); err != nil {
		return nil, err
	}
	if err := p.readEnvelope(mail.Header{Header: ent.Header}); err != nil {
		return nil, err
	}
	if err := p.entity(ent, 0); err != nil {
		return nil, err
	}
	p.e.Text = normalizeBody(p.e.Text)
	p.e.HTML = normalizeBody(p.e.HTML)
	return p.e, nil
}

// decodable reports an error after which go-message still hands out a
// readable entity: an unknown charset or transfer encoding, shown raw as a
// mail client would.
func decodable(err error) bool {
	return message.IsUnknownCharset(err) || message.IsUnknownEncoding(err)
}

func (p *parser) checkHeader(h message.Header) error {
	if n := h.Len(); n > p.l.MaxHeaders {
		return fmt.Errorf("email: a part has %d header fields, more than %d: %w", n, p.l.MaxHeaders, ErrTooComplex)
	}
	return nil
}

// readEnvelope reads the top-level fields. Only From must parse: a mail
// nobody can be named as the author of cannot be attributed.
func (p *parser) readEnvelope(h mail.Header) error {
	e := p.e
	from, err := h.AddressList("From")
	if err != nil || len(from) == 0 {
		return fmt.Errorf("%w: no readable From address", ErrMalformed)
	}
	e.From = mailboxes(from)
	if to, err := h.AddressList("To"); err == nil {
		e.To = mailboxes(to)
	}
	if cc, err := h.AddressList("Cc"); err == nil {
		e.Cc = mailboxes(cc)
	}
	e.Subject, _ = h.Subject()
	e.Subject = oneLine(e.Subject)
	e.MessageID = messageID(h)
	e.InReplyTo = msgIDs(h, "In-Reply-To")
	e.References = msgIDs(h, "References")
	e.Date, _ = h.Date()
	fields := h.Fields()
	for fields.Next() {
		if !strings.HasPrefix(fields.Key(), "X-Amtp-") {
			continue
		}
		if e.AMTPHeaders == nil {
			e.AMTPHeaders = map[string]string{}
		}
		v, _ := fields.Text()
		if _, dup := e.AMTPHeaders[fields.Key()]; !dup {
			e.AMTPHeaders[fields.Key()] = oneLine(v)
		}
	}
	return nil
}

func mailboxes(list []*mail.Address) []Mailbox {
	out := make([]Mailbox, 0, len(list))
	for _, a := range list {
		out = append(out, Mailbox{Name: oneLine(a.Name), Address: a.Address})
	}
	return out
}

// messageID reads Message-ID, accepting (as mail clients do) an id
// without angle brackets; an id with anything but visible ASCII is
// dropped.
func messageID(h mail.Header) string {
	var id string
	var err error
	if v := h.Get("Message-Id"); strings.Contains(v, "(") {
		if ids := angleTokens(v); len(ids) > 0 {
			id = ids[0]
		}
	} else {
		id, err = h.MessageID()
	}
	if err != nil || id == "" {
		id = strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>")
	}
	if len(id) > 998 || !visibleASCII(id) {
		return ""
	}
	return id
}

// msgIDs reads a list of msg-ids, keeping the well-formed ones before the
// first malformed one, at most maxRefs (the newest).
func msgIDs(h mail.Header, key string) []string {
	var ids []string
	if v := h.Get(key); strings.Contains(v, "(") {
		ids = angleTokens(v)
	} else {
		ids, _ = h.MsgIDList(key)
	}
	out := ids[:0]
	for _, id := range ids {
		if visibleASCII(id) {
			out = append(out, id)
		}
	}
	if len(out) > maxRefs {
		out = out[len(out)-maxRefs:]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// angleTokens reads the <…> tokens of a msg-id field that has comments.
// go-message's msg-id parser copies a comment once per character it
// reads, which is quadratic in the comment's length (64 KiB of "(" cost
// 2 GiB of allocation); this reading is linear and ignores the comments.
func angleTokens(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(v[i+1:], '>')
		if j < 0 {
			return out
		}
		out = append(out, strings.TrimSpace(v[i+1:i+1+j]))
		v = v[i+1+j+1:]
	}
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// entity walks one part: a multipart's children, or a leaf's content.
func (p *parser) entity(ent *message.Entity, depth int) error {
	p.parts++
	if p.parts > p.l.MaxParts {
		return fmt.Errorf("email: more than %d MIME parts: %w", p.l.MaxParts, ErrTooComplex)
	}
	mr := ent.MultipartReader()
	if mr == nil {
		return p.leaf(ent)
	}
	if depth+1 > p.l.MaxDepth {
		return fmt.Errorf("email: multipart nested deeper than %d levels: %w", p.l.MaxDepth, ErrTooComplex)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && (part == nil || !decodable(err)) {
			return err
		}
		if err := p.checkHeader(part.Header); err != nil {
			return err
		}
		if err := p.entity(part, depth+1); err != nil {
			return err
		}
	}
}

// leaf reads one non-multipart part within MaxPartBytes: text bodies are
// kept, an application/json part is kept when it is an AMTP message, and
// every other part is only measured and hashed.
func (p *parser) leaf(ent *message.Entity) error {
	mediaType, params, _ := ent.Header.ContentType()
	mediaType = strings.ToLower(mediaType)
	disp, dparams, _ := ent.Header.ContentDisposition()
	filename := dparams["filename"]
	if filename == "" {
		filename = params["name"]
	}
	attached := strings.EqualFold(disp, "attachment") || filename != ""
	body := &limitReader{r: ent.Body, left: p.l.MaxPartBytes}

	switch {
	case !attached && (mediaType == "text/plain" || mediaType == "text/html"):
		var b strings.Builder
		if _, err := io.CopyBuffer(&b, body, p.copyBuffer()); err != nil {
			return body.verdict(err, p.l.MaxPartBytes)
		}
		if mediaType == "text/plain" {
			p.e.Text = joinBody(p.e.Text, b.String())
		} else {
			p.e.HTML = joinBody(p.e.HTML, b.String())
		}
		return nil
	case mediaType == "application/json":
		var b bytes.Buffer
		sum := sha256.New()
		if _, err := io.CopyBuffer(io.MultiWriter(&b, sum), body, p.copyBuffer()); err != nil {
			return body.verdict(err, p.l.MaxPartBytes)
		}
		if p.e.amtpPart == nil {
			if _, err := amtp.Parse(b.Bytes(), amtp.Limits{}); err == nil {
				p.e.amtpPart = b.Bytes()
			}
		}
		p.attach(filename, mediaType, int64(b.Len()), sum)
		return nil
	}
	sum := sha256.New()
	n, err := io.CopyBuffer(sum, body, p.copyBuffer())
	if err != nil {
		return body.verdict(err, p.l.MaxPartBytes)
	}
	p.attach(filename, mediaType, n, sum)
	return nil
}

func (p *parser) copyBuffer() []byte {
	if p.buf == nil {
		p.buf = make([]byte, 32<<10)
	}
	return p.buf
}

func (p *parser) attach(filename, mediaType string, size int64, sum hash.Hash) {
	p.e.Attachments = append(p.e.Attachments, Attachment{
		Filename:    clip(oneLine(filename), 255),
		ContentType: clip(oneLine(mediaType), 255),
		Size:        size,
		SHA256:      hex.EncodeToString(sum.Sum(nil)),
	})
}

// verdict is err, or the part's size refusal when the bound was passed.
func (r *limitReader) verdict(err error, limit int64) error {
	if r.over {
		return fmt.Errorf("email: a part decodes to more than %d bytes: %w", limit, ErrTooLarge)
	}
	return err
}

// joinBody appends a further inline text part (Apple Mail splits a body
// around inline images) on a line of its own.
func joinBody(have, more string) string {
	if have == "" {
		return more
	}
	return have + "\n" + more
}

// normalizeBody makes line breaks "\n" and replaces invalid UTF-8 (a part
// in an unknown charset reads as its raw bytes).
func normalizeBody(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, '\r') < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}
