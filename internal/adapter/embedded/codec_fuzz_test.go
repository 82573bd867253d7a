package embedded

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// fuzzTime is a stored time from fuzzed nanoseconds: the zero time when
// zero is set, else an instant in UTC (the codec keeps nanoseconds since
// the epoch, so every int64 is representable).
func fuzzTime(zero bool, ns int64) time.Time {
	if zero {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// FuzzCursor: every cursor a listing hands out is read back as its
// position, and a cursor that is accepted is exactly one the store could
// have handed out: it re-encodes to itself, so no two spellings name one
// position, and a cursor of one listing is refused by the other.
func FuzzCursor(f *testing.F) {
	pos := append([]byte("\x00\x00\x01\x8f\x12\x34\x56\x78"), "01a20b60-ee05-77c5-9a6d-d47ccc0f043e"...)
	for _, seed := range []struct {
		s   string
		pos []byte
	}{
		{encodeCursor(cursorMessages, pos), pos},
		{encodeCursor(cursorInbox, pos), pos[:timeLen+1]},
		{encodeCursor(cursorInbox, pos) + "\n", pos[:timeLen]},
		{encodeCursor(cursorMessages, pos) + "=", nil},
		{encodeCursor(cursorMessages, pos[:timeLen+1])[:11] + "B", []byte("é")},
		{"", []byte{}},
		{"bQ", []byte("\xff\xfe")},
		{strings.Repeat("A", 1<<12), []byte(strings.Repeat("x", 1<<12))},
		{"bWVzc2FnZXM/.*", []byte("\u00e9\U0001F600")},
	} {
		f.Add(seed.s, seed.pos)
	}
	f.Fuzz(func(t *testing.T, s string, pos []byte) {
		for _, kind := range []byte{cursorMessages, cursorInbox} {
			got, err := decodeCursor(kind, s, timeLen)
			if err != nil {
				require.ErrorIs(t, err, ErrBadCursor)
				require.Nil(t, got)
			} else {
				require.Greater(t, len(got), timeLen)
				require.Equal(t, s, encodeCursor(kind, got), "accepted cursor %q is not one the store writes", s)
				other := map[byte]byte{cursorMessages: cursorInbox, cursorInbox: cursorMessages}[kind]
				_, err := decodeCursor(other, s, timeLen)
				require.ErrorIs(t, err, ErrBadCursor, "a cursor of one listing is refused by the other")
			}

			back, err := decodeCursor(kind, encodeCursor(kind, pos), timeLen)
			if len(pos) <= timeLen {
				require.ErrorIs(t, err, ErrBadCursor)
				continue
			}
			require.NoError(t, err)
			require.Equal(t, pos, back)
		}
	})
}

// FuzzTaskCodec: a task from fuzzed fields comes back from its encoding
// exactly, every truncation of the encoding is an error, and whatever a
// stored value decodes to survives another round trip.
func FuzzTaskCodec(f *testing.F) {
	id := gateway.TaskID("01a20b60-ee05-77c5-9a6d-d47ccc0f043e", "hook@localhost")
	f.Add(id, "01a20b60-ee05-77c5-9a6d-d47ccc0f043e", "local", "hook@localhost", "", "", "", uint32(2), uint32(0), false, int64(1795746431493000123), int64(1795746437493000123), encodeTask(gateway.Task{ID: id, MessageID: "01a20b60-ee05-77c5-9a6d-d47ccc0f043e", Kind: "local", Recipients: []string{"hook@localhost"}}))
	f.Add("wf-7|step-3", "another", "workflow_step", "", "", "", "token\x00with bytes", uint32(0), uint32(4), true, int64(-5), int64(0), []byte(`{"id":"x","message_id":"m","kind":"remote","attempt":-1}`))
	f.Add("m|b.example", "m", "remote", "a@b.example", "ç@b.example", "b.example", "", uint32(1<<31), uint32(7), false, int64(0), int64(-1<<63), []byte{codecV1, 1, 0, 0, 0xff, 0xff, 0xff, 0x0f})
	f.Add("", "", "", "", "", "", "", uint32(0), uint32(0), true, int64(0), int64(0), []byte{})
	f.Add("dup|dup", "dup", "local", "x", "x", "", "", uint32(0), uint32(0), false, int64(1), int64(1), []byte{codecV1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})

	f.Fuzz(func(t *testing.T, id, messageID, kind, r1, r2, domain, token string, attempt, round uint32, zeroCreated bool, created, notBefore int64, stored []byte) {
		task := gateway.Task{
			ID: id, MessageID: messageID, Kind: gateway.TaskKind(kind), Domain: domain, Token: token,
			Attempt: int(attempt), Round: int(round),
			CreatedAt: fuzzTime(zeroCreated, created), NotBefore: fuzzTime(notBefore == 0, notBefore),
		}
		for _, r := range []string{r1, r2} {
			if r != "" {
				task.Recipients = append(task.Recipients, r)
			}
		}
		v := encodeTask(task)
		got, err := decodeTask([]byte(id), v)
		require.NoError(t, err)
		require.Equal(t, task, got)
		for n := range len(v) {
			_, err := decodeTask([]byte(id), v[:n])
			require.Error(t, err, "truncated to %d bytes", n)
		}

		fromStore, err := decodeTask([]byte(id), stored)
		if err != nil || len(stored) == 0 || stored[0] != codecV1 {
			return
		}
		again, err := decodeTask([]byte(id), encodeTask(fromStore))
		require.NoError(t, err)
		require.Equal(t, fromStore, again)
	})
}

// FuzzIdemCodec: an idempotency record from fuzzed fields comes back from
// its encoding under its key, and every truncation is an error. A sender
// holds no NUL: it is an address, and the key separates on NUL.
func FuzzIdemCodec(f *testing.F) {
	digest := "7def3ca859b8de3c746aee214aee7f33ff18d46c362f07dc9068444a287cda00"
	f.Add("alice@localhost", "55540fdc-fa86-4d65-b545-8eea19fe95a9", "01a20b60-ee05-77c5-9a6d-d47ccc0f043e", digest, int64(1795746431493000000), []byte{codecV1, 0, 1, 'm', 1})
	f.Add("Alice@Localhost", "K", "m", "7DEF"+digest[4:], int64(-1), []byte(`{"sender":"a","key":"k"}`))
	f.Add("ÉLOÏSE@b.example", "k\x00k", "", "not-hex", int64(0), []byte{})
	f.Add("\xff@x", "", "m", digest[:63], int64(1), []byte{codecV1, 0, 0, 1, 0})

	f.Fuzz(func(t *testing.T, sender, k, messageID, dig string, created int64, stored []byte) {
		sender = strings.ReplaceAll(sender, "\x00", "")
		rec := gateway.IdempotencyRecord{Sender: sender, Key: k, MessageID: messageID, Digest: dig, CreatedAt: fuzzTime(created == 0, created)}
		key := idemKey(sender, k)
		v := encodeIdem(rec)
		got, err := decodeIdem(key, v)
		require.NoError(t, err)
		require.Equal(t, rec, got)
		for n := range len(v) {
			_, err := decodeIdem(key, v[:n])
			require.Error(t, err, "truncated to %d bytes", n)
		}
		// Whatever is stored under the key decodes or fails; it never panics.
		_, _ = decodeIdem(key, stored)
	})
}

// FuzzStatusesCodec: recipient statuses from fuzzed fields come back from
// their encoding exactly (a nil time stays nil, an empty reply nil), every
// truncation is an error, and a stored value that decodes survives
// another round trip.
func FuzzStatusesCodec(f *testing.F) {
	at := time.Date(2026, 11, 24, 2, 27, 12, 398_106_151, time.UTC).UnixNano()
	f.Add("hook@localhost", "retrying", uint32(2), at, uint8(1), at+2e9, "RECIPIENT_UNAVAILABLE", "webhook not reachable", "", []byte(nil), uint8(1), encodeStatuses(nil))
	f.Add("a@b.example", "delivered", uint32(1), at, uint8(2), at, "", "", "webhook", []byte(`{"ok":true}`), uint8(3), []byte(`[{"address":"a"}]`))
	f.Add("", "", uint32(0), int64(0), uint8(3), int64(-1), "", "ümlaut ✓", "", []byte("\xff"), uint8(0), []byte{codecV1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add("x", "queued", uint32(1<<31), int64(1), uint8(0), int64(0), "", "", "", []byte{}, uint8(2), []byte{codecV1, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, addr, state string, attempts uint32, updated int64, ptrs uint8, other int64, code, msg, via string, reply []byte, count uint8, stored []byte) {
		r := gateway.RecipientStatus{
			Address: addr, Status: gateway.State(state), Attempts: int(attempts), UpdatedAt: fuzzTime(updated == 0, updated),
			ErrorCode: code, ErrorMessage: msg, Via: via,
		}
		if ptrs&1 != 0 {
			next := fuzzTime(false, other)
			r.NextRetry = &next
		}
		if ptrs&2 != 0 {
			done := fuzzTime(false, other)
			r.DeliveredAt = &done
		}
		if len(reply) > 0 {
			r.Response = json.RawMessage(reply)
		}
		var rs []gateway.RecipientStatus
		for i := range int(count % 4) {
			c := r
			c.Address += strings.Repeat("+", i)
			rs = append(rs, c)
		}
		v := encodeStatuses(rs)
		got, err := decodeStatuses(v)
		require.NoError(t, err)
		require.Equal(t, len(rs), len(got))
		for i := range rs {
			require.Equal(t, rs[i], got[i])
		}
		for n := range len(v) {
			_, err := decodeStatuses(v[:n])
			require.Error(t, err, "truncated to %d bytes", n)
		}

		fromStore, err := decodeStatuses(stored)
		if err != nil || len(stored) == 0 || stored[0] != codecV1 {
			return
		}
		again, err := decodeStatuses(encodeStatuses(fromStore))
		require.NoError(t, err)
		require.Equal(t, fromStore, again)
	})
}

// binaryMeta reports whether a messages value that decodes has its listing
// fields in the compact form rather than the JSON of earlier versions.
func binaryMeta(v []byte) bool {
	n, k := binary.Uvarint(v)
	return n > 0 && (v[k] == codecV1 || v[k] == metaV2)
}

// FuzzMessageCodec: a message value (listing fields, then the raw message)
// from fuzzed fields comes back exactly; truncating its listing part is an
// error; and a stored value that decodes survives another round trip.
func FuzzMessageCodec(f *testing.F) {
	at := time.Date(2026, 11, 24, 2, 27, 11, 493_000_000, time.UTC).UnixNano()
	raw := []byte(`{"version":"1.0","sender":"alice@a.example","recipients":["bob@b.example"],"payload":{}}`)
	f.Add("alice@a.example", "bob@b.example", "carol@b.example", "hi", "local", at, "verified", "dkim", "a.example", "k1", "ES256", raw, []byte(nil))
	f.Add("", "", "", "", "", int64(0), "", "x", "", "", "", []byte{}, []byte(`{"sender":"a","recipients":null}`))
	f.Add("ü@b", "\x00", "", strings.Repeat("s", 998), "remote", int64(-1), "invalid", "", "", "", "", []byte("\xff"), []byte{metaV2, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add("a", "b", "b", "", "", int64(1), "", "", "", "", "", raw, []byte{5, codecV1, 0, 0, 0, 0, '{', '}'})

	f.Fuzz(func(t *testing.T, sender, r1, r2, subject, origin string, accepted int64, result, method, domain, keyID, alg string, body, stored []byte) {
		sm := &gateway.StoredMessage{Sender: sender, Subject: subject, Origin: gateway.Origin(origin), Raw: body}
		for _, r := range []string{r1, r2} {
			if r != "" {
				sm.Recipients = append(sm.Recipients, r)
			}
		}
		if result != "" {
			sm.Verification = &gateway.SenderVerification{Result: gateway.VerificationResult(result), Method: method, Domain: domain, KeyID: keyID, Algorithm: alg}
		}
		v, err := encodeMessage(sm, fuzzTime(accepted == 0, accepted))
		require.NoError(t, err)
		meta, gotRaw, err := decodeMessage(v)
		require.NoError(t, err)
		require.Equal(t, string(body), string(gotRaw))
		want := messageMeta{Sender: sender, Recipients: sm.Recipients, Subject: subject, Origin: sm.Origin,
			AcceptedAt: fuzzTime(accepted == 0, accepted), Verification: sm.Verification}
		if want.Recipients == nil {
			want.Recipients = []string{}
		}
		require.Equal(t, want, meta)
		metaLen := len(v) - len(body)
		for n := range metaLen {
			_, _, err := decodeMessage(v[:n])
			require.Error(t, err, "truncated to %d of %d bytes of listing fields", n, metaLen)
		}

		fromStore, rest, err := decodeMessage(stored)
		if err != nil || !binaryMeta(stored) {
			return
		}
		again, err := encodeMessage(&gateway.StoredMessage{Sender: fromStore.Sender, Recipients: fromStore.Recipients,
			Subject: fromStore.Subject, Origin: fromStore.Origin, Verification: fromStore.Verification, Raw: rest}, fromStore.AcceptedAt)
		require.NoError(t, err)
		metaAgain, restAgain, err := decodeMessage(again)
		require.NoError(t, err)
		require.Equal(t, string(rest), string(restAgain))
		require.True(t, fromStore.AcceptedAt.Equal(metaAgain.AcceptedAt))
		fromStore.AcceptedAt = metaAgain.AcceptedAt
		if fromStore.Recipients == nil {
			fromStore.Recipients = []string{}
		}
		require.Equal(t, fromStore, metaAgain)
	})
}
