package amtp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testULID  = "01H8X9Z2K3M4N5P6Q7R8S9T0AB"
	testULID2 = "01H8X9Z2K3M4N5P6Q7R8S9T1AB"
	testUUID4 = "550e8400-e29b-41d4-a716-446655440000"
	testUUID7 = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"
	testHash  = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// omit marks a member msgWith should drop from the base message.
const omit = "\x00omit"

// fieldEmpty expects details.field to be present and empty (the member's
// name was the empty string), as opposed to "" which expects no field.
const fieldEmpty = "\x00empty"

// msgWith returns the minimal valid message with members replaced, added
// (appended in the order given) or dropped (value omit). Values are raw JSON.
func msgWith(kv ...string) string {
	members := [][2]string{
		{"sender", `"agent@sender.com"`},
		{"recipients", `["agent@receiver.com"]`},
		{"payload", `{"text":"hello"}`},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		name, raw := kv[i], kv[i+1]
		found := false
		for j := range members {
			if members[j][0] == name {
				members[j][1] = raw
				found = true
			}
		}
		if !found {
			members = append(members, [2]string{name, raw})
		}
	}
	parts := make([]string, 0, len(members))
	for _, m := range members {
		if m[1] == omit {
			continue
		}
		parts = append(parts, fmt.Sprintf("%q:%s", m[0], m[1]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func addrList(n int, f func(i int) string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = quote(f(i))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func attachment(overrides ...string) string {
	members := [][2]string{
		{"filename", `"invoice.pdf"`},
		{"content_type", `"application/pdf"`},
		{"size", `1024000`},
		{"hash", quote(testHash)},
		{"url", `"https://attachments.sender.com/xyz789"`},
	}
	for i := 0; i+1 < len(overrides); i += 2 {
		found := false
		for j := range members {
			if members[j][0] == overrides[i] {
				members[j][1] = overrides[i+1]
				found = true
			}
		}
		if !found {
			members = append(members, [2]string{overrides[i], overrides[i+1]})
		}
	}
	parts := []string{}
	for _, m := range members {
		if m[1] != omit {
			parts = append(parts, fmt.Sprintf("%q:%s", m[0], m[1]))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

type badCase struct {
	name  string
	in    string
	code  Code
	field string // expected details.field; "" means there must be none
}

func badInputCases() []badCase {
	imf, ir, uv := CodeInvalidMessageFormat, CodeInvalidRecipient, CodeUnsupportedVersion
	valid := msgWith()
	manyHeaders := map[string]string{}
	for i := range MaxHeaders + 1 {
		manyHeaders[fmt.Sprintf("h%d", i)] = "v"
	}
	manyHeadersJSON, _ := json.Marshal(manyHeaders)
	manyExt := []string{}
	for i := range MaxExtensions + 1 {
		manyExt = append(manyExt, fmt.Sprintf("x-ext-%02d", i), "1")
	}
	manyAttachments := make([]string, MaxAttachments+1)
	for i := range manyAttachments {
		manyAttachments[i] = attachment()
	}

	return []badCase{
		// Not JSON, or not one JSON object.
		{"empty body", ``, imf, ""},
		{"whitespace only", " \n\t ", imf, ""},
		{"truncated", `{"sender":"agent@sender.com","recipients":[`, imf, ""},
		{"truncated after member", `{"sender":"agent@sender.com"`, imf, ""},
		{"trailing comma", `{"sender":"agent@sender.com",}`, imf, ""},
		{"single quotes", `{'sender':'agent@sender.com'}`, imf, ""},
		{"missing colon", `{"sender" "agent@sender.com"}`, imf, ""},
		{"bare word value", msgWith("payload", `hello`), imf, ""},
		{"NaN", msgWith("payload", `NaN`), imf, ""},
		{"comment in JSON", `{"sender":"agent@sender.com" /* hi */}`, imf, ""},
		{"trailing garbage", valid + `x`, imf, ""},
		{"second object", valid + `{}`, imf, ""},
		{"two messages", valid + "\n" + valid, imf, ""},
		{"bad member then broken JSON", `{"sender":5,"recipients":[`, imf, ""},
		{"top-level array", `[` + valid + `]`, imf, ""},
		{"top-level string", `"hello"`, imf, ""},
		{"top-level number", `42`, imf, ""},
		{"top-level null", `null`, imf, ""},
		{"byte order mark", "\xef\xbb\xbf" + valid, imf, ""},
		{"invalid UTF-8 in subject", msgWith("subject", "\"caf\xe9\""), imf, ""},
		{"invalid UTF-8 in payload", msgWith("payload", "{\"t\":\"\xff\xfe\"}"), imf, ""},
		{"invalid UTF-8 in member name", strings.TrimSuffix(msgWith(), "}") + ",\"x-\xc3\":1}", imf, ""},

		// Duplicate members: the second one would otherwise silently win.
		{"duplicate sender", `{"sender":"a@x.com","sender":"b@x.com","recipients":["c@x.com"],"payload":{}}`, imf, "sender"},
		{"duplicate payload", `{"sender":"a@x.com","recipients":["c@x.com"],"payload":{},"payload":{"evil":true}}`, imf, "payload"},
		{"duplicate via escape", `{"sender":"a@x.com","\u0073ender":"b@x.com","recipients":["c@x.com"],"payload":{}}`, imf, "sender"},
		{"duplicate unknown member", strings.TrimSuffix(msgWith("x-a", `1`), "}") + `,"x-a":2}`, imf, "x-a"},
		// An empty or null value reads as absent, but still counts as the member.
		{"duplicate subject, first empty", strings.TrimSuffix(msgWith("subject", `""`), "}") + `,"subject":"s"}`, imf, "subject"},
		{"duplicate message_id, second null", strings.TrimSuffix(msgWith("message_id", quote(testULID)), "}") + `,"message_id":null}`, imf, "message_id"},
		{"duplicate workflow_id, both empty", strings.TrimSuffix(msgWith("workflow_id", `""`), "}") + `,"workflow_id":""}`, imf, "workflow_id"},
		{"duplicate headers, both null", strings.TrimSuffix(msgWith("headers", `null`), "}") + `,"headers":null}`, imf, "headers"},
		{"duplicate signature, first null", `{"signature":null,"sender":"a@x.com","recipients":["c@x.com"],"payload":{},"signature":{"algorithm":"ES256","value":"abc"}}`, imf, "signature"},

		// Mandatory members.
		{"empty object", `{}`, imf, "sender"},
		{"missing sender", msgWith("sender", omit), imf, "sender"},
		{"missing recipients", msgWith("recipients", omit), imf, "recipients"},
		{"missing payload", msgWith("payload", omit), imf, "payload"},
		{"payload null", msgWith("payload", `null`), imf, "payload"},
		{"payload null with spaces", msgWith("payload", ` null `), imf, "payload"},

		// Wrong types, one per member.
		{"sender number", msgWith("sender", `5`), imf, "sender"},
		{"sender null", msgWith("sender", `null`), imf, "sender"},
		{"sender array", msgWith("sender", `["agent@sender.com"]`), imf, "sender"},
		{"sender object", msgWith("sender", `{"address":"agent@sender.com"}`), imf, "sender"},
		{"recipients string", msgWith("recipients", `"agent@receiver.com"`), imf, "recipients"},
		{"recipients object", msgWith("recipients", `{"0":"agent@receiver.com"}`), imf, "recipients"},
		{"recipients null", msgWith("recipients", `null`), imf, "recipients"},
		{"recipients empty string", msgWith("recipients", `""`), imf, "recipients"},
		{"recipients number element", msgWith("recipients", `[1]`), imf, "recipients[0]"},
		{"recipients null element", msgWith("recipients", `["a@x.com",null]`), imf, "recipients[1]"},
		{"recipients nested array", msgWith("recipients", `[["a@x.com"]]`), imf, "recipients[0]"},
		{"recipients empty", msgWith("recipients", `[]`), imf, "recipients"},
		{"version number 1", msgWith("version", `1`), imf, "version"},
		{"version number 1.0", msgWith("version", `1.0`), imf, "version"},
		{"message_id number", msgWith("message_id", `123`), imf, "message_id"},
		{"idempotency_key number", msgWith("idempotency_key", `42`), imf, "idempotency_key"},
		{"timestamp number", msgWith("timestamp", `1755167400`), imf, "timestamp"},
		{"timestamp object", msgWith("timestamp", `{"seconds":1}`), imf, "timestamp"},
		{"subject number", msgWith("subject", `5`), imf, "subject"},
		{"subject array", msgWith("subject", `["a"]`), imf, "subject"},
		{"schema number", msgWith("schema", `2`), imf, "schema"},
		{"in_reply_to number", msgWith("in_reply_to", `1`), imf, "in_reply_to"},
		{"workflow_id number", msgWith("workflow_id", `42`), imf, "workflow_id"},
		{"workflow_id object", msgWith("workflow_id", `{"id":"w"}`), imf, "workflow_id"},
		{"version false", msgWith("version", `false`), imf, "version"},
		{"subject empty array", msgWith("subject", `[]`), imf, "subject"},
		{"response_type bool", msgWith("response_type", `true`), imf, "response_type"},
		{"headers array", msgWith("headers", `[]`), imf, "headers"},
		{"headers string", msgWith("headers", `"priority: high"`), imf, "headers"},
		{"header value number", msgWith("headers", `{"priority":1}`), imf, "headers.priority"},
		{"header value null", msgWith("headers", `{"priority":null}`), imf, "headers.priority"},
		{"header value object", msgWith("headers", `{"priority":{"level":1}}`), imf, "headers.priority"},
		{"header value bool", msgWith("headers", `{"urgent":true}`), imf, "headers.urgent"},
		{"coordination string", msgWith("coordination", `"parallel"`), imf, "coordination"},
		{"coordination array", msgWith("coordination", `[]`), imf, "coordination"},
		{"attachments object", msgWith("attachments", `{}`), imf, "attachments"},
		{"attachments string", msgWith("attachments", `"invoice.pdf"`), imf, "attachments"},
		{"signature string", msgWith("signature", `"abc"`), imf, "signature"},
		{"signature array", msgWith("signature", `[]`), imf, "signature"},

		// A bad sender is a format error; a bad recipient is INVALID_RECIPIENT.
		{"sender not an address", msgWith("sender", `"agent"`), imf, "sender"},
		{"sender empty", msgWith("sender", `""`), imf, "sender"},
		{"sender display name", msgWith("sender", `"Agent <agent@sender.com>"`), imf, "sender"},
		{"sender quoted local", msgWith("sender", `"\"agent\"@sender.com"`), imf, "sender"},
		{"sender IP literal", msgWith("sender", `"agent@[10.0.0.1]"`), imf, "sender"},
		{"sender bare IP", msgWith("sender", `"agent@10.0.0.1"`), imf, "sender"},
		{"sender U-label", msgWith("sender", `"agent@bücher.de"`), imf, "sender"},
		{"sender two ats", msgWith("sender", `"a@b@sender.com"`), imf, "sender"},
		{"sender local too long", msgWith("sender", quote(strings.Repeat("a", 65)+"@x.com")), imf, "sender"},
		{"recipient not an address", msgWith("recipients", `["agent"]`), ir, "recipients[0]"},
		{"recipient display name", msgWith("recipients", `["Bob <bob@x.com>"]`), ir, "recipients[0]"},
		{"second recipient bad", msgWith("recipients", `["ok@x.com","bad@@x.com"]`), ir, "recipients[1]"},
		{"recipient empty string", msgWith("recipients", `["ok@x.com","ok2@x.com",""]`), ir, "recipients[2]"},
		{"recipient IP literal", msgWith("recipients", `["bob@[127.0.0.1]"]`), ir, "recipients[0]"},
		{"recipient bare IP", msgWith("recipients", `["bob@127.0.0.1"]`), ir, "recipients[0]"},
		{"recipient U-label", msgWith("recipients", `["bob@bücher.de"]`), ir, "recipients[0]"},
		{"recipient quoted", msgWith("recipients", `["\"bob\"@x.com"]`), ir, "recipients[0]"},
		{"recipient label too long", msgWith("recipients", "["+quote("bob@"+strings.Repeat("a", 64)+".com")+"]"), ir, "recipients[0]"},
		{"bad index after duplicates", msgWith("recipients", `["a@x.com","A@X.com","nope"]`), ir, "recipients[2]"},
		{"bad sender and bad recipient", msgWith("sender", `"nope"`, "recipients", `["nope"]`), imf, "sender"},

		// Versions.
		{"version 2.0", msgWith("version", `"2.0"`), uv, ""},
		{"version 0.9", msgWith("version", `"0.9"`), uv, ""},
		{"version 10.0", msgWith("version", `"10.0"`), uv, ""},
		{"version v1.0", msgWith("version", `"v1.0"`), uv, ""},
		{"version 1.", msgWith("version", `"1."`), uv, ""},
		{"version 1.x", msgWith("version", `"1.x"`), uv, ""},
		{"version with spaces", msgWith("version", `" 1.0"`), uv, ""},
		{"version 1.0-beta", msgWith("version", `"1.0-beta"`), uv, ""},
		{"version alone", `{"version":"2.0"}`, uv, ""},
		// Member order carries no meaning in JSON, so neither may the answer:
		// a 2.x message is told about its version even when members its own
		// format shapes differently come first.
		{"version after a v2-shaped sender", `{"sender":{"address":"a@x.com"},"recipients":"b@x.com","payload":{},"version":"2.0"}`, uv, ""},
		{"version after a bad sender", msgWith("sender", `"nope"`, "version", `"2.0"`), uv, ""},
		{"version after a bad recipient", msgWith("recipients", `["nope"]`, "version", `"3.0"`), uv, ""},

		// Recipient count.
		{"101 recipients", msgWith("recipients", addrList(101, func(i int) string { return fmt.Sprintf("r%d@x.com", i) })), imf, "recipients"},
		{"far too many duplicates", msgWith("recipients", addrList(401, func(int) string { return "same@x.com" })), imf, "recipients"},

		// message_id, in_reply_to, idempotency_key.
		{"message_id word", msgWith("message_id", `"msg-123"`), imf, "message_id"},
		{"message_id draft 24-char", msgWith("message_id", `"01H8X9Z2K3M4N5P6Q7R8S9T0"`), imf, "message_id"},
		{"message_id ULID with U", msgWith("message_id", `"01H8X9Z2K3M4N5P6Q7R8S9T0AU"`), imf, "message_id"},
		{"message_id ULID overflow", msgWith("message_id", `"81H8X9Z2K3M4N5P6Q7R8S9T0AB"`), imf, "message_id"},
		{"message_id UUID version 0", msgWith("message_id", `"919108f7-52d1-0320-9bac-f847db4148a8"`), imf, "message_id"},
		{"message_id UUID bad variant", msgWith("message_id", `"919108f7-52d1-4320-cbac-f847db4148a8"`), imf, "message_id"},
		{"message_id UUID braces", msgWith("message_id", `"{919108f7-52d1-4320-9bac-f847db4148a8}"`), imf, "message_id"},
		{"message_id UUID no dashes", msgWith("message_id", `"919108f752d143209bacf847db4148a8"`), imf, "message_id"},
		{"message_id UUID bad hex", msgWith("message_id", `"919108f7-52d1-4320-9bac-f847db4148ax"`), imf, "message_id"},
		{"in_reply_to word", msgWith("in_reply_to", `"abc"`), imf, "in_reply_to"},
		{"idempotency_key 129", msgWith("idempotency_key", quote(strings.Repeat("k", 129))), imf, "idempotency_key"},
		{"idempotency_key blank", msgWith("idempotency_key", `" "`), imf, "idempotency_key"},
		{"workflow_id 129", msgWith("workflow_id", quote(strings.Repeat("w", 129))), imf, "workflow_id"},
		{"workflow_id space", msgWith("workflow_id", `"wf 1"`), imf, "workflow_id"},
		{"workflow_id non-ASCII", msgWith("workflow_id", `"wf-é"`), imf, "workflow_id"},
		{"workflow_id control", msgWith("workflow_id", `"wf\u0000"`), imf, "workflow_id"},
		{"message_id blank", msgWith("message_id", `" "`), imf, "message_id"},
		{"idempotency_key space", msgWith("idempotency_key", `"a b"`), imf, "idempotency_key"},
		{"idempotency_key non-ASCII", msgWith("idempotency_key", `"clé"`), imf, "idempotency_key"},
		{"idempotency_key DEL", msgWith("idempotency_key", `"a\u007f"`), imf, "idempotency_key"},

		// Timestamps: unparsable is a 400, never replaced by the gateway's clock.
		{"timestamp words", msgWith("timestamp", `"yesterday"`), imf, "timestamp"},
		{"timestamp date only", msgWith("timestamp", `"2025-08-14"`), imf, "timestamp"},
		{"timestamp no offset", msgWith("timestamp", `"2025-08-14T10:30:00"`), imf, "timestamp"},
		{"timestamp no offset fraction", msgWith("timestamp", `"2025-08-14T10:30:00.000"`), imf, "timestamp"},
		{"timestamp RFC 1123", msgWith("timestamp", `"Thu, 14 Aug 2025 10:30:00 GMT"`), imf, "timestamp"},
		{"timestamp unix seconds string", msgWith("timestamp", `"1755167400"`), imf, "timestamp"},
		{"timestamp month 13", msgWith("timestamp", `"2025-13-01T00:00:00Z"`), imf, "timestamp"},
		{"timestamp February 30", msgWith("timestamp", `"2025-02-30T00:00:00Z"`), imf, "timestamp"},
		{"timestamp hour 25", msgWith("timestamp", `"2025-08-14T25:00:00Z"`), imf, "timestamp"},
		{"timestamp empty fraction", msgWith("timestamp", `"2025-08-14T10:30:00.Z"`), imf, "timestamp"},
		{"timestamp single-digit month", msgWith("timestamp", `"2025-8-14T10:30:00Z"`), imf, "timestamp"},
		{"timestamp offset without colon", msgWith("timestamp", `"2025-08-14T10:30:00+0000"`), imf, "timestamp"},
		{"timestamp trailing space", msgWith("timestamp", `"2025-08-14T10:30:00Z "`), imf, "timestamp"},
		// In range in its own offset, but not once converted to UTC: the
		// gateway could not write it back as a four-digit year.
		{"timestamp year 10000 in UTC", msgWith("timestamp", `"9999-12-31T23:59:59-01:00"`), imf, "timestamp"},
		{"timestamp year 0 in UTC", msgWith("timestamp", `"0001-01-01T00:30:00+01:00"`), imf, "timestamp"},
		{"timestamp year 0", msgWith("timestamp", `"0000-06-01T00:00:00Z"`), imf, "timestamp"},
		// The zero instant is indistinguishable from "absent" and would be
		// silently replaced by the gateway's clock.
		{"timestamp zero instant", msgWith("timestamp", `"0001-01-01T00:00:00Z"`), imf, "timestamp"},

		// subject, schema, response_type.
		{"subject newline", msgWith("subject", `"line1\nline2"`), imf, "subject"},
		{"subject CR", msgWith("subject", `"a\rb"`), imf, "subject"},
		{"subject tab", msgWith("subject", `"a\tb"`), imf, "subject"},
		{"subject NUL", msgWith("subject", `"a\u0000b"`), imf, "subject"},
		{"subject DEL", msgWith("subject", `"a\u007fb"`), imf, "subject"},
		{"subject too long", msgWith("subject", quote(strings.Repeat("s", MaxSubjectLen+1))), imf, "subject"},
		{"schema garbage", msgWith("schema", `"not a schema"`), imf, "schema"},
		{"schema no colon", msgWith("schema", `"commerce.order.v2"`), imf, "schema"},
		{"schema no namespace", msgWith("schema", `":commerce.order.v2"`), imf, "schema"},
		{"schema no name", msgWith("schema", `"agntcy:"`), imf, "schema"},
		{"schema newline", msgWith("schema", `"agntcy:x.v1\n"`), imf, "schema"},
		{"schema too long", msgWith("schema", quote("agntcy:"+strings.Repeat("x", MaxSchemaLen))), imf, "schema"},
		{"response_type unknown", msgWith("response_type", `"reply"`), imf, "response_type"},
		{"response_type wrong case", msgWith("response_type", `"Workflow_Response"`), imf, "response_type"},

		// headers.
		{"header CRLF", msgWith("headers", `{"x-note":"a\r\nBcc: eve@evil.com"}`), imf, "headers.x-note"},
		{"header LF", msgWith("headers", `{"x-note":"a\nb"}`), imf, "headers.x-note"},
		{"header CR", msgWith("headers", `{"x-note":"a\rb"}`), imf, "headers.x-note"},
		{"header NUL", msgWith("headers", `{"x-note":"a\u0000b"}`), imf, "headers.x-note"},
		{"header name with space", msgWith("headers", `{"bad name":"v"}`), imf, "headers.bad name"},
		{"header name with colon", msgWith("headers", `{"bad:name":"v"}`), imf, "headers.bad:name"},
		{"header name with newline", msgWith("headers", `{"a\nb":"v"}`), imf, "headers.a\nb"},
		{"header name empty", msgWith("headers", `{"":"v"}`), imf, "headers."},
		{"header value too long", msgWith("headers", `{"x":`+quote(strings.Repeat("v", MaxHeaderValueLen+1))+`}`), imf, "headers.x"},
		{"too many headers", msgWith("headers", string(manyHeadersJSON)), imf, "headers"},

		// attachments.
		{"attachment http url", msgWith("attachments", `[`+attachment("url", `"http://attachments.sender.com/xyz"`)+`]`), imf, "attachments[0].url"},
		{"attachment ftp url", msgWith("attachments", `[`+attachment("url", `"ftp://attachments.sender.com/xyz"`)+`]`), imf, "attachments[0].url"},
		{"attachment relative url", msgWith("attachments", `[`+attachment("url", `"/xyz"`)+`]`), imf, "attachments[0].url"},
		{"attachment url with credentials", msgWith("attachments", `[`+attachment("url", `"https://user:pw@sender.com/xyz"`)+`]`), imf, "attachments[0].url"},
		{"attachment missing url", msgWith("attachments", `[`+attachment("url", omit)+`]`), imf, "attachments[0].url"},
		{"attachment draft placeholder hash", msgWith("attachments", `[`+attachment("hash", `"sha256:abc123..."`)+`]`), imf, "attachments[0].hash"},
		{"attachment md5 hash", msgWith("attachments", `[`+attachment("hash", `"md5:d41d8cd98f00b204e9800998ecf8427e"`)+`]`), imf, "attachments[0].hash"},
		{"attachment hash not hex", msgWith("attachments", `[`+attachment("hash", quote("sha256:"+strings.Repeat("g", 64)))+`]`), imf, "attachments[0].hash"},
		{"attachment negative size", msgWith("attachments", `[`+attachment("size", `-1`)+`]`), imf, "attachments[0].size"},
		{"attachment size string", msgWith("attachments", `[`+attachment("size", `"1024"`)+`]`), imf, "attachments[0]"},
		{"attachment size fraction", msgWith("attachments", `[`+attachment("size", `1.5`)+`]`), imf, "attachments[0]"},
		{"attachment path in filename", msgWith("attachments", `[`+attachment("filename", `"../../etc/passwd"`)+`]`), imf, "attachments[0].filename"},
		{"attachment backslash in filename", msgWith("attachments", `[`+attachment("filename", `"C:\\temp\\x.pdf"`)+`]`), imf, "attachments[0].filename"},
		{"attachment empty filename", msgWith("attachments", `[`+attachment("filename", `""`)+`]`), imf, "attachments[0].filename"},
		{"attachment newline in filename", msgWith("attachments", `[`+attachment("filename", `"a\nb.pdf"`)+`]`), imf, "attachments[0].filename"},
		{"attachment bad content_type", msgWith("attachments", `[`+attachment("content_type", `"pdf"`)+`]`), imf, "attachments[0].content_type"},
		{"attachment unknown member", msgWith("attachments", `[`+attachment("password", `"hunter2"`)+`]`), imf, "attachments[0]"},
		{"attachment not an object", msgWith("attachments", `[1]`), imf, "attachments[0]"},
		{"second attachment bad", msgWith("attachments", `[`+attachment()+`,`+attachment("url", `"http://x.com/y"`)+`]`), imf, "attachments[1].url"},
		{"too many attachments", msgWith("attachments", `[`+strings.Join(manyAttachments, ",")+`]`), imf, "attachments"},

		// signature.
		{"signature HS256", msgWith("signature", `{"algorithm":"HS256","value":"abc"}`), imf, "signature.algorithm"},
		{"signature none", msgWith("signature", `{"algorithm":"none","value":"abc"}`), imf, "signature.algorithm"},
		{"signature lower-case alg", msgWith("signature", `{"algorithm":"rs256","value":"abc"}`), imf, "signature.algorithm"},
		{"signature missing algorithm", msgWith("signature", `{"value":"abc"}`), imf, "signature.algorithm"},
		{"signature empty value", msgWith("signature", `{"algorithm":"RS256","value":""}`), imf, "signature.value"},
		{"signature value not base64", msgWith("signature", `{"algorithm":"ES256","value":"not base64!"}`), imf, "signature.value"},
		{"signature keyid newline", msgWith("signature", `{"algorithm":"EdDSA","keyid":"x.com:k\n1","value":"abc"}`), imf, "signature.keyid"},
		{"signature unknown member", msgWith("signature", `{"algorithm":"RS256","value":"abc","extra":1}`), imf, "signature"},

		// coordination.
		{"coordination bad type", msgWith("coordination", `{"type":"broadcast"}`), imf, "coordination.type"},
		{"coordination missing type", msgWith("coordination", `{"timeout":30}`), imf, "coordination.type"},
		{"coordination type number", msgWith("coordination", `{"type":1}`), imf, "coordination"},
		{"coordination negative timeout", msgWith("coordination", `{"type":"parallel","timeout":-1}`), imf, "coordination.timeout"},
		{"coordination timeout over 7 days", msgWith("coordination", fmt.Sprintf(`{"type":"parallel","timeout":%d}`, MaxCoordinationTimeout+1)), imf, "coordination.timeout"},
		{"coordination timeout string", msgWith("coordination", `{"type":"parallel","timeout":"30"}`), imf, "coordination"},
		{"coordination bad required address", msgWith("coordination", `{"type":"parallel","required_responses":["Bob <bob@x.com>"]}`), ir, "coordination.required_responses[0]"},
		{"coordination bad optional address", msgWith("coordination", `{"type":"parallel","optional_responses":["ok@x.com","nope"]}`), ir, "coordination.optional_responses[1]"},
		{"coordination required not a list", msgWith("coordination", `{"type":"parallel","required_responses":"a@x.com"}`), imf, "coordination"},
		{"coordination too many required", msgWith("coordination", `{"type":"parallel","required_responses":`+addrList(101, func(i int) string { return fmt.Sprintf("r%d@x.com", i) })+`}`), imf, "coordination.required_responses"},
		{"sequential without sequence", msgWith("coordination", `{"type":"sequential","timeout":60}`), imf, "coordination.sequence"},
		{"sequential empty sequence", msgWith("coordination", `{"type":"sequential","sequence":[]}`), imf, "coordination.sequence"},
		{"sequential bad address", msgWith("coordination", `{"type":"sequential","sequence":["a@x.com","b@127.0.0.1"]}`), ir, "coordination.sequence[1]"},
		{"conditional without conditions", msgWith("coordination", `{"type":"conditional"}`), imf, "coordination.conditions"},
		{"conditional without if", msgWith("coordination", `{"type":"conditional","conditions":[{"then":["a@x.com"]}]}`), imf, "coordination.conditions[0].if"},
		{"conditional null if", msgWith("coordination", `{"type":"conditional","conditions":[{"if":null,"then":["a@x.com"]}]}`), imf, "coordination.conditions[0].if"},
		{"conditional bad then", msgWith("coordination", `{"type":"conditional","conditions":[{"if":"a@x.com responds with ok=true","then":["nope"]}]}`), ir, "coordination.conditions[0].then[0]"},
		{"conditional bad else", msgWith("coordination", `{"type":"conditional","conditions":[{"if":"x","then":["a@x.com"]},{"if":"y","else":["a@x.com","@x.com"]}]}`), ir, "coordination.conditions[1].else[1]"},
		{"coordination oversized", msgWith("coordination", `{"type":"parallel","pad":"`+strings.Repeat("p", MaxCoordinationBytes)+`"}`), imf, "coordination"},

		// Unknown members are kept, within bounds.
		{"too many unknown members", msgWith(manyExt...), imf, fmt.Sprintf("x-ext-%02d", MaxExtensions)},
		{"unknown member name too long", msgWith(strings.Repeat("x", MaxExtensionNameLen+1), `1`), imf, strings.Repeat("x", MaxExtensionNameLen+1)},
		{"unknown member name with newline", msgWith("x\ny", `1`), imf, "x\ny"},
		{"empty member name", msgWith("", `1`), imf, fieldEmpty},
	}
}

func TestParseBadInput(t *testing.T) {
	for _, tc := range badInputCases() {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.in), Limits{})
			require.Error(t, err, "input: %s", tc.in)
			assert.Nil(t, m)
			e, ok := AsError(err)
			require.True(t, ok, "error is %T, want *Error", err)
			assert.Equal(t, tc.code, e.Code, "message: %s", e.Message)
			assert.True(t, e.Code.Known(), "code %s", e.Code)
			assert.NotEmpty(t, e.Message)
			field, hasField := e.Details["field"]
			switch tc.field {
			case "":
				assert.False(t, hasField, "unexpected details.field %v", field)
			case fieldEmpty:
				assert.True(t, hasField)
				assert.Equal(t, "", field)
			default:
				assert.Equal(t, tc.field, field)
			}
			if tc.code == CodeUnsupportedVersion {
				assert.Equal(t, []string{"1.0"}, e.Details["supported"])
			}
		})
	}
}

// Draft examples (README §4.1, §7, §12.1.1, Appendix A) with the draft's
// placeholders made real: its 24-character "ULIDs" get the two characters a
// ULID has, its "sha256:abc123..." a real digest, its "// comment" payload {}.
const (
	draftSection4 = `{
  "version": "1.0",
  "message_id": "` + testULID + `",
  "idempotency_key": "uuid-v4-string",
  "timestamp": "2025-08-14T10:30:00.000Z",
  "sender": "agent@sender.com",
  "recipients": ["agent1@receiver.com", "agent2@partner.com"],
  "subject": "Purchase Order Confirmation",
  "schema": "agntcy:commerce.order.v2",
  "coordination": {
    "type": "parallel",
    "timeout": 3600,
    "required_responses": ["agent1@receiver.com"]
  },
  "headers": {
    "priority": "normal",
    "reply-to": "agent@sender.com",
    "custom-header": "custom-value"
  },
  "payload": {},
  "attachments": [
    {
      "filename": "invoice.pdf",
      "content_type": "application/pdf",
      "size": 1024000,
      "hash": "` + testHash + `",
      "url": "https://attachments.sender.com/xyz789"
    }
  ],
  "signature": {
    "algorithm": "RS256",
    "keyid": "sender.com:key1",
    "value": "base64-encoded-signature"
  }
}`
	draftA1 = `{
  "version": "1.0",
  "message_id": "` + testULID + `",
  "idempotency_key": "550e8400-e29b-41d4-a716-446655440000",
  "timestamp": "2025-08-14T10:30:00.000Z",
  "sender": "assistant@company.com",
  "recipients": ["customer-service@client.com"],
  "subject": "Simple Notification",
  "payload": {
    "message": "Hello, this is a simple AMTP message",
    "timestamp": "2025-08-14T10:30:00.000Z"
  }
}`
	draftA3 = `{
  "version": "1.0",
  "message_id": "` + testULID + `",
  "idempotency_key": "550e8400-e29b-41d4-a716-446655440002",
  "timestamp": "2025-08-14T12:00:00.000Z",
  "sender": "orchestrator@logistics.com",
  "recipients": [
    "warehouse@supplier.com",
    "shipping@carrier.com",
    "tracking@delivery.com"
  ],
  "subject": "Coordinate Shipment SHIP-789",
  "schema": "agntcy:logistics.shipment.v1",
  "coordination": {
    "type": "sequential",
    "timeout": 7200,
    "sequence": ["warehouse@supplier.com", "shipping@carrier.com", "tracking@delivery.com"],
    "stop_on_failure": true,
    "required_responses": ["warehouse@supplier.com", "shipping@carrier.com"]
  },
  "payload": {"shipment_id": "SHIP-789", "items": [{"sku": "WIDGET-001", "quantity": 100, "weight_kg": 50.0}]}
}`
	draftA4 = `{
  "version": "1.0",
  "message_id": "` + testULID2 + `",
  "idempotency_key": "550e8400-e29b-41d4-a716-446655440003",
  "timestamp": "2025-08-14T12:15:00.000Z",
  "sender": "warehouse@supplier.com",
  "recipients": ["orchestrator@logistics.com"],
  "subject": "Re: Coordinate Shipment SHIP-789",
  "in_reply_to": "` + testULID + `",
  "response_type": "workflow_response",
  "schema": "agntcy:logistics.pickup_confirmation.v1",
  "payload": {"shipment_id": "SHIP-789", "status": "confirmed"}
}`
	draftSendRequest = `{
  "sender": "agent@sender.com",
  "recipients": ["agent@receiver.com"],
  "subject": "Test Message",
  "schema": "agntcy:test.message.v1",
  "payload": {
    "text": "Hello, World!"
  }
}`
	draftConditional = `{
  "sender": "agent@sender.com",
  "recipients": ["approval@manager.com", "execute@system.com", "reject@system.com"],
  "coordination": {
    "type": "conditional",
    "timeout": 1800,
    "conditions": [
      {
        "if": "approval@manager.com responds with approve=true",
        "then": ["execute@system.com"],
        "else": ["reject@system.com"]
      },
      {
        "if": {"participant": "approval@manager.com", "path": "amount", "op": ">", "value": 100},
        "then": ["execute@system.com"]
      }
    ]
  },
  "payload": {"amount": 250}
}`
	draftParallel = `{
  "sender": "agent@sender.com",
  "recipients": ["critical@agent.com", "notify@agent.com"],
  "coordination": {
    "type": "parallel",
    "timeout": 3600,
    "required_responses": ["critical@agent.com"],
    "optional_responses": ["notify@agent.com"]
  },
  "payload": {"task": "review"}
}`
)

func mustParse(t *testing.T, raw string) *Message {
	t.Helper()
	m, err := Parse([]byte(raw), Limits{})
	require.NoError(t, err, "input: %s", raw)
	require.NotNil(t, m)
	return m
}

func TestParseGoodInput(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, m *Message)
	}{
		{"minimal client submission", msgWith(), func(t *testing.T, m *Message) {
			assert.Equal(t, "", m.Version, "absent until Complete")
			assert.Equal(t, "", m.MessageID)
			assert.Equal(t, "", m.IdempotencyKey)
			assert.True(t, m.Timestamp.IsZero())
			assert.Equal(t, "agent@sender.com", m.Sender)
			assert.Equal(t, []string{"agent@receiver.com"}, m.Recipients)
			assert.JSONEq(t, `{"text":"hello"}`, string(m.Payload))
			assert.Nil(t, m.Headers)
			assert.Nil(t, m.Attachments)
			assert.Nil(t, m.Signature)
			assert.Nil(t, m.Coordination)
			assert.Nil(t, m.Extensions)
		}},
		{"members in any order", `{"payload":[1,2],"recipients":["b@x.com"],"version":"1.0","sender":"a@x.com"}`, func(t *testing.T, m *Message) {
			assert.Equal(t, "1.0", m.Version)
			assert.Equal(t, "a@x.com", m.Sender)
			assert.Equal(t, `[1,2]`, string(m.Payload))
		}},
		{"payload scalar", msgWith("payload", `"just text"`), func(t *testing.T, m *Message) {
			assert.Equal(t, `"just text"`, string(m.Payload))
		}},
		{"payload empty object", msgWith("payload", `{}`), func(t *testing.T, m *Message) {
			assert.Equal(t, `{}`, string(m.Payload))
		}},
		{"payload false", msgWith("payload", `false`), func(t *testing.T, m *Message) {
			assert.Equal(t, `false`, string(m.Payload))
		}},
		{"payload compacted, content untouched", msgWith("payload", "{ \"a\" : [ 1 , 2.50 ] ,\n \"b\":\"<x>&\" }"), func(t *testing.T, m *Message) {
			assert.Equal(t, `{"a":[1,2.50],"b":"<x>&"}`, string(m.Payload))
		}},
		{"draft §4.1 full message", draftSection4, func(t *testing.T, m *Message) {
			assert.Equal(t, "1.0", m.Version)
			assert.Equal(t, testULID, m.MessageID)
			assert.Equal(t, "uuid-v4-string", m.IdempotencyKey)
			assert.Equal(t, time.Date(2025, 8, 14, 10, 30, 0, 0, time.UTC), m.Timestamp)
			assert.Equal(t, []string{"agent1@receiver.com", "agent2@partner.com"}, m.Recipients)
			assert.Equal(t, "Purchase Order Confirmation", m.Subject)
			assert.Equal(t, "agntcy:commerce.order.v2", m.Schema)
			assert.Equal(t, map[string]string{"priority": "normal", "reply-to": "agent@sender.com", "custom-header": "custom-value"}, m.Headers)
			assert.JSONEq(t, `{"type":"parallel","timeout":3600,"required_responses":["agent1@receiver.com"]}`, string(m.Coordination))
			require.Len(t, m.Attachments, 1)
			assert.Equal(t, Attachment{Filename: "invoice.pdf", ContentType: "application/pdf", Size: 1024000, Hash: testHash, URL: "https://attachments.sender.com/xyz789"}, m.Attachments[0])
			assert.Equal(t, &Signature{Algorithm: "RS256", KeyID: "sender.com:key1", Value: "base64-encoded-signature"}, m.Signature)
		}},
		{"draft A.1 simple", draftA1, func(t *testing.T, m *Message) {
			assert.Equal(t, "assistant@company.com", m.Sender)
			assert.Equal(t, testUUID4, m.IdempotencyKey)
		}},
		{"draft A.3 sequential", draftA3, func(t *testing.T, m *Message) {
			c, err := ParseCoordination(m.Coordination)
			require.NoError(t, err)
			assert.Equal(t, CoordinationSequential, c.Type)
			assert.Equal(t, int64(7200), c.Timeout)
			assert.True(t, c.StopOnFailure)
			assert.Equal(t, []string{"warehouse@supplier.com", "shipping@carrier.com", "tracking@delivery.com"}, c.Sequence)
			assert.Contains(t, string(m.Payload), `"weight_kg":50.0`, "numbers are kept as written")
		}},
		{"draft A.4 workflow response", draftA4, func(t *testing.T, m *Message) {
			assert.Equal(t, testULID, m.InReplyTo)
			assert.Equal(t, ResponseWorkflowResponse, m.ResponseType)
			assert.Equal(t, "agntcy:logistics.pickup_confirmation.v1", m.Schema)
		}},
		{"draft §12.1.1 send request", draftSendRequest, func(t *testing.T, m *Message) {
			assert.Equal(t, "Test Message", m.Subject)
			assert.Equal(t, "", m.MessageID)
		}},
		{"draft §7.1.1 parallel", draftParallel, func(t *testing.T, m *Message) {
			c, err := ParseCoordination(m.Coordination)
			require.NoError(t, err)
			assert.Equal(t, []string{"critical@agent.com"}, c.RequiredResponses)
			assert.Equal(t, []string{"notify@agent.com"}, c.OptionalResponses)
		}},
		{"draft §7.1.3 conditional, both if forms", draftConditional, func(t *testing.T, m *Message) {
			c, err := ParseCoordination(m.Coordination)
			require.NoError(t, err)
			require.Len(t, c.Conditions, 2)
			assert.Equal(t, `"approval@manager.com responds with approve=true"`, string(c.Conditions[0].If))
			assert.JSONEq(t, `{"participant":"approval@manager.com","path":"amount","op":">","value":100}`, string(c.Conditions[1].If))
			assert.Equal(t, []string{"reject@system.com"}, c.Conditions[0].Else)
		}},

		// version
		{"version 1.0", msgWith("version", `"1.0"`), func(t *testing.T, m *Message) { assert.Equal(t, "1.0", m.Version) }},
		{"version 1.1", msgWith("version", `"1.1"`), func(t *testing.T, m *Message) { assert.Equal(t, "1.1", m.Version) }},
		{"version 1.10", msgWith("version", `"1.10"`), func(t *testing.T, m *Message) { assert.Equal(t, "1.10", m.Version) }},
		{"version 1", msgWith("version", `"1"`), func(t *testing.T, m *Message) { assert.Equal(t, "1", m.Version) }},

		// ids
		{"message_id UUIDv7", msgWith("message_id", quote(testUUID7)), func(t *testing.T, m *Message) { assert.Equal(t, testUUID7, m.MessageID) }},
		{"message_id UUIDv4", msgWith("message_id", quote(testUUID4)), func(t *testing.T, m *Message) { assert.Equal(t, testUUID4, m.MessageID) }},
		{"message_id upper-case UUID stored lower-case", msgWith("message_id", `"017F22E2-79B0-7CC3-98C4-DC0C0C07398F"`), func(t *testing.T, m *Message) {
			assert.Equal(t, testUUID7, m.MessageID, "compared case-insensitively")
		}},
		{"message_id nil UUID", msgWith("message_id", `"00000000-0000-0000-0000-000000000000"`), func(t *testing.T, m *Message) {
			assert.Equal(t, "00000000-0000-0000-0000-000000000000", m.MessageID)
		}},
		{"message_id lower-case ULID stored upper-case", msgWith("message_id", `"01arz3ndektsv4rrffq69g5fav"`), func(t *testing.T, m *Message) {
			assert.Equal(t, "01ARZ3NDEKTSV4RRFFQ69G5FAV", m.MessageID, "the canonical Crockford form")
		}},
		{"in_reply_to upper-case UUID stored lower-case", msgWith("in_reply_to", `"017F22E2-79B0-7CC3-98C4-DC0C0C07398F"`), func(t *testing.T, m *Message) {
			assert.Equal(t, testUUID7, m.InReplyTo)
		}},
		{"in_reply_to lower-case ULID stored upper-case", msgWith("in_reply_to", quote(strings.ToLower(testULID))), func(t *testing.T, m *Message) {
			assert.Equal(t, testULID, m.InReplyTo)
		}},
		{"workflow_id ULID", msgWith("workflow_id", quote(testULID)), func(t *testing.T, m *Message) {
			assert.Equal(t, testULID, m.WorkflowID)
			assert.Nil(t, m.Extensions, "a known member, not an extension")
		}},
		{"workflow_id lower-case ULID stored upper-case", msgWith("workflow_id", quote(strings.ToLower(testULID))), func(t *testing.T, m *Message) {
			assert.Equal(t, testULID, m.WorkflowID)
		}},
		{"workflow_id upper-case UUID stored lower-case", msgWith("workflow_id", `"017F22E2-79B0-7CC3-98C4-DC0C0C07398F"`, "in_reply_to", quote(testULID), "response_type", `"workflow_response"`), func(t *testing.T, m *Message) {
			assert.Equal(t, testUUID7, m.WorkflowID)
			assert.Equal(t, testULID, m.InReplyTo)
		}},
		{"workflow_id another gateway's id kept as written", msgWith("workflow_id", `"WF:Order/42"`), func(t *testing.T, m *Message) {
			assert.Equal(t, "WF:Order/42", m.WorkflowID)
		}},
		{"workflow_id 128 visible chars", msgWith("workflow_id", quote(strings.Repeat("~", 128))), func(t *testing.T, m *Message) {
			assert.Len(t, m.WorkflowID, 128)
		}},
		{"workflow_id escaped", msgWith("workflow_id", `"wf\u002d1"`), func(t *testing.T, m *Message) {
			assert.Equal(t, "wf-1", m.WorkflowID)
		}},
		{"in_reply_to UUID", msgWith("in_reply_to", quote(testUUID7), "response_type", `"workflow_error"`), func(t *testing.T, m *Message) {
			assert.Equal(t, testUUID7, m.InReplyTo)
			assert.Equal(t, ResponseWorkflowError, m.ResponseType)
		}},
		{"response_type workflow_result", msgWith("response_type", `"workflow_result"`), func(t *testing.T, m *Message) {
			assert.Equal(t, ResponseWorkflowResult, m.ResponseType)
		}},
		{"idempotency_key 128 visible chars", msgWith("idempotency_key", quote(strings.Repeat("~", 128))), func(t *testing.T, m *Message) {
			assert.Len(t, m.IdempotencyKey, 128)
		}},
		{"idempotency_key 1 char", msgWith("idempotency_key", `"!"`), func(t *testing.T, m *Message) {
			assert.Equal(t, "!", m.IdempotencyKey)
		}},

		// addresses
		{"upper-case domains lower-cased", msgWith("sender", `"Agent.Smith@Sender.COM"`, "recipients", `["Bob@Receiver.COM"]`), func(t *testing.T, m *Message) {
			assert.Equal(t, "Agent.Smith@sender.com", m.Sender)
			assert.Equal(t, []string{"Bob@receiver.com"}, m.Recipients)
			assert.Equal(t, "agent.smith@sender.com", m.SenderAddress().Key())
		}},
		{"recipients de-duplicated after normalisation", msgWith("recipients", `["Bob@Example.COM","carol@x.com","bob@example.com","BOB@EXAMPLE.com","carol@X.COM","dave@x.com"]`), func(t *testing.T, m *Message) {
			assert.Equal(t, []string{"Bob@example.com", "carol@x.com", "dave@x.com"}, m.Recipients, "first spelling wins, order kept")
		}},
		{"100 recipients", msgWith("recipients", addrList(100, func(i int) string { return fmt.Sprintf("r%d@x.com", i) })), func(t *testing.T, m *Message) {
			assert.Len(t, m.Recipients, 100)
		}},
		{"101 entries folding to 100", msgWith("recipients", addrList(101, func(i int) string { return fmt.Sprintf("r%d@x.com", i%100) })), func(t *testing.T, m *Message) {
			assert.Len(t, m.Recipients, 100)
		}},
		{"150 entries folding to 3", msgWith("recipients", addrList(150, func(i int) string { return fmt.Sprintf("R%d@X.com", i%3) })), func(t *testing.T, m *Message) {
			assert.Equal(t, []string{"R0@x.com", "R1@x.com", "R2@x.com"}, m.Recipients)
		}},
		{"A-label domain", msgWith("recipients", `["bob@xn--bcher-kva.de"]`), func(t *testing.T, m *Message) {
			assert.Equal(t, []string{"bob@xn--bcher-kva.de"}, m.Recipients)
		}},
		{"escaped recipient", msgWith("recipients", `["b\u006fb@x.com"]`), func(t *testing.T, m *Message) {
			assert.Equal(t, []string{"bob@x.com"}, m.Recipients)
		}},

		// timestamps: any RFC 3339 form, stored as UTC milliseconds
		{"timestamp Z millis", msgWith("timestamp", `"2025-08-14T10:30:00.123Z"`), wantTime("2025-08-14T10:30:00.123Z")},
		{"timestamp +00:00", msgWith("timestamp", `"2025-08-14T10:30:00+00:00"`), wantTime("2025-08-14T10:30:00.000Z")},
		{"timestamp microseconds +00:00 (Python isoformat)", msgWith("timestamp", `"2025-08-14T10:30:00.123456+00:00"`), wantTime("2025-08-14T10:30:00.123Z")},
		{"timestamp nanoseconds truncated", msgWith("timestamp", `"2025-08-14T10:30:00.999999999Z"`), wantTime("2025-08-14T10:30:00.999Z")},
		{"timestamp one fraction digit", msgWith("timestamp", `"2025-08-14T10:30:00.5Z"`), wantTime("2025-08-14T10:30:00.500Z")},
		{"timestamp positive offset", msgWith("timestamp", `"2025-08-14T12:30:00.250+02:00"`), wantTime("2025-08-14T10:30:00.250Z")},
		{"timestamp negative offset crossing midnight", msgWith("timestamp", `"2025-08-13T20:00:00-05:30"`), wantTime("2025-08-14T01:30:00.000Z")},
		{"timestamp -00:00", msgWith("timestamp", `"2025-08-14T10:30:00-00:00"`), wantTime("2025-08-14T10:30:00.000Z")},
		{"timestamp lower-case t and z", msgWith("timestamp", `"2025-08-14t10:30:00.1z"`), wantTime("2025-08-14T10:30:00.100Z")},
		{"timestamp lower-case t with offset", msgWith("timestamp", `"2025-08-14t10:30:00+01:00"`), wantTime("2025-08-14T09:30:00.000Z")},
		{"timestamp leap day", msgWith("timestamp", `"2024-02-29T23:59:59.999Z"`), wantTime("2024-02-29T23:59:59.999Z")},
		{"timestamp year 9999 in UTC", msgWith("timestamp", `"9999-12-31T23:59:59+01:00"`), wantTime("9999-12-31T22:59:59.000Z")},

		// optional members
		{"subject unicode", msgWith("subject", `"Bestellung für Müller ✓"`), func(t *testing.T, m *Message) {
			assert.Equal(t, "Bestellung für Müller ✓", m.Subject)
		}},
		{"subject at limit", msgWith("subject", quote(strings.Repeat("s", MaxSubjectLen))), func(t *testing.T, m *Message) {
			assert.Len(t, m.Subject, MaxSubjectLen)
		}},
		{"empty subject", msgWith("subject", `""`), func(t *testing.T, m *Message) { assert.Equal(t, "", m.Subject) }},
		{"headers", msgWith("headers", `{"priority":"high","X-Trace":"a\tb","empty":""}`), func(t *testing.T, m *Message) {
			assert.Equal(t, map[string]string{"priority": "high", "X-Trace": "a\tb", "empty": ""}, m.Headers)
		}},
		{"headers null", msgWith("headers", `null`), func(t *testing.T, m *Message) { assert.Nil(t, m.Headers) }},
		{"headers empty", msgWith("headers", `{}`), func(t *testing.T, m *Message) { assert.Nil(t, m.Headers) }},
		{"attachments empty", msgWith("attachments", `[]`), func(t *testing.T, m *Message) { assert.Nil(t, m.Attachments) }},
		{"attachments null", msgWith("attachments", `null`), func(t *testing.T, m *Message) { assert.Nil(t, m.Attachments) }},
		{"attachment without hash, zero size, params", msgWith("attachments", `[`+attachment("hash", omit, "size", `0`, "content_type", `"text/plain; charset=utf-8"`)+`]`), func(t *testing.T, m *Message) {
			require.Len(t, m.Attachments, 1)
			assert.Equal(t, "", m.Attachments[0].Hash)
			assert.Equal(t, int64(0), m.Attachments[0].Size)
			assert.Equal(t, "text/plain; charset=utf-8", m.Attachments[0].ContentType)
		}},
		{"coordination null", msgWith("coordination", `null`), func(t *testing.T, m *Message) { assert.Nil(t, m.Coordination) }},
		{"coordination unknown members tolerated", msgWith("coordination", `{"type":"parallel","workflow_id":"x","future":{"a":1}}`), func(t *testing.T, m *Message) {
			assert.Equal(t, `{"type":"parallel","workflow_id":"x","future":{"a":1}}`, string(m.Coordination))
		}},
		{"signature null", msgWith("signature", `null`), func(t *testing.T, m *Message) { assert.Nil(t, m.Signature) }},
		{"signature ES256 no keyid", msgWith("signature", `{"algorithm":"ES256","value":"YWJj_-=="}`), func(t *testing.T, m *Message) {
			assert.Equal(t, &Signature{Algorithm: "ES256", Value: "YWJj_-=="}, m.Signature)
		}},
		{"signature EdDSA", msgWith("signature", `{"algorithm":"EdDSA","keyid":"x.com:s1","value":"abc"}`), func(t *testing.T, m *Message) {
			assert.Equal(t, "EdDSA", m.Signature.Algorithm)
		}},
		{"unknown members kept", msgWith("thread_id", `"01H8X9Z2K3M4N5P6Q7R8S9T0AB"`, "x-trace", `{ "span" : [1, 2] }`, "nothing", `null`, "blank", `""`), func(t *testing.T, m *Message) {
			assert.Equal(t, map[string]json.RawMessage{
				"thread_id": json.RawMessage(`"01H8X9Z2K3M4N5P6Q7R8S9T0AB"`),
				"x-trace":   json.RawMessage(`{"span":[1,2]}`),
				"nothing":   json.RawMessage(`null`),
				"blank":     json.RawMessage(`""`),
			}, m.Extensions, "only known optional members read null and \"\" as absent")
		}},
		{"member names are case-sensitive", msgWith("Sender", `"eve@evil.com"`), func(t *testing.T, m *Message) {
			assert.Equal(t, "agent@sender.com", m.Sender)
			assert.Equal(t, json.RawMessage(`"eve@evil.com"`), m.Extensions["Sender"])
		}},
		{"surrounding whitespace", "\n\t " + msgWith() + " \r\n", func(t *testing.T, m *Message) {
			assert.Equal(t, "agent@sender.com", m.Sender)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, tc.in)
			tc.check(t, m)
			assertRoundTrip(t, m)
		})
	}
}

// absentSpellings are the ways other implementations write an optional
// member they have no value for, by member: each must parse exactly as if
// the member were left out.
func absentSpellings() map[string][]string {
	str := []string{`""`, `null`, ` null `}
	return map[string][]string{
		"version":         str,
		"message_id":      str,
		"idempotency_key": str,
		"timestamp":       str,
		"subject":         str,
		"schema":          str,
		"in_reply_to":     str,
		"response_type":   str,
		"workflow_id":     str,
		"headers":         {`null`, `{}`, `{ }`},
		"coordination":    {`null`},
		"attachments":     {`null`, `[]`, `[ ]`},
		"signature":       {`null`},
	}
}

// serialisedEverything is a message as gateways that serialise every field
// write it.
const serialisedEverything = `{"version":"1.0","message_id":"` + testUUID7 + `","idempotency_key":"","timestamp":null,` +
	`"sender":"a@x.test","recipients":["b@y.test"],"subject":"","schema":"","in_reply_to":"","workflow_id":null,"response_type":"",` +
	`"headers":null,"coordination":null,"attachments":null,"signature":null,"payload":{"amount":12.5,"items":[]}}`

// TestParseAbsentOptionalMembers: an optional member whose value is "" or
// null (headers {} and attachments [] too) is treated exactly as if it
// were absent, by both paths of Parse.
func TestParseAbsentOptionalMembers(t *testing.T) {
	want := mustParse(t, msgWith())
	for member, spellings := range absentSpellings() {
		for _, v := range spellings {
			t.Run(member+"="+v, func(t *testing.T) {
				for _, in := range []string{msgWith(member, v), "{\n" + quote(member) + " : " + v + ",\n" + strings.TrimPrefix(msgWith(), "{")} {
					got, err := Parse([]byte(in), Limits{})
					require.NoError(t, err, in)
					assert.Equal(t, want, got, in)
					slow, err := parseDecoder([]byte(in), Limits{})
					require.NoError(t, err, in)
					assert.Equal(t, want, slow, in)
					assert.Equal(t, string(want.AppendContentDigestInput(nil)), string(got.AppendContentDigestInput(nil)))
				}
			})
		}
	}

	t.Run("every field serialised", func(t *testing.T) {
		m := mustParse(t, serialisedEverything)
		assert.Equal(t, &Message{
			Version:    "1.0",
			MessageID:  testUUID7,
			Sender:     "a@x.test",
			Recipients: []string{"b@y.test"},
			Payload:    json.RawMessage(`{"amount":12.5,"items":[]}`),
		}, m)
		assertRoundTrip(t, m)
		m.Complete(time.Now())
		assert.Equal(t, Version, m.Version)
		assert.NotEmpty(t, m.IdempotencyKey, "generated, as for an absent key")
		assert.False(t, m.Timestamp.IsZero(), "set by the gateway, as for an absent timestamp")
	})
	t.Run("empty version is 1.0", func(t *testing.T) {
		m := mustParse(t, msgWith("version", `""`))
		m.Complete(time.Now())
		assert.Equal(t, Version, m.Version)
	})
}

func wantTime(want string) func(t *testing.T, m *Message) {
	return func(t *testing.T, m *Message) {
		t.Helper()
		assert.Equal(t, want, FormatTime(m.Timestamp))
		assert.Equal(t, time.UTC, m.Timestamp.Location())
		assert.Zero(t, m.Timestamp.Nanosecond()%int(time.Millisecond), "stored with millisecond precision")
		out, err := m.MarshalJSON()
		require.NoError(t, err)
		assert.Contains(t, string(out), `"timestamp":"`+want+`"`)
	}
}

// assertRoundTrip checks that a parsed message, once completed, is written
// as JSON that encoding/json reads and that Parse turns back into the same
// message.
func assertRoundTrip(t *testing.T, m *Message) {
	t.Helper()
	c := *m
	c.Complete(time.Date(2025, 1, 2, 3, 4, 5, 678_000_000, time.UTC))
	out, err := c.MarshalJSON()
	require.NoError(t, err)
	require.True(t, json.Valid(out), "not JSON: %s", out)
	var generic map[string]any
	require.NoError(t, json.Unmarshal(out, &generic), "%s", out)
	for _, k := range []string{"version", "message_id", "idempotency_key", "timestamp", "sender", "recipients", "payload"} {
		assert.Contains(t, generic, k)
	}
	back, err := Parse(out, Limits{})
	require.NoError(t, err, "re-parse of %s", out)
	assert.Equal(t, &c, back)
	again, err := back.MarshalJSON()
	require.NoError(t, err)
	assert.Equal(t, string(out), string(again), "MarshalJSON is stable")
}

func TestParseRoundTripDraftExamples(t *testing.T) {
	for name, raw := range map[string]string{
		"§4.1": draftSection4, "A.1": draftA1, "A.3": draftA3, "A.4": draftA4,
		"§12.1.1": draftSendRequest, "§7.1.1": draftParallel, "§7.1.3": draftConditional,
	} {
		t.Run(name, func(t *testing.T) {
			m := mustParse(t, raw)
			m.Complete(time.Now())
			out, err := m.MarshalJSON()
			require.NoError(t, err)
			back, err := Parse(out, Limits{})
			require.NoError(t, err)
			// field by field, so a failure names the field
			assert.Equal(t, m.Version, back.Version)
			assert.Equal(t, m.MessageID, back.MessageID)
			assert.Equal(t, m.IdempotencyKey, back.IdempotencyKey)
			assert.True(t, m.Timestamp.Equal(back.Timestamp))
			assert.Equal(t, m.Sender, back.Sender)
			assert.Equal(t, m.Recipients, back.Recipients)
			assert.Equal(t, m.Subject, back.Subject)
			assert.Equal(t, m.Schema, back.Schema)
			assert.Equal(t, m.InReplyTo, back.InReplyTo)
			assert.Equal(t, m.WorkflowID, back.WorkflowID)
			assert.Equal(t, m.ResponseType, back.ResponseType)
			assert.Equal(t, m.Headers, back.Headers)
			assert.Equal(t, string(m.Coordination), string(back.Coordination))
			assert.Equal(t, string(m.Payload), string(back.Payload))
			assert.Equal(t, m.Attachments, back.Attachments)
			assert.Equal(t, m.Signature, back.Signature)
			assert.Equal(t, m.Extensions, back.Extensions)

			// The original and the re-emitted form mean the same JSON apart
			// from what Complete added and the timestamp's spelling.
			var orig, emitted map[string]any
			require.NoError(t, json.Unmarshal([]byte(raw), &orig))
			require.NoError(t, json.Unmarshal(out, &emitted))
			for k, v := range orig {
				if k == "timestamp" {
					continue
				}
				assert.Equal(t, v, emitted[k], "member %s", k)
			}
		})
	}
}

func TestParseExtensionsReEmitted(t *testing.T) {
	m := mustParse(t, msgWith("thread_id", `"abc"`, "x-b", `[true, null]`, "x-a", `{"k":"v"}`))
	out, err := m.MarshalJSON()
	require.NoError(t, err)
	var got map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(out, &got))
	assert.Equal(t, `"abc"`, string(got["thread_id"]))
	assert.Equal(t, `[true,null]`, string(got["x-b"]))
	assert.Equal(t, `{"k":"v"}`, string(got["x-a"]))
	// sorted after the known members, so the output does not depend on map order
	s := string(out)
	assert.Less(t, strings.Index(s, `"payload"`), strings.Index(s, `"thread_id"`))
	assert.Less(t, strings.Index(s, `"thread_id"`), strings.Index(s, `"x-a"`))
	assert.Less(t, strings.Index(s, `"x-a"`), strings.Index(s, `"x-b"`))
}

func TestParseRecipientLimits(t *testing.T) {
	four := msgWith("recipients", `["a@x.com","b@x.com","c@x.com","d@x.com"]`)
	_, err := Parse([]byte(four), Limits{MaxRecipients: 3})
	require.Error(t, err)
	e, _ := AsError(err)
	require.NotNil(t, e)
	assert.Equal(t, CodeInvalidMessageFormat, e.Code)
	assert.Equal(t, "recipients", e.Details["field"])
	assert.Equal(t, 3, e.Details["max"])

	m, err := Parse([]byte(four), Limits{MaxRecipients: 4})
	require.NoError(t, err)
	assert.Len(t, m.Recipients, 4)

	folding := msgWith("recipients", `["a@x.com","A@x.com","b@x.com","B@X.COM","c@x.com"]`)
	m, err = Parse([]byte(folding), Limits{MaxRecipients: 3})
	require.NoError(t, err, "duplicates do not count against the limit")
	assert.Equal(t, []string{"a@x.com", "b@x.com", "c@x.com"}, m.Recipients)

	hundredOne := msgWith("recipients", addrList(101, func(i int) string { return fmt.Sprintf("r%d@x.com", i) }))
	_, err = Parse([]byte(hundredOne), Limits{})
	require.Error(t, err, "default limit is 100")
	_, err = Parse([]byte(hundredOne), Limits{MaxRecipients: -1})
	require.Error(t, err, "a non-positive limit means the default")
	m, err = Parse([]byte(hundredOne), Limits{MaxRecipients: 500})
	require.NoError(t, err, "the limit is configurable upwards")
	assert.Len(t, m.Recipients, 101)
}

func TestComplete(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 890_123_456, time.FixedZone("CET", 3600))
	withFreshV7State(func() {
		m := mustParse(t, msgWith())
		m.Complete(now)
		assert.Equal(t, "1.0", m.Version)
		assert.Equal(t, Version, m.Version)
		require.Regexp(t, reUUIDv7, m.MessageID)
		assert.Equal(t, now.UnixMilli(), uuidV7Millis(t, m.MessageID), "the id carries the submission time")
		require.Regexp(t, reUUIDv4, m.IdempotencyKey)
		assert.Equal(t, time.Date(2025, 3, 4, 4, 6, 7, 890_000_000, time.UTC), m.Timestamp)
		assert.Equal(t, time.UTC, m.Timestamp.Location())

		// A second Complete changes nothing.
		before := *m
		m.Complete(now.Add(time.Hour))
		assert.Equal(t, before, *m)
	})

	supplied := mustParse(t, msgWith(
		"version", `"1.1"`,
		"message_id", quote(testULID),
		"idempotency_key", `"client-key-1"`,
		"timestamp", `"2020-01-01T00:00:00.5+00:00"`,
	))
	supplied.Complete(now)
	assert.Equal(t, "1.1", supplied.Version)
	assert.Equal(t, testULID, supplied.MessageID)
	assert.Equal(t, "client-key-1", supplied.IdempotencyKey)
	assert.Equal(t, "2020-01-01T00:00:00.500Z", FormatTime(supplied.Timestamp))

	// Idempotency keys are random, never derived from the content.
	a, b := mustParse(t, msgWith()), mustParse(t, msgWith())
	a.Complete(now)
	b.Complete(now)
	assert.NotEqual(t, a.IdempotencyKey, b.IdempotencyKey)
	assert.NotEqual(t, a.MessageID, b.MessageID)
}

func TestContentDigestInput(t *testing.T) {
	base := mustParse(t, msgWith("subject", `"s"`))
	baseDigest := string(base.AppendContentDigestInput(nil))
	assert.True(t, json.Valid([]byte(baseDigest)), baseDigest)

	// What the gateway fills in or the transport adds is not content.
	ignored := map[string]string{
		"timestamp":       msgWith("subject", `"s"`, "timestamp", `"2025-08-14T10:30:00Z"`),
		"idempotency_key": msgWith("subject", `"s"`, "idempotency_key", `"k-1"`),
		"version":         msgWith("subject", `"s"`, "version", `"1.0"`),
		"signature":       msgWith("subject", `"s"`, "signature", `{"algorithm":"RS256","value":"abc"}`),
		"all of them":     msgWith("subject", `"s"`, "version", `"1.0"`, "timestamp", `"2021-01-01T00:00:00Z"`, "idempotency_key", `"k-2"`, "signature", `{"algorithm":"ES256","value":"xyz"}`),
	}
	for name, raw := range ignored {
		m := mustParse(t, raw)
		assert.Equal(t, baseDigest, string(m.AppendContentDigestInput(nil)), name)
	}
	completed := mustParse(t, msgWith("subject", `"s"`))
	completed.IdempotencyKey = "k-3"
	completed.Timestamp = time.Now()
	completed.Version = Version
	assert.Equal(t, baseDigest, string(completed.AppendContentDigestInput(nil)), "Complete's fill-ins other than message_id")

	// What the sender asked to deliver is.
	differs := map[string]string{
		"payload":       msgWith("subject", `"s"`, "payload", `{"text":"other"}`),
		"recipients":    msgWith("subject", `"s"`, "recipients", `["agent@receiver.com","second@receiver.com"]`),
		"sender":        msgWith("subject", `"s"`, "sender", `"other@sender.com"`),
		"subject":       msgWith("subject", `"t"`),
		"message_id":    msgWith("subject", `"s"`, "message_id", quote(testULID)),
		"schema":        msgWith("subject", `"s"`, "schema", `"agntcy:x.y.v1"`),
		"headers":       msgWith("subject", `"s"`, "headers", `{"a":"b"}`),
		"coordination":  msgWith("subject", `"s"`, "coordination", `{"type":"parallel"}`),
		"attachments":   msgWith("subject", `"s"`, "attachments", `[`+attachment()+`]`),
		"in_reply_to":   msgWith("subject", `"s"`, "in_reply_to", quote(testULID)),
		"workflow_id":   msgWith("subject", `"s"`, "workflow_id", `"wf-1"`),
		"response_type": msgWith("subject", `"s"`, "response_type", `"workflow_response"`),
		"extension":     msgWith("subject", `"s"`, "x-a", `1`),
	}
	for name, raw := range differs {
		m := mustParse(t, raw)
		assert.NotEqual(t, baseDigest, string(m.AppendContentDigestInput(nil)), name)
	}

	// Ids differing in case only are the same content: a retry that
	// spells them otherwise is the same submission.
	for _, member := range []string{"message_id", "in_reply_to", "workflow_id"} {
		lower := mustParse(t, msgWith(member, quote(strings.ToLower(testULID))))
		upper := mustParse(t, msgWith(member, quote(testULID)))
		other := mustParse(t, msgWith(member, quote(testULID2)))
		assert.Equal(t, string(upper.AppendContentDigestInput(nil)), string(lower.AppendContentDigestInput(nil)), member)
		assert.NotEqual(t, string(upper.AppendContentDigestInput(nil)), string(other.AppendContentDigestInput(nil)), member)
	}
	wf := string(mustParse(t, msgWith("workflow_id", `"wf-1"`)).AppendContentDigestInput(nil))
	assert.Contains(t, wf, `"workflow_id":"wf-1"`)

	withID := mustParse(t, msgWith("message_id", quote(testULID)))
	d := string(withID.AppendContentDigestInput(nil))
	assert.Contains(t, d, testULID)
	assert.Contains(t, d, `"payload":{"text":"hello"}`)
	assert.Contains(t, d, `"agent@receiver.com"`)

	// It must not touch the message it describes.
	signed := mustParse(t, msgWith("timestamp", `"2025-08-14T10:30:00Z"`, "idempotency_key", `"k"`, "signature", `{"algorithm":"RS256","value":"abc"}`))
	snapshot := *signed
	sig := *signed.Signature
	_ = signed.AppendContentDigestInput(nil)
	assert.Equal(t, snapshot, *signed)
	assert.Equal(t, sig, *signed.Signature)
	assert.NotContains(t, d, "timestamp")
}

func TestMarshalJSON(t *testing.T) {
	m := mustParse(t, draftSection4)
	out, err := m.MarshalJSON()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(out), `{"version":"1.0","message_id":"`+testULID+`","idempotency_key":"uuid-v4-string","timestamp":"2025-08-14T10:30:00.000Z","sender":"agent@sender.com","recipients":[`), string(out))
	assert.Contains(t, string(out), `"headers":{"custom-header":"custom-value","priority":"normal","reply-to":"agent@sender.com"}`, "header names sorted")
	assert.Contains(t, string(out), `"signature":{"algorithm":"RS256","keyid":"sender.com:key1","value":"base64-encoded-signature"}`)

	// json.Marshal goes through MarshalJSON too.
	viaStd, err := json.Marshal(m)
	require.NoError(t, err)
	assert.JSONEq(t, string(out), string(viaStd))

	unsigned := string(m.AppendUnsignedJSON(nil))
	assert.NotContains(t, unsigned, `"signature"`)
	assert.Equal(t, strings.Replace(string(out), `,"signature":{"algorithm":"RS256","keyid":"sender.com:key1","value":"base64-encoded-signature"}`, "", 1), unsigned)

	prefixed := m.AppendJSON([]byte("prefix:"))
	assert.Equal(t, "prefix:"+string(out), string(prefixed))
}

// TestMarshalJSONWorkflowID: workflow_id is written right after
// in_reply_to, and only when there is one.
func TestMarshalJSONWorkflowID(t *testing.T) {
	m := mustParse(t, msgWith("response_type", `"workflow_response"`, "workflow_id", quote(testUUID7), "in_reply_to", quote(testULID), "schema", `"agntcy:x.y.v1"`))
	out := string(m.AppendJSON(nil))
	assert.Contains(t, out, `,"schema":"agntcy:x.y.v1","in_reply_to":"`+testULID+`","workflow_id":"`+testUUID7+`","response_type":"workflow_response",`)
	unsigned := string(m.AppendUnsignedJSON(nil))
	assert.Contains(t, unsigned, `"workflow_id":"`+testUUID7+`"`)

	without := string(mustParse(t, msgWith("in_reply_to", quote(testULID))).AppendJSON(nil))
	assert.NotContains(t, without, "workflow_id")
	alone := string(mustParse(t, msgWith("workflow_id", `"wf-1"`)).AppendJSON(nil))
	assert.Contains(t, alone, `"recipients":["agent@receiver.com"],"workflow_id":"wf-1","payload":`)
}

func TestMarshalJSONEscaping(t *testing.T) {
	m := &Message{
		Version:    Version,
		Sender:     "a@x.com",
		Recipients: []string{"b@x.com"},
		Subject:    "quote \" backslash \\ <html> & \u2028 ü",
		Headers:    map[string]string{"x": "tab\there\x01\x1f\b\f"},
		Payload:    json.RawMessage(`{}`),
	}
	out, err := m.MarshalJSON()
	require.NoError(t, err)
	require.True(t, json.Valid(out), "%s", out)
	assert.Contains(t, string(out), `"subject":"quote \" backslash \\ <html> & `+"\u2028"+` ü"`, "no HTML escaping")
	assert.Contains(t, string(out), `"x":"tab\there\u0001\u001f\b\f"`)
	var back struct {
		Subject string            `json:"subject"`
		Headers map[string]string `json:"headers"`
	}
	require.NoError(t, json.Unmarshal(out, &back))
	assert.Equal(t, m.Subject, back.Subject)
	assert.Equal(t, m.Headers, back.Headers)

	empty := &Message{}
	out, err = empty.MarshalJSON()
	require.NoError(t, err)
	assert.Equal(t, `{"version":"","sender":"","recipients":[],"payload":null}`, string(out))
}

func TestSenderAndRecipientAddresses(t *testing.T) {
	m := mustParse(t, msgWith("sender", `"Agent@Sender.COM"`, "recipients", `["a@X.com","Bob.B@y.org"]`))
	assert.Equal(t, Address{Local: "Agent", Domain: "sender.com"}, m.SenderAddress())
	assert.Equal(t, []Address{{Local: "a", Domain: "x.com"}, {Local: "Bob.B", Domain: "y.org"}}, m.RecipientAddresses())
}

func TestSupportedVersionHeader(t *testing.T) {
	for v, want := range map[string]bool{
		"1.0": true, " 1.0 ": true, "1": true, "1.1": true, "1.99": true,
		"": false, "2.0": false, "0.9": false, "1.0.0": false, "1.a": false, "AMTP/1.0": false,
	} {
		assert.Equal(t, want, SupportedVersionHeader(v), "%q", v)
	}
}

func TestFormatTime(t *testing.T) {
	tm := time.Date(2025, 8, 14, 12, 30, 0, 123_999_999, time.FixedZone("", 2*3600))
	assert.Equal(t, "2025-08-14T10:30:00.123Z", FormatTime(tm))
	assert.Equal(t, "2025-08-14T10:30:00.000Z", FormatTime(time.Date(2025, 8, 14, 10, 30, 0, 0, time.UTC)))
}

func TestParseErrorsAreAlwaysAMTPErrors(t *testing.T) {
	// Every rejection path must produce an *Error a handler can answer with.
	for _, tc := range badInputCases() {
		_, err := Parse([]byte(tc.in), Limits{})
		e, ok := AsError(err)
		require.True(t, ok, tc.name)
		assert.True(t, e.Code.Known(), "%s: code %s", tc.name, e.Code)
	}
}

// TestFastPathAgreesWithDecoder: Parse's hand-written walk over
// well-formed objects must decide exactly as the decoder path does, value
// and error alike (FuzzParse checks the same on generated input).
func TestFastPathAgreesWithDecoder(t *testing.T) {
	inputs := []string{
		draftSection4, draftA1, draftA3, draftA4, draftSendRequest, draftParallel, draftConditional,
		msgWith(),
		"  \n" + msgWith("subject", `"tab\tand \"quote\" \u00e9"`) + "\n ",
		msgWith("x-ext", `{"a":[1,{"b":"}]"}],"c":"\\"}`, "payload", `[true,false,null,-1.5e3,"x\\\"y"]`),
		msgWith("payload", `null`),
		msgWith("version", `"2.0"`, "subject", `7`),
		`{"sen\u0064er":"a@b.example","recipients":["c@d.example"],"payload":{}}`,
		`{"sender":"a@b.example","sender":"a@b.example","recipients":["c@d.example"],"payload":1}`,
		`{}`, `{"payload":{"deep":[[[[{}]]]]}}`,
		serialisedEverything,
	}
	for _, c := range badInputCases() {
		inputs = append(inputs, c.in)
	}
	for member, spellings := range absentSpellings() {
		for _, v := range spellings {
			inputs = append(inputs, msgWith(member, v))
		}
	}
	checked := 0
	for _, in := range inputs {
		data := []byte(in)
		i := skipSpace(data, 0)
		valid, spaced := scanJSON(data)
		require.Equal(t, json.Valid(data), valid, "scanJSON of %s", in)
		if i >= len(data) || data[i] != '{' || !valid || !utf8.Valid(data) {
			continue
		}
		checked++
		slow, slowErr := parseDecoder(data, Limits{})
		// Without whitespace the values are copied (or, from an owned
		// body, shared) rather than compacted; either way the message is
		// the same.
		for _, st := range []parseState{{compact: !spaced}, {compact: !spaced, owned: true}, {}} {
			fast, fastErr := parseObject(append([]byte(nil), data...), i, st, Limits{})
			require.Equal(t, slowErr, fastErr, "error for %s", in)
			require.Equal(t, slow, fast, "message for %s (%+v)", in, st)
		}
	}
	require.Greater(t, checked, 20, "the table should exercise the fast path")
}

// BenchmarkParse compares Parse (fast path) with the decoder path on the
// draft's full example message.
func BenchmarkParse(b *testing.B) {
	data := []byte(draftSection4)
	for _, c := range []struct {
		name  string
		parse func([]byte, Limits) (*Message, error)
	}{{"parse", Parse}, {"decoder", parseDecoder}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.parse(data, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestParseOwnedSharesThePayload: ParseOwned holds a compact body's
// payload without copying it, and appending to the payload never writes
// into the body; Parse copies, so the body may be reused.
func TestParseOwnedSharesThePayload(t *testing.T) {
	body := []byte(`{"sender":"a@x.org","recipients":["b@y.org"],"payload":{"k":"v"},"subject":"s"}`)
	owned, err := ParseOwned(body, Limits{})
	require.NoError(t, err)
	copied, err := Parse(body, Limits{})
	require.NoError(t, err)
	at := bytes.Index(body, []byte(`{"k"`))
	require.Same(t, &body[at], &owned.Payload[0], "ParseOwned shares the body's memory")
	require.NotSame(t, &body[at], &copied.Payload[0], "Parse copies")
	grown := append(owned.Payload, 'X')
	require.Equal(t, `{"k":"v"},"subject":"s"}`, string(body[at:]), "appending to the payload left the body alone")
	require.Equal(t, `{"k":"v"}X`, string(grown))
}

func TestClipSubject(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("a", MaxSubjectLen), strings.Repeat("a", MaxSubjectLen)},
		{strings.Repeat("a", MaxSubjectLen+1), strings.Repeat("a", MaxSubjectLen)},
		{"a" + strings.Repeat("é", MaxSubjectLen/2), "a" + strings.Repeat("é", (MaxSubjectLen-1)/2)},
		{strings.Repeat("😀", 300), strings.Repeat("😀", MaxSubjectLen/4)},
	} {
		got := ClipSubject(tc.in)
		assert.Equal(t, tc.want, got)
		assert.True(t, utf8.ValidString(got))
	}
}
