package sqsq

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// fuzzRecordTime is a task time from fuzzed milliseconds: zero for 0, else
// an instant in the years JSON times can hold, in UTC or at an offset.
func fuzzRecordTime(ms int64, offsetMinutes int16) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	lo := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	span := time.Date(9998, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() - lo
	t := time.UnixMilli(lo + ((ms%span)+span)%span)
	if offsetMinutes%(24*60) == 0 {
		return t.UTC()
	}
	return t.In(time.FixedZone("", int(offsetMinutes%(24*60))*60))
}

// fuzzTask is a task from fuzzed fields. Its strings are made UTF-8, as
// every task the gateway makes is: ids, addresses and tokens.
func fuzzTask(id, messageID, kind, recipient, domain, token string, attempt int32, created, notBefore int64, offset int16) gateway.Task {
	valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	t := gateway.Task{ID: valid(id), MessageID: valid(messageID), Kind: gateway.TaskKind(valid(kind)), Domain: valid(domain),
		Token: valid(token), Attempt: int(attempt), Round: int(attempt) / 2,
		CreatedAt: fuzzRecordTime(created, offset), NotBefore: fuzzRecordTime(notBefore, offset), Lease: "receipt"}
	if recipient != "" {
		t.Recipients = []string{valid(recipient), valid(recipient) + "x"}
	}
	return t
}

// requireSameTask compares tasks as instants: a time read back from JSON
// is the same instant, whatever its zone value.
func requireSameTask(t *testing.T, want, got gateway.Task) {
	t.Helper()
	require.True(t, want.CreatedAt.Equal(got.CreatedAt), "created_at %v, want %v", got.CreatedAt, want.CreatedAt)
	require.True(t, want.NotBefore.Equal(got.NotBefore), "not_before %v, want %v", got.NotBefore, want.NotBefore)
	want.CreatedAt, want.NotBefore = got.CreatedAt, got.NotBefore
	require.Equal(t, want, got)
}

// FuzzParseTask: a task the queue encodes is parsed back as it was sent
// (its lease is not part of it), a body that is no task of this format is
// ErrMalformed with nothing returned, and a body that parses can be sent
// again, as Retry does, and parses to the same task.
func FuzzParseTask(f *testing.F) {
	q := &Queue{maxDelay: maxDelay}
	f.Add("01a20b60-ee05-77c5-9a6d-d47ccc0f043e|hook@localhost", "01a20b60-ee05-77c5-9a6d-d47ccc0f043e", "local", "hook@localhost", "", "", int32(2), int64(1795746431493), int64(0), int16(0), int64(0),
		`{"v":1,"id":"m|b.example","message_id":"m","kind":"remote","recipients":["a@b.example"],"domain":"b.example","attempt":1,"created_at":"2026-11-24T02:27:11.493Z"}`)
	f.Add("wf|step", "wf", "workflow_step", "", "", "AAAA+/==", int32(-1), int64(-1), int64(1<<40), int16(330), int64(1<<41),
		`{"v":1,"id":"x","message_id":"m","kind":"local","due":"2026-11-24T02:27:11+05:30","early":true}`)
	f.Add("", "", "", "ü✓", "b.example", "", int32(0), int64(1), int64(0), int16(-600), int64(-5),
		`{"v":2,"id":"x","message_id":"m","kind":"local"}`)
	f.Add("i", "m", "k", "\xff", "", "", int32(1<<30), int64(0), int64(0), int16(0), int64(0),
		`{"v":1,"id":"x","id":"y","message_id":"m","kind":"local","V":3}`)
	f.Add("i", "m", "k", "", "", "", int32(0), int64(0), int64(0), int16(0), int64(0), `{"v":1,"id":"x","message_id":"m","kind":"local","created_at":"2026-11-24T02:27:11.493+23:59"}`)
	f.Add("i", "m", "k", "", "", "", int32(0), int64(0), int64(0), int16(0), int64(0), `{"v":1,"id":"x","message_id":"m","kind":"local","attempt":1e3}`)
	f.Add("i", "m", "k", "", "", "", int32(0), int64(0), int64(0), int16(0), int64(0), ``)
	f.Add("i", "m", "k", "", "", "", int32(0), int64(0), int64(0), int16(0), int64(0), `{"v":1,"id":"x","message_id":"m","kind":"local"`)
	f.Add("i", "m", "k", "", "", "", int32(0), int64(0), int64(0), int16(0), int64(0), `[`+strings.Repeat(`{"v":1},`, 1000)+`]`)

	f.Fuzz(func(t *testing.T, id, messageID, kind, recipient, domain, token string, attempt int32, created, notBefore int64, offset int16, due int64, body string) {
		task := fuzzTask(id, messageID, kind, recipient, domain, token, attempt, created, notBefore, offset)
		dueAt := fuzzRecordTime(due, offset)
		out, err := q.encode(task, dueAt, time.Unix(0, 0))
		require.NoError(t, err)
		got, err := ParseTask(out.body)
		if task.ID == "" || task.MessageID == "" || task.Kind == "" {
			require.ErrorIs(t, err, ErrMalformed)
		} else {
			require.NoError(t, err, "%s", out.body)
			task.Lease = ""
			requireSameTask(t, task, got)
			b, err := parseTaskBody(out.body)
			require.NoError(t, err)
			require.True(t, dueAt.Equal(b.Due))
		}

		fromQueue, err := ParseTask(body)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			require.Zero(t, fromQueue)
			return
		}
		require.NotEmpty(t, fromQueue.ID)
		again, err := q.encode(fromQueue, time.Time{}, time.Unix(0, 0))
		require.NoError(t, err, "a received task must be sendable again: %s", body)
		back, err := ParseTask(again.body)
		require.NoError(t, err)
		requireSameTask(t, fromQueue, back)
	})
}

// FuzzParseDeadLetterRecord: a dead-letter record comes back as the task
// and record that were written, a task body the redrive policy moved
// there comes back as its task with no record, and anything else is
// ErrMalformed with nothing returned.
func FuzzParseDeadLetterRecord(f *testing.F) {
	f.Add("m|b.example", "m", "remote", "a@b.example", "b.example", "", int32(3), int64(1795746431493), int64(0), int16(0), "RECIPIENT_UNAVAILABLE", "gave up after 3 attempts: ü✓",
		`{"v":1,"dead_letter":{"message_id":"m","task_id":"m|b.example"},"task":{"id":"m|b.example","message_id":"m","kind":"remote"}}`)
	f.Add("x", "m", "local", "", "", "", int32(0), int64(0), int64(0), int16(0), "", "",
		`{"v":1,"id":"x","message_id":"m","kind":"local"}`)
	f.Add("", "", "", "", "", "", int32(0), int64(0), int64(0), int16(0), "", "", `{"v":2,"dead_letter":{},"task":{"id":"x"}}`)
	f.Add("i", "m", "k", "", "", "", int32(0), int64(0), int64(0), int16(0), "", "", `{"v":1,"dead_letter":null,"task":{"id":"x"}}`)
	f.Add("i", "m", "k", "", "", "", int32(0), int64(0), int64(0), int16(0), "", "", `{"v":1,"dead_letter":{},"dead_letter":5,"task":{"id":"x"}}`)
	f.Add("i", "m", "k", "", "", "", int32(0), int64(0), int64(0), int16(0), "", "", `{"v":1,"dead_letter":{},"task":{}}`)
	f.Add("i", "m", "k", "", "", "", int32(0), int64(0), int64(0), int16(0), "", "", `{"v":1,"dead_letter":{}`)
	f.Add("i", "m", "k", "", "", "", int32(0), int64(0), int64(0), int16(0), "", "", ``)

	f.Fuzz(func(t *testing.T, id, messageID, kind, recipient, domain, token string, attempt int32, created, notBefore int64, offset int16, code, msg, body string) {
		task := fuzzTask(id, messageID, kind, recipient, domain, token, attempt, created, notBefore, offset)
		dl := gateway.DeadLetter{MessageID: task.MessageID, TaskID: task.ID, Recipients: task.Recipients,
			FailureReason: strings.ToValidUTF8(code, ""), ErrorMessage: strings.ToValidUTF8(msg, ""), Attempts: task.Attempt,
			FirstAttempt: task.CreatedAt, LastAttempt: task.NotBefore, DLQTimestamp: task.CreatedAt}
		rec, err := encodeDeadLetter(task, dl)
		require.NoError(t, err)
		gotTask, gotDL, err := ParseDeadLetterRecord(rec)
		if task.ID == "" {
			require.ErrorIs(t, err, ErrMalformed)
		} else {
			require.NoError(t, err, "%s", rec)
			task.Lease = ""
			requireSameTask(t, task, gotTask)
			require.NotNil(t, gotDL)
			for _, p := range []struct{ want, got time.Time }{{dl.FirstAttempt, gotDL.FirstAttempt}, {dl.LastAttempt, gotDL.LastAttempt}, {dl.DLQTimestamp, gotDL.DLQTimestamp}} {
				require.True(t, p.want.Equal(p.got))
			}
			dl.FirstAttempt, dl.LastAttempt, dl.DLQTimestamp = gotDL.FirstAttempt, gotDL.LastAttempt, gotDL.DLQTimestamp
			require.Equal(t, dl, *gotDL)
		}

		fromDLQ, record, err := ParseDeadLetterRecord(body)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			require.Zero(t, fromDLQ)
			require.Nil(t, record)
			return
		}
		require.NotEmpty(t, fromDLQ.ID)
		if record == nil {
			asTask, err := ParseTask(body)
			require.NoError(t, err, "a record without dead_letter is a redriven task")
			require.Equal(t, asTask, fromDLQ)
		}
	})
}
