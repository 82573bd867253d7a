package dynamo

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// fuzzKeyTime maps fuzzed milliseconds onto the years a sort key can hold
// (four digits; the gateway's clock is never outside them).
func fuzzKeyTime(ms int64) time.Time {
	lo := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	hi := time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
	span := hi - lo + 1
	return time.UnixMilli(lo + ((ms%span)+span)%span).UTC()
}

// fuzzStoredTime is an attribute time from fuzzed nanoseconds, within the
// years RFC 3339 can write.
func fuzzStoredTime(ns int64) time.Time {
	return fuzzKeyTime(ns / 1e6).Add(time.Duration(((ns % 1e6) + 1e6) % 1e6))
}

// FuzzCursor: a cursor made from any sort key a listing can hand out reads
// back as that key, and an accepted cursor is exactly one a listing could
// have handed out: it re-encodes to itself, holds a time sort key, and is
// refused by the other listing.
func FuzzCursor(f *testing.F) {
	at := time.Date(2026, 8, 14, 10, 30, 0, 123e6, time.UTC)
	sk := timeSK(at, "01a20b60-ee05-77c5-9a6d-d47ccc0f043e")
	for _, seed := range []struct {
		c  string
		ms int64
		id string
	}{
		{encodeCursor(cursorMessages, sk), at.UnixMilli(), "01a20b60-ee05-77c5-9a6d-d47ccc0f043e"},
		{encodeCursor(cursorInbox, formatKeyTime(at)), 0, ""},
		{encodeCursor(cursorInbox, sk) + "\r\n", -1, "#"},
		{encodeCursor(cursorMessages, sk+"#") + "==", 1 << 62, "\xff"},
		{"", 0, "ünïcode ✓"},
		{base64.RawURLEncoding.EncodeToString([]byte("m2026-02-30T10:30:00.000Z#x")), 0, strings.Repeat("x", 4096)},
		{base64.RawURLEncoding.EncodeToString([]byte("m2026-08-14T10:30:00.000+01:00")), 0, "a#b"},
		{strings.Repeat("A", 1<<12), 0, "\x00"},
	} {
		f.Add(seed.c, seed.ms, seed.id)
	}
	f.Fuzz(func(t *testing.T, c string, ms int64, id string) {
		for _, kind := range []byte{cursorMessages, cursorInbox} {
			sk, err := decodeCursor(kind, c)
			if err != nil {
				require.ErrorIs(t, err, gateway.ErrBadCursor)
				require.Empty(t, sk)
			} else {
				require.Equal(t, c, encodeCursor(kind, sk), "accepted cursor %q is not one a listing writes", c)
				_, _, err := parseTimeSK(sk)
				require.NoError(t, err)
				other := map[byte]byte{cursorMessages: cursorInbox, cursorInbox: cursorMessages}[kind]
				_, err = decodeCursor(other, c)
				require.ErrorIs(t, err, gateway.ErrBadCursor, "a cursor of one listing is refused by the other")
			}

			want := formatKeyTime(fuzzKeyTime(ms))
			if id != "" {
				want = timeSK(fuzzKeyTime(ms), id)
			}
			back, err := decodeCursor(kind, encodeCursor(kind, want))
			require.NoError(t, err, "sort key %q", want)
			require.Equal(t, want, back)
		}
	})
}

// FuzzStatusItem: a recipient status from fuzzed fields comes back from
// its attribute exactly, and so do the recipient specs a message item
// carries, whether or not they repeat what the item says.
func FuzzStatusItem(f *testing.F) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC).UnixNano()
	f.Add("bob@b.example", "queued", uint32(0), at, uint8(0), int64(0), "", "", "", []byte(nil), "bob@b.example", at, uint8(0))
	f.Add("Carol@C.example", "delivered", uint32(1), at, uint8(2), at, "", "", "inbox", []byte(`{"ok":true}`), "carol@c.example", at, uint8(1))
	f.Add("dave@d.example", "failed", uint32(7), at+1e9, uint8(3), int64(-1), "AGENT_UNKNOWN", "no agent ü ✓", "", []byte("\xff{"), "", at, uint8(2))
	f.Add("", "", uint32(1<<31), int64(1<<62), uint8(1), int64(-1<<63), "", strings.Repeat("m", 1024), "smtp", []byte{0}, "erin@e.example", int64(0), uint8(3))

	f.Fuzz(func(t *testing.T, addr, state string, attempts uint32, updated int64, ptrs uint8, other int64, code, msg, via string, reply []byte, to string, accepted int64, inbox uint8) {
		st := gateway.RecipientStatus{Address: addr, Status: gateway.State(state), Attempts: int(attempts),
			UpdatedAt: fuzzStoredTime(updated), ErrorCode: code, ErrorMessage: msg, Via: via}
		if ptrs&1 != 0 {
			next := fuzzStoredTime(other)
			st.NextRetry = &next
		}
		if ptrs&2 != 0 {
			done := fuzzStoredTime(other)
			st.DeliveredAt = &done
		}
		if len(reply) > 0 {
			st.Response = json.RawMessage(reply)
		}
		got, err := decodeStatus(addr, statusAttr(st))
		require.NoError(t, err)
		require.Equal(t, st, got)

		acceptedAt := fuzzStoredTime(accepted)
		spec := recipientSpec{Address: addr, Status: st, Indexed: true}
		switch inbox % 3 {
		case 1:
			spec.Inbox = &acceptedAt
		case 2:
			filed := fuzzStoredTime(other)
			spec.Inbox = &filed
		}
		specs := []recipientSpec{spec, spec}
		specs[1].N = 1
		specs[1].Status.UpdatedAt = acceptedAt
		msgItem := item{aTo: strList([]string{to}), aAt: timeAttr(acceptedAt), aSpecs: specsAttr(specs, []string{to}, acceptedAt)}
		back, err := decodeSpecs(msgItem)
		require.NoError(t, err)
		require.Equal(t, specs, back)
	})
}

// FuzzAgentItem: an agent from fuzzed fields comes back from its item
// exactly (empty lists and maps are absent, as registration stores them).
func FuzzAgentItem(f *testing.F) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	f.Add("hook@a.example", "push", "https://agents.example/hook", "whsec_abc", "agntcy:commerce.*", "", "0123abcd", created, "Authorization", "Bearer x")
	f.Add("Pull@A.example", "pull", "", "", "", "", "", int64(0), "", "")
	f.Add("ü@b", "", "http://[::1]/x?y=z", "\x00", "a", "a", strings.Repeat("f", 64), int64(-1), "X-Empty", "")

	f.Fuzz(func(t *testing.T, addr, mode, hook, secret, schema1, schema2, keyHash string, created int64, header, value string) {
		a := &gateway.Agent{Address: addr, DeliveryMode: gateway.DeliveryMode(mode), WebhookURL: hook, WebhookSecret: secret,
			APIKeyHash: keyHash, CreatedAt: fuzzStoredTime(created)}
		for _, s := range []string{schema1, schema2} {
			if s != "" {
				a.SupportedSchemas = append(a.SupportedSchemas, s)
			}
		}
		if header != "" {
			a.Headers = map[string]string{header: value}
		}
		got, err := decodeAgent(agentAttrs(agentKey(addr), a))
		require.NoError(t, err)
		require.Equal(t, a, got)
	})
}

// FuzzInflate: a body deflated for storage inflates to itself; anything
// else stored under the attribute inflates to at most an item's worth or
// is an error, and leaves the pooled readers fit for the next body.
func FuzzInflate(f *testing.F) {
	msg := []byte(`{"version":"1.0","sender":"alice@a.example","recipients":["bob@b.example"],"payload":{"text":"` + strings.Repeat("hello ", 40) + `"}}`)
	z := deflated(msg)
	f.Add(msg, z)
	f.Add([]byte{}, z[:len(z)/2])
	f.Add(bytes.Repeat([]byte{0}, 1<<16), deflated(bytes.Repeat([]byte{0}, awsres.MaxItemBytes+1)))
	f.Add([]byte("ü✓"), []byte{})
	f.Add(bytes.Repeat([]byte("ab"), 100), []byte{0x03, 0x00})
	f.Add([]byte(nil), append(bytes.Clone(z), "trailing"...))

	f.Fuzz(func(t *testing.T, raw, stored []byte) {
		out, err := inflated(stored)
		if err != nil {
			require.Nil(t, out)
		} else {
			require.LessOrEqual(t, len(out), awsres.MaxItemBytes)
		}
		// The reader that just saw stored goes back to the pool; the next
		// body must not notice.
		again, err := inflated(z)
		require.NoError(t, err)
		require.Equal(t, msg, again)

		// deflated keeps only what it shrinks (nil otherwise).
		if zr := deflated(raw); zr != nil {
			require.Less(t, len(zr), len(raw))
			back, err := inflated(zr)
			require.NoError(t, err)
			require.Equal(t, raw, back)
		}
	})
}

// FuzzItemDecoders feeds items of arbitrary shape (any attribute of any
// type) to every item decoder. None may panic, and none answers with both
// a value and an error.
func FuzzItemDecoders(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte("\x05\x00\x1bnot-a-time\x06\x05\x02\x00\x00\x01x\x07\x01\x01"))
	f.Add([]byte("\x09\x00\x2a[{\"addr\":\"a@b\",\"n\":1,\"status\":{\"status\":1}}]"))
	f.Add(bytes.Repeat([]byte{8, 5, 8, 5}, 64))
	f.Add([]byte("\x13\x01\x03NaN\x14\x01\x14-9223372036854775809"))

	f.Fuzz(func(t *testing.T, data []byte) {
		it := (&itemReader{b: data}).item(0)

		a, err := decodeAgent(it)
		require.True(t, (a == nil) != (err == nil), "agent %v, error %v", a, err)
		rec, err := decodeIdem(it)
		require.True(t, (rec == nil) != (err == nil), "idempotency record %v, error %v", rec, err)
		m, err := decodeMessage("m", it)
		require.True(t, (m == nil) != (err == nil), "message %v, error %v", m, err)
		specs, err := decodeSpecs(it)
		if err != nil {
			require.Nil(t, specs)
		}
		if getStr(it, aOver) == "" { // the JSON of older items says what it says
			for i, s := range specs {
				require.Equal(t, int64(i), s.N)
				require.Equal(t, s.Address, s.Status.Address)
			}
		}
		_, _ = decodeStatus("a@b.example", it[aStatus])
		b, ver, err := decodeBucket(it)
		if err != nil {
			require.Zero(t, b)
			require.Zero(t, ver)
		}
		_, _ = assembleStatuses("m", it, []item{it})
		_, _ = refOf("m", it)
		sch, err := decodeSchema("s", getBin(it, aRaw))
		if err != nil {
			require.Zero(t, sch)
		}
	})
}

// fuzzAttrNames are the attribute names the decoders look for, so that
// fuzzed items hit them instead of names nobody reads.
var fuzzAttrNames = []string{
	aFrom, aTo, aSubj, aOrigin, aVerif, aAt, aRN, aSpecs, aOver, aAddr, aN, aStatus,
	aKey, aMsgID, aDigest, aCreated, agMode, agHook, agSchemas, agHeaders,
	aTokens, aLast, aVer, aTTL, aRaw, stState, stAttempts, stUpdated, stNextRetry,
	stDelivered, stResponse, specAddr, specInbox, aSK,
}

// itemReader builds an item from fuzz bytes: per attribute a name byte
// (an index into fuzzAttrNames) and a value, each value a type byte and
// its contents, lists and maps nested at most four deep.
type itemReader struct{ b []byte }

func (r *itemReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *itemReader) bytes() []byte {
	n := min(int(r.byte()), len(r.b))
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *itemReader) item(depth int) item {
	it := item{}
	for n := r.byte(); n > 0 && len(r.b) > 0; n-- {
		name := fuzzAttrNames[int(r.byte())%len(fuzzAttrNames)]
		it[name] = r.value(depth)
	}
	return it
}

func (r *itemReader) value(depth int) types.AttributeValue {
	kind := r.byte()
	if depth >= 4 {
		kind %= 5
	}
	switch kind % 8 {
	case 0:
		return &types.AttributeValueMemberS{Value: string(r.bytes())}
	case 1:
		return &types.AttributeValueMemberN{Value: string(r.bytes())}
	case 2:
		return &types.AttributeValueMemberB{Value: r.bytes()}
	case 3:
		return &types.AttributeValueMemberBOOL{Value: r.byte()%2 == 1}
	case 4:
		return &types.AttributeValueMemberNULL{Value: true}
	case 5:
		n := int(r.byte() % 8)
		l := make([]types.AttributeValue, 0, n)
		for range n {
			l = append(l, r.value(depth+1))
		}
		return &types.AttributeValueMemberL{Value: l}
	case 6:
		return &types.AttributeValueMemberM{Value: r.item(depth + 1)}
	default:
		return &types.AttributeValueMemberSS{Value: []string{string(r.bytes()), string(r.bytes())}}
	}
}
