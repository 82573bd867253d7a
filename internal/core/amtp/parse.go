package amtp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits bound what Parse accepts. Zero fields take the defaults.
type Limits struct {
	MaxRecipients int // after de-duplication; default 100
}

// Field bounds. They are generous for real use and small enough that a
// hostile message cannot make the gateway do unbounded work per field.
const (
	DefaultMaxRecipients = 100
	MaxSubjectLen        = 998 // the RFC 5322 line limit: subjects cross the email bridge
	MaxSchemaLen         = 256
	MaxHeaders           = 64
	MaxHeaderNameLen     = 128
	MaxHeaderValueLen    = 4096
	MaxAttachments       = 32
	MaxFilenameLen       = 255
	MaxURLLen            = 2048
	MaxExtensions        = 16
	MaxExtensionNameLen  = 64
	MaxCoordinationBytes = 64 << 10
	MaxSignatureValueLen = 4096
)

func (l Limits) maxRecipients() int {
	if l.MaxRecipients > 0 {
		return l.MaxRecipients
	}
	return DefaultMaxRecipients
}

// Parse decodes and validates one AMTP message. Every rejection is an
// *Error carrying the AMTP code and, for format errors, details.field.
// Recipients come back normalised (lower-case domain) and de-duplicated,
// message_id, in_reply_to and workflow_id in their canonical case
// (NormalizeMessageID). An optional member written as "" or null (or {}
// and [] for headers and attachments) reads as absent. Fields the client
// may omit stay empty; Complete fills them.
func Parse(data []byte, lim Limits) (*Message, error) {
	return parse(data, lim, parseState{})
}

// ParseOwned is Parse for a body the caller hands over: the message's
// payload, coordination and extension members may share data's memory
// instead of being copied out of it, so data must not change afterwards.
// A request body of megabytes is then held once, not twice.
func ParseOwned(data []byte, lim Limits) (*Message, error) {
	return parse(data, lim, parseState{owned: true})
}

func parse(data []byte, lim Limits, st parseState) (*Message, error) {
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD in strings
	// and keep it raw in payload, so a message could change in transit or
	// carry bytes no JSON peer has to accept.
	if !utf8.Valid(data) {
		return nil, Errorf(CodeInvalidMessageFormat, "message is not valid UTF-8")
	}
	// Well-formed objects, nearly every message, take the fast path; the
	// decoder below words the errors for everything else.
	if i := skipSpace(data, 0); i < len(data) && data[i] == '{' {
		if valid, spaced := scanJSON(data); valid {
			st.compact = !spaced
			return parseObject(data, i, st, lim)
		}
	}
	return parseDecoder(data, lim)
}

// parseDecoder is Parse through encoding/json's streaming decoder, whose
// errors say what is wrong with malformed input.
func parseDecoder(data []byte, lim Limits) (*Message, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, Errorf(CodeInvalidMessageFormat, "message is not valid JSON: %s", jsonErrText(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, Errorf(CodeInvalidMessageFormat, "message must be a JSON object")
	}
	m := &Message{}
	var seen memberSet
	var st parseState
	// The first member error waits until the object has been read whole:
	// broken JSON and an unsupported version are answered first, whatever
	// the order of the members, so a 2.x message hears about its version
	// rather than about a member its own format shapes differently.
	var memberErr error
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, Errorf(CodeInvalidMessageFormat, "message is not valid JSON: %s", jsonErrText(err))
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, Errorf(CodeInvalidMessageFormat, "message is not valid JSON: %s", jsonErrText(err))
		}
		if err := m.member(name, raw, &seen, &st, &memberErr); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, Errorf(CodeInvalidMessageFormat, "message is not valid JSON: %s", jsonErrText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errorf(CodeInvalidMessageFormat, "message has data after the JSON object")
	}
	return m.finish(&st, memberErr, lim)
}

// member handles one top-level member for both paths of Parse: a
// duplicate or invalid member is remembered (the first one is answered
// once the whole object is read), an unsupported version is returned at
// once.
func (m *Message) member(name string, raw json.RawMessage, seen *memberSet, st *parseState, memberErr *error) error {
	var err error
	if seen.add(name) {
		err = FieldError(name, "member %q appears more than once", name)
	} else {
		err = m.setMember(name, raw, st)
	}
	if IsCode(err, CodeUnsupportedVersion) {
		return err
	}
	if err != nil && *memberErr == nil {
		*memberErr = err
	}
	return nil
}

// finish applies the checks that need the whole object.
func (m *Message) finish(st *parseState, memberErr error, lim Limits) (*Message, error) {
	if memberErr != nil {
		return nil, memberErr
	}
	switch {
	case !st.haveSender:
		return nil, FieldError("sender", "sender is required")
	case !st.haveRecipients:
		return nil, FieldError("recipients", "recipients is required")
	case !st.havePayload:
		return nil, FieldError("payload", "payload is required")
	}
	rcpts, err := parseRecipients(st.recipientsRaw, lim.maxRecipients())
	if err != nil {
		return nil, err
	}
	m.Recipients = rcpts
	return m, nil
}

// memberNames are the members setMember knows, in the order of their bits
// in memberSet.
var memberNames = [...]string{
	"version", "message_id", "idempotency_key", "timestamp", "sender", "recipients", "subject", "schema",
	"in_reply_to", "response_type", "headers", "coordination", "payload", "attachments", "signature",
	"workflow_id",
}

// memberSet.known has a bit per entry of memberNames: this fails to
// compile once there are more of them than bits.
var _ [32 - len(memberNames)]struct{}

// memberIndex is name's index in memberNames, or -1.
func memberIndex(name string) int {
	switch name {
	case "version":
		return 0
	case "message_id":
		return 1
	case "idempotency_key":
		return 2
	case "timestamp":
		return 3
	case "sender":
		return 4
	case "recipients":
		return 5
	case "subject":
		return 6
	case "schema":
		return 7
	case "in_reply_to":
		return 8
	case "response_type":
		return 9
	case "headers":
		return 10
	case "coordination":
		return 11
	case "payload":
		return 12
	case "attachments":
		return 13
	case "signature":
		return 14
	case "workflow_id":
		return 15
	}
	return -1
}

// memberSet is the set of member names seen so far in an object: a bit
// per known member, and a map only once an extension member shows up. A
// map for every message cost three allocations per accept.
type memberSet struct {
	known uint32
	other map[string]bool
}

// add records name and reports whether it was already there.
func (s *memberSet) add(name string) bool {
	if i := memberIndex(name); i >= 0 {
		bit := uint32(1) << i
		dup := s.known&bit != 0
		s.known |= bit
		return dup
	}
	if s.other[name] {
		return true
	}
	if s.other == nil {
		s.other = make(map[string]bool, 2)
	}
	s.other[name] = true
	return false
}

// parseState is what Parse checks once every member has been read.
type parseState struct {
	haveSender, haveRecipients, havePayload bool
	recipientsRaw                           json.RawMessage
	// compact: the document has no whitespace outside strings, so its
	// values need copying but not compacting.
	compact bool
	// owned: the caller handed data over (ParseOwned), so compact values
	// need not be copied either.
	owned bool
}

// copyValue is compactCopy(raw), which for a compact document is a plain
// copy.
func (st *parseState) copyValue(raw json.RawMessage) json.RawMessage {
	if st.compact && st.owned {
		return raw[:len(raw):len(raw)] // appending must not write into data
	}
	if st.compact {
		return append(json.RawMessage(nil), raw...)
	}
	return compactCopy(raw)
}

// optionalStringMember reports whether name is an optional member whose
// value is a string. Other implementations serialise every field, so ""
// or null there means the member is absent.
func optionalStringMember(name string) bool {
	switch name {
	case "version", "message_id", "idempotency_key", "timestamp", "subject", "schema",
		"in_reply_to", "response_type", "workflow_id":
		return true
	}
	return false
}

// isAbsentValue reports whether raw, the value of an optional string
// member, is "" or null and so stands for the member being absent.
func isAbsentValue(raw json.RawMessage) bool {
	return string(raw) == `""` || isJSONNull(raw)
}

// setMember validates one top-level member and stores it in m. This is
// the one place both paths of Parse decide on a member's value, so the
// liberal reading of optional members lives here: a string member that is
// "" or null, headers {} or null, coordination null, attachments [] or
// null and signature null all leave m as if the member were absent. The
// mandatory members (sender, recipients, payload) get no such reading.
func (m *Message) setMember(name string, raw json.RawMessage, st *parseState) error {
	if isAbsentValue(raw) && optionalStringMember(name) {
		return nil
	}
	switch name {
	case "version":
		v, err := stringField(name, raw)
		if err != nil {
			return err
		}
		if !supportedVersion(v) {
			return Errorf(CodeUnsupportedVersion, "version %q is not supported; this gateway speaks 1.x", v).WithDetail("supported", []string{Version})
		}
		m.Version = v
	case "message_id":
		v, err := stringField(name, raw)
		if err != nil {
			return err
		}
		if !ValidMessageID(v) {
			return FieldError(name, "message_id must be a UUID (RFC 9562) or a ULID")
		}
		m.MessageID = NormalizeMessageID(v)
	case "idempotency_key":
		v, err := stringField(name, raw)
		if err != nil {
			return err
		}
		if !ValidIdempotencyKey(v) {
			return FieldError(name, "idempotency_key must be 1 to 128 visible ASCII characters")
		}
		m.IdempotencyKey = v
	case "timestamp":
		v, err := stringField(name, raw)
		if err != nil {
			return err
		}
		t, ok := parseTimestamp(v)
		if !ok {
			return FieldError(name, "timestamp %q is not an RFC 3339 time", v)
		}
		// The range is checked in UTC, the form it is written back in. The
		// zero instant is refused because it reads as "absent" and Complete
		// would replace it with the gateway's clock.
		t = t.UTC().Truncate(time.Millisecond)
		if t.Year() < 1 || t.Year() > 9999 || t.IsZero() {
			return FieldError(name, "timestamp is out of range")
		}
		m.Timestamp = t
	case "sender":
		v, err := stringField(name, raw)
		if err != nil {
			return err
		}
		a, err := ParseAddress(v)
		if err != nil {
			e, _ := AsError(err)
			return FieldError(name, "sender is not a valid address: %s", e.Message)
		}
		m.Sender = a.stringFrom(v)
		st.haveSender = true
	case "recipients":
		st.recipientsRaw = raw
		st.haveRecipients = true
	case "subject":
		v, err := stringField(name, raw)
		if err != nil {
			return err
		}
		if len(v) > MaxSubjectLen || !validUTF8NoControl(v) {
			return FieldError(name, "subject must be at most %d bytes without control characters", MaxSubjectLen)
		}
		m.Subject = v
	case "schema":
		v, err := stringField(name, raw)
		if err != nil {
			return err
		}
		if !validSchemaID(v) {
			return FieldError(name, "schema must be an identifier like agntcy:commerce.order.v2")
		}
		m.Schema = v
	case "in_reply_to":
		v, err := stringField(name, raw)
		if err != nil {
			return err
		}
		if !ValidMessageID(v) {
			return FieldError(name, "in_reply_to must be a message_id (UUID or ULID)")
		}
		m.InReplyTo = NormalizeMessageID(v)
	case "workflow_id":
		v, err := stringField(name, raw)
		if err != nil {
			return err
		}
		if !ValidWorkflowID(v) {
			return FieldError(name, "workflow_id must be 1 to %d visible ASCII characters", MaxWorkflowIDLen)
		}
		m.WorkflowID = NormalizeMessageID(v)
	case "response_type":
		v, err := stringField(name, raw)
		if err != nil {
			return err
		}
		switch v {
		case ResponseWorkflowResponse, ResponseWorkflowError, ResponseWorkflowResult:
		default:
			return FieldError(name, "response_type must be workflow_response, workflow_error or workflow_result")
		}
		m.ResponseType = v
	case "headers":
		h, err := parseHeaders(raw)
		if err != nil {
			return err
		}
		m.Headers = h
	case "coordination":
		if isJSONNull(raw) {
			return nil
		}
		if len(raw) > MaxCoordinationBytes {
			return FieldError(name, "coordination is larger than %d bytes", MaxCoordinationBytes)
		}
		if _, err := ParseCoordination(raw); err != nil {
			return err
		}
		m.Coordination = st.copyValue(raw)
	case "payload":
		if isJSONNull(raw) {
			return FieldError(name, "payload must not be null")
		}
		m.Payload = st.copyValue(raw)
		st.havePayload = true
	case "attachments":
		a, err := parseAttachments(raw)
		if err != nil {
			return err
		}
		m.Attachments = a
	case "signature":
		if isJSONNull(raw) {
			return nil
		}
		s, err := parseSignature(raw)
		if err != nil {
			return err
		}
		m.Signature = s
	default:
		if len(name) == 0 || len(name) > MaxExtensionNameLen || !validUTF8NoControl(name) {
			return FieldError(name, "unknown member name is empty, too long or not printable")
		}
		if m.Extensions == nil {
			m.Extensions = make(map[string]json.RawMessage, 2)
		}
		if len(m.Extensions) >= MaxExtensions {
			return FieldError(name, "more than %d unknown members", MaxExtensions)
		}
		m.Extensions[name] = st.copyValue(raw)
	}
	return nil
}

// ParseTime reads any RFC 3339 date-time, as the timestamp member is read.
func ParseTime(s string) (time.Time, bool) { return parseTimestamp(s) }

// parseTimestamp reads any RFC 3339 date-time. RFC 3339 §5.6 allows the T
// and Z in lower case; Go's parser takes upper case only.
func parseTimestamp(s string) (time.Time, bool) {
	if len(s) > 10 && (s[10] == 't' || s[len(s)-1] == 'z') {
		b := []byte(s)
		if b[10] == 't' {
			b[10] = 'T'
		}
		if b[len(b)-1] == 'z' {
			b[len(b)-1] = 'Z'
		}
		s = string(b)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

func supportedVersion(v string) bool {
	if v == "1" {
		return true
	}
	if !strings.HasPrefix(v, "1.") || len(v) < 3 || len(v) > 8 {
		return false
	}
	return isAllDigits(v[2:])
}

// SupportedVersionHeader reports whether an X-AMTP-Version header value is one
// this gateway speaks.
func SupportedVersionHeader(v string) bool { return supportedVersion(strings.TrimSpace(v)) }

func jsonErrText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return err.Error()
}

// compactCopy returns raw without insignificant whitespace, in a fresh
// buffer (the decoder reuses its own).
func compactCopy(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return append(json.RawMessage(nil), raw...)
	}
	return buf.Bytes()
}

func stringField(name string, raw json.RawMessage) (string, error) {
	s, problem := stringValue(raw)
	if problem != "" {
		return "", FieldError(name, "%s %s", name, problem)
	}
	return s, nil
}

// stringValue decodes a JSON string member; problem says what is wrong
// with it ("" when nothing is), for callers that name the field only when
// there is an error.
func stringValue(raw json.RawMessage) (s, problem string) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", "must be a string"
	}
	// raw is always well-formed JSON here, so a string without escapes is
	// its bytes between the quotes.
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), ""
	}
	// A variable of its own: the named result would escape with &v and
	// cost an allocation on every call, escaped or not.
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", "must be a string"
	}
	if !utf8.ValidString(v) {
		return "", "is not valid UTF-8"
	}
	return v, ""
}

func parseRecipients(raw json.RawMessage, max int) ([]string, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, FieldError("recipients", "recipients must be an array of addresses")
	}
	// raw is a well-formed JSON value (from either path of Parse).
	var small [8][]byte
	list := appendArrayElements(small[:0], raw)
	if len(list) == 0 {
		return nil, FieldError("recipients", "recipients must not be empty")
	}
	// Duplicates are folded, but a list this long is abuse, not duplicates.
	if len(list) > 4*max {
		return nil, FieldError("recipients", "too many recipients (at most %d)", max).WithDetail("max", max)
	}
	out := make([]string, 0, len(list))
	seen := make(map[string]bool, len(list))
	for i, r := range list {
		// The field's name is only built for an error.
		s, problem := stringValue(r)
		if problem != "" {
			field := fmt.Sprintf("recipients[%d]", i)
			return nil, FieldError(field, "%s %s", field, problem)
		}
		a, err := ParseAddress(s)
		if err != nil {
			e, _ := AsError(err)
			return nil, Errorf(CodeInvalidRecipient, "%s", e.Message).WithDetail("field", fmt.Sprintf("recipients[%d]", i))
		}
		norm := a.stringFrom(s)
		k := KeyOf(norm)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, norm)
	}
	if len(out) > max {
		return nil, FieldError("recipients", "too many recipients (at most %d)", max).WithDetail("max", max)
	}
	return out, nil
}

func parseHeaders(raw json.RawMessage) (map[string]string, error) {
	if isJSONNull(raw) {
		return nil, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, FieldError("headers", "headers must be an object of strings")
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, FieldError("headers", "headers must be an object of strings")
	}
	if len(h) > MaxHeaders {
		return nil, FieldError("headers", "at most %d headers", MaxHeaders)
	}
	if len(h) == 0 {
		// MarshalJSON leaves an empty map out; nil keeps a re-parse equal.
		return nil, nil
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		field := "headers." + k
		if k == "" || len(k) > MaxHeaderNameLen || !isToken(k) {
			return nil, FieldError(field, "header names are 1 to %d token characters", MaxHeaderNameLen)
		}
		s, err := stringField(field, v)
		if err != nil {
			return nil, err
		}
		// CR, LF and NUL would let a header smuggle lines into the email
		// bridge or an HTTP hop.
		if len(s) > MaxHeaderValueLen || strings.ContainsAny(s, "\r\n\x00") {
			return nil, FieldError(field, "header values are at most %d bytes without CR, LF or NUL", MaxHeaderValueLen)
		}
		out[k] = s
	}
	return out, nil
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// validSchemaID is deliberately looser than the registry's grammar
// (schema.ParseID: lower case, <namespace>:<domain>.<entity>.v<N>): the
// wire format must carry ids other gateways use (upper case, '/'), and a
// gateway that validates refuses the ones it cannot parse with a 400 on
// the schema field (gateway.checkSchema). This check only keeps the member
// a short, printable token.
func validSchemaID(s string) bool {
	if s == "" || len(s) > MaxSchemaLen {
		return false
	}
	colon := strings.IndexByte(s, ':')
	if colon <= 0 || colon == len(s)-1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '-' || c == '_' || c == ':' || c == '/':
		default:
			return false
		}
	}
	return true
}

func parseAttachments(raw json.RawMessage) ([]Attachment, error) {
	if isJSONNull(raw) {
		return nil, nil
	}
	var list []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, FieldError("attachments", "attachments must be an array of objects")
	}
	if len(list) > MaxAttachments {
		return nil, FieldError("attachments", "at most %d attachments", MaxAttachments)
	}
	if len(list) == 0 {
		// MarshalJSON leaves an empty list out; nil keeps a re-parse equal.
		return nil, nil
	}
	out := make([]Attachment, 0, len(list))
	for i, r := range list {
		field := fmt.Sprintf("attachments[%d]", i)
		var a Attachment
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return nil, FieldError(field, "attachment must be an object with filename, content_type, size, hash and url: %s", jsonErrText(err))
		}
		switch {
		case a.Filename == "" || len(a.Filename) > MaxFilenameLen || !validUTF8NoControl(a.Filename) || strings.ContainsAny(a.Filename, `/\`):
			return nil, FieldError(field+".filename", "filename must be 1 to %d bytes, no path separators or control characters", MaxFilenameLen)
		case !validContentType(a.ContentType):
			return nil, FieldError(field+".content_type", "content_type must be a media type like application/pdf")
		case a.Size < 0:
			return nil, FieldError(field+".size", "size must not be negative")
		case a.Hash != "" && !validSHA256Ref(a.Hash):
			return nil, FieldError(field+".hash", "hash must be sha256: followed by 64 hex digits")
		}
		if err := validAttachmentURL(a.URL); err != nil {
			return nil, FieldError(field+".url", "%s", err.Error())
		}
		out = append(out, a)
	}
	return out, nil
}

func validContentType(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	slash := strings.IndexByte(s, '/')
	if slash <= 0 || slash == len(s)-1 {
		return false
	}
	main, sub := s[:slash], s[slash+1:]
	if semi := strings.IndexByte(sub, ';'); semi >= 0 {
		sub = strings.TrimSpace(sub[:semi])
	}
	return isToken(main) && isToken(sub) && !strings.ContainsAny(s, "\r\n")
}

func validSHA256Ref(s string) bool {
	const prefix = "sha256:"
	if !strings.HasPrefix(s, prefix) || len(s) != len(prefix)+64 {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func validAttachmentURL(s string) error {
	if s == "" || len(s) > MaxURLLen {
		return errors.New("url must be an absolute https URL of at most 2048 bytes")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return errors.New("url must be an absolute https URL without credentials")
	}
	if u.Scheme != "https" {
		return errors.New("url must use https")
	}
	return nil
}

func parseSignature(raw json.RawMessage) (*Signature, error) {
	var s Signature
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if len(raw) == 0 || raw[0] != '{' || dec.Decode(&s) != nil {
		return nil, FieldError("signature", "signature must be an object with algorithm, keyid and value")
	}
	switch s.Algorithm {
	case "RS256", "ES256", "EdDSA":
	default:
		return nil, FieldError("signature.algorithm", "signature algorithm must be RS256, ES256 or EdDSA")
	}
	if s.Value == "" || len(s.Value) > MaxSignatureValueLen || !isBase64URLish(s.Value) {
		return nil, FieldError("signature.value", "signature value must be base64url")
	}
	if len(s.KeyID) > 300 || !validUTF8NoControl(s.KeyID) {
		return nil, FieldError("signature.keyid", "keyid must be <domain>:<selector>")
	}
	return &s, nil
}

func isBase64URLish(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '+' || c == '/' || c == '=':
		default:
			return false
		}
	}
	return true
}
