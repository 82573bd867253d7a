package workflow

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func FuzzCondition(f *testing.F) {
	for _, s := range []string{
		"approval@manager.com responds with approve=true",
		"a@x.com responds with result.score >= 3.5",
		`a@x.com responds with s != "two words"`,
		"a@x.com responds with items.0.sku = A-1",
		"a@x.com responds with n < -1e-3",
		"a@x.com responds with x = null",
		"a@x.com RESPONDS WITH x==false",
		"a@x.com responds with s = \"\\u00e9\\ud83d\\ude00<&>\"",
		"a@x.com responds with x => 1",
		"a@x.com responds with x = True",
		"a@x.com responds with = 1",
		"responds with x = 1",
	} {
		f.Add(s, []byte(`{"approve":true,"result":{"score":4},"items":[{"sku":"A-1"}],"n":-0.01,"s":"two words","x":null}`))
	}
	f.Fuzz(func(t *testing.T, s string, payload []byte) {
		p, err := ParseCondition(s)
		if err != nil {
			var ce *conditionError
			require.True(t, errors.As(err, &ce), "every refusal says where: %T %v", err, err)
			return
		}
		text := p.String()
		again, err := ParseCondition(text)
		require.NoError(t, err, "%q formatted as %q", s, text)
		require.Equal(t, p, again, "%q formatted as %q", s, text)

		// The structured form of an accepted condition is accepted too.
		structured, err := json.Marshal(p)
		require.NoError(t, err)
		fromJSON, err := parseIf(structured)
		require.NoError(t, err, "%s", structured)
		require.Equal(t, p, fromJSON)

		got := p.Eval(payload)
		require.Equal(t, got, again.Eval(payload), "evaluation is deterministic")
		if doc, ok := decodeJSON(payload); ok && (p.Op == OpEq || p.Op == OpNe) {
			if _, present := lookup(doc, p.Path); present {
				neg := p
				neg.Op = map[Op]Op{OpEq: OpNe, OpNe: OpEq}[p.Op]
				require.NotEqual(t, got, neg.Eval(payload), "!= negates = on a present path")
			}
		}
	})
}

// FuzzApply drives workflows with arbitrary event sequences and checks the
// invariants every driver relies on.
func FuzzApply(f *testing.F) {
	coords := []struct {
		rcpts []string
		coord string
	}{
		{[]string{a, b, c}, `{"type":"parallel","timeout":100,"required_responses":["a@x.com","b@x.com"]}`},
		{[]string{a, b, c}, `{"type":"parallel","timeout":100}`},
		{[]string{a, b, c}, `{"type":"sequential","timeout":100,"sequence":["a@x.com","b@x.com","c@x.com"],"stop_on_failure":true}`},
		{[]string{a, b, c}, `{"type":"sequential","timeout":100,"sequence":["c@x.com","a@x.com","b@x.com"]}`},
		{[]string{a, b, c}, `{"type":"conditional","timeout":100,"conditions":[{"if":"a@x.com responds with ok = true","then":["b@x.com"],"else":["c@x.com"]},{"if":"b@x.com responds with n > 1","then":["c@x.com"]}]}`},
	}
	f.Add(uint8(0), []byte{0, 4, 8})
	f.Add(uint8(2), []byte{0, 5, 9, 2})
	f.Add(uint8(4), []byte{0, 4, 8, 12, 3})
	f.Fuzz(func(t *testing.T, which uint8, script []byte) {
		cfg := coords[int(which)%len(coords)]
		s, acts, err := Start(message(t, cfg.rcpts, cfg.coord), t0)
		require.NoError(t, err)
		asked := map[string]bool{}
		for _, to := range sent(acts) {
			asked[to] = true
		}
		who := []string{a, b, c, "stranger@y.com"}
		payloads := []string{`{"ok":true,"n":2}`, `{"ok":false,"n":0}`}
		results, sec := 0, 0
		for _, op := range script {
			sec += int(op>>6) * 20
			from := who[int(op>>2)%len(who)]
			var e Event
			switch op % 4 {
			case 0:
				e = reply(from, payloads[int(op>>4)%2], sec)
			case 1:
				e = replyErr(from, `{}`, sec)
			case 2:
				e = undeliverable(from, sec)
			default:
				e = timeout(sec)
			}
			next, acts, err := Apply(s, e)
			if err != nil {
				require.Equal(t, s, next)
				require.Empty(t, acts)
				if s.Status.Terminal() {
					require.True(t, errors.Is(err, ErrFinished) || errors.Is(err, ErrNotParticipant), "%v", err)
				}
				continue
			}
			require.Equal(t, s.Version+1, next.Version)
			require.False(t, s.Status.Terminal(), "nothing changes a finished workflow")
			if next.Status.Terminal() {
				requireEnd(t, next, acts, next.Status)
				results++
				for _, p := range next.Participants {
					require.NotContains(t, []ParticipantStatus{ParticipantPending, ParticipantAwaiting}, p.Status)
				}
			}
			for _, to := range sent(acts) {
				require.False(t, asked[to], "%s is asked at most once", to)
				asked[to] = true
				require.Equal(t, ParticipantAwaiting, participant(t, next, to).Status)
			}
			raw, err := json.Marshal(next)
			require.NoError(t, err)
			var back State
			require.NoError(t, json.Unmarshal(raw, &back))
			require.Equal(t, next, back)
			s = next
		}
		require.LessOrEqual(t, results, 1)
		if s.Status.Terminal() {
			_, err := ResultMessage(s, "acme.com", at(sec))
			require.NoError(t, err)
		}
	})
}
