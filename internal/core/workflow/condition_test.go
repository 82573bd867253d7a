package workflow

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseConditionText(t *testing.T) {
	cases := []struct {
		in   string
		want Predicate
	}{
		{"approval@manager.com responds with approve=true", Predicate{"approval@manager.com", "approve", OpEq, json.RawMessage(`true`)}},
		{"Approval@MANAGER.com  RESPONDS \t With result.score >= 3.5", Predicate{"Approval@manager.com", "result.score", OpGe, json.RawMessage(`3.5`)}},
		{"a@x.com responds with status == approved", Predicate{"a@x.com", "status", OpEq, json.RawMessage(`"approved"`)}},
		{`a@x.com responds with status != "needs review"`, Predicate{"a@x.com", "status", OpNe, json.RawMessage(`"needs review"`)}},
		{"a@x.com responds with note = null", Predicate{"a@x.com", "note", OpEq, json.RawMessage(`null`)}},
		{"a@x.com responds with ok=false", Predicate{"a@x.com", "ok", OpEq, json.RawMessage(`false`)}},
		{"a@x.com responds with n<-2E3", Predicate{"a@x.com", "n", OpLt, json.RawMessage(`-2E3`)}},
		{"a@x.com responds with n <= 0", Predicate{"a@x.com", "n", OpLe, json.RawMessage(`0`)}},
		{"a@x.com responds with n > 10", Predicate{"a@x.com", "n", OpGt, json.RawMessage(`10`)}},
		{`a@x.com responds with items.0.sku = "A<B"`, Predicate{"a@x.com", "items.0.sku", OpEq, json.RawMessage(`"A\u003cB"`)}},
		{"a@x.com responds with v = 1.2.3", Predicate{"a@x.com", "v", OpEq, json.RawMessage(`"1.2.3"`)}},
		{"a@x.com responds with mode = Infinity", Predicate{"a@x.com", "mode", OpEq, json.RawMessage(`"Infinity"`)}},
		{"  a@x.com\nresponds\nwith\nkey_1-b = x  ", Predicate{"a@x.com", "key_1-b", OpEq, json.RawMessage(`"x"`)}},
		{"a@x.com responds with größe = groß", Predicate{"a@x.com", "größe", OpEq, json.RawMessage(`"groß"`)}},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCondition(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			again, err := ParseCondition(got.String())
			require.NoError(t, err, "re-parse of %q", got.String())
			require.Equal(t, got, again)
		})
	}
}

func TestParseConditionMalformed(t *testing.T) {
	cases := []struct {
		name, in string
		code     amtp.Code
	}{
		{"empty", "", amtp.CodeInvalidMessageFormat},
		{"blank", "   ", amtp.CodeInvalidMessageFormat},
		{"no address", "responds with approve=true", amtp.CodeInvalidMessageFormat},
		{"bad address", "approval responds with approve=true", amtp.CodeInvalidRecipient},
		{"address with display name", "<a@x.com> responds with approve=true", amtp.CodeInvalidRecipient},
		{"missing responds with", "a@x.com approve=true", amtp.CodeInvalidMessageFormat},
		{"missing with", "a@x.com responds approve=true", amtp.CodeInvalidMessageFormat},
		{"with glued to the path", "a@x.com responds withapprove=true", amtp.CodeInvalidMessageFormat},
		{"nothing after responds with", "a@x.com responds with", amtp.CodeInvalidMessageFormat},
		{"empty path", "a@x.com responds with =true", amtp.CodeInvalidMessageFormat},
		{"empty path segment", "a@x.com responds with a..b = 1", amtp.CodeInvalidMessageFormat},
		{"trailing dot", "a@x.com responds with a. = 1", amtp.CodeInvalidMessageFormat},
		{"bad path character", "a@x.com responds with a$b = 1", amtp.CodeInvalidMessageFormat},
		{"quoted path", `a@x.com responds with "a" = 1`, amtp.CodeInvalidMessageFormat},
		{"no operator", "a@x.com responds with approve", amtp.CodeInvalidMessageFormat},
		{"word for an operator", "a@x.com responds with approve is true", amtp.CodeInvalidMessageFormat},
		{"no value", "a@x.com responds with approve =", amtp.CodeInvalidMessageFormat},
		{"operator =>", "a@x.com responds with approve => 1", amtp.CodeInvalidMessageFormat},
		{"operator ===", "a@x.com responds with approve === 1", amtp.CodeInvalidMessageFormat},
		{"operator <>", "a@x.com responds with approve <> 1", amtp.CodeInvalidMessageFormat},
		{"operator !", "a@x.com responds with approve ! 1", amtp.CodeInvalidMessageFormat},
		{"operator split by a space", "a@x.com responds with approve = =1", amtp.CodeInvalidMessageFormat},
		{"operator ~", "a@x.com responds with approve ~ 1", amtp.CodeInvalidMessageFormat},
		{"unterminated string", `a@x.com responds with s = "open`, amtp.CodeInvalidMessageFormat},
		{"bad escape", `a@x.com responds with s = "\x"`, amtp.CodeInvalidMessageFormat},
		{"two strings", `a@x.com responds with s = "a" "b"`, amtp.CodeInvalidMessageFormat},
		{"object", `a@x.com responds with s = {"a":1}`, amtp.CodeInvalidMessageFormat},
		{"array", `a@x.com responds with s = [1]`, amtp.CodeInvalidMessageFormat},
		{"capitalised true", "a@x.com responds with approve = True", amtp.CodeInvalidMessageFormat},
		{"capitalised null", "a@x.com responds with x = NULL", amtp.CodeInvalidMessageFormat},
		{"leading zero", "a@x.com responds with n = 01", amtp.CodeInvalidMessageFormat},
		{"plus sign", "a@x.com responds with n = +1", amtp.CodeInvalidMessageFormat},
		{"bare fraction", "a@x.com responds with n = .5", amtp.CodeInvalidMessageFormat},
		{"trailing point", "a@x.com responds with n = 1.", amtp.CodeInvalidMessageFormat},
		{"unquoted spaces", "a@x.com responds with s = two words", amtp.CodeInvalidMessageFormat},
		{"ordering against a word", "a@x.com responds with n > high", amtp.CodeInvalidMessageFormat},
		{"ordering against a string", `a@x.com responds with n >= "3"`, amtp.CodeInvalidMessageFormat},
		{"ordering against a boolean", "a@x.com responds with n < true", amtp.CodeInvalidMessageFormat},
		{"ordering against null", "a@x.com responds with n <= null", amtp.CodeInvalidMessageFormat},
		{"too long", "a@x.com responds with s = " + strings.Repeat("x", maxConditionLen), amtp.CodeInvalidMessageFormat},
		{"invalid UTF-8", "a@x.com responds with s = \xff", amtp.CodeInvalidMessageFormat},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCondition(tc.in)
			require.Error(t, err)
			var ce *conditionError
			require.True(t, errors.As(err, &ce))
			require.Equal(t, tc.code, ce.code)
			require.Empty(t, ce.member, "the text form has no members")
			require.NotEmpty(t, ce.msg)
		})
	}
}

func TestParseIfStructured(t *testing.T) {
	good := []struct {
		in   string
		want Predicate
	}{
		{`{"participant":"a@X.com","path":"approve","op":"=","value":true}`, Predicate{"a@x.com", "approve", OpEq, json.RawMessage(`true`)}},
		{`{"participant":"a@x.com","path":"r.score","op":"==","value":3.50}`, Predicate{"a@x.com", "r.score", OpEq, json.RawMessage(`3.50`)}},
		{`{"participant":"a@x.com","path":"s","op":"!=","value":"a b<"}`, Predicate{"a@x.com", "s", OpNe, json.RawMessage(`"a b\u003c"`)}},
		{`{"participant":"a@x.com","path":"s","op":"=","value":null}`, Predicate{"a@x.com", "s", OpEq, json.RawMessage(`null`)}},
		{` {"value": -1, "op": "<", "path": "n", "participant": "a@x.com"} `, Predicate{"a@x.com", "n", OpLt, json.RawMessage(`-1`)}},
	}
	for _, tc := range good {
		got, err := parseIf(json.RawMessage(tc.in))
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
		again, err := ParseCondition(got.String())
		require.NoError(t, err, "every structured condition can be written as text: %q", got.String())
		require.Equal(t, got, again)
	}

	bad := []struct {
		in, member string
		code       amtp.Code
	}{
		{`{"participant":"a@x.com","path":"p","op":"=="}`, "value", amtp.CodeInvalidMessageFormat},
		{`{"path":"p","op":"=","value":1}`, "participant", amtp.CodeInvalidMessageFormat},
		{`{"participant":"a@x.com","op":"=","value":1}`, "path", amtp.CodeInvalidMessageFormat},
		{`{"participant":"a@x.com","path":"p","value":1}`, "op", amtp.CodeInvalidMessageFormat},
		{`{"participant":"nobody","path":"p","op":"=","value":1}`, "participant", amtp.CodeInvalidRecipient},
		{`{"participant":"a@x.com","path":"","op":"=","value":1}`, "path", amtp.CodeInvalidMessageFormat},
		{`{"participant":"a@x.com","path":"a b","op":"=","value":1}`, "path", amtp.CodeInvalidMessageFormat},
		{`{"participant":"a@x.com","path":"p","op":"eq","value":1}`, "op", amtp.CodeInvalidMessageFormat},
		{`{"participant":"a@x.com","path":"p","op":"=","value":{"a":1}}`, "value", amtp.CodeInvalidMessageFormat},
		{`{"participant":"a@x.com","path":"p","op":"=","value":[]}`, "value", amtp.CodeInvalidMessageFormat},
		{`{"participant":"a@x.com","path":"p","op":">","value":"3"}`, "value", amtp.CodeInvalidMessageFormat},
		{`{"participant":"a@x.com","path":"p","op":"=","value":1,"operator":"="}`, "", amtp.CodeInvalidMessageFormat},
		{`{"participant":1,"path":"p","op":"=","value":1}`, "", amtp.CodeInvalidMessageFormat},
		{`true`, "", amtp.CodeInvalidMessageFormat},
		{`42`, "", amtp.CodeInvalidMessageFormat},
		{`["a@x.com responds with a = 1"]`, "", amtp.CodeInvalidMessageFormat},
	}
	for _, tc := range bad {
		_, err := parseIf(json.RawMessage(tc.in))
		var ce *conditionError
		require.True(t, errors.As(err, &ce), "%s: %v", tc.in, err)
		assert.Equal(t, tc.member, ce.member, tc.in)
		assert.Equal(t, tc.code, ce.code, tc.in)
	}
}

func TestEval(t *testing.T) {
	cases := []struct {
		payload, cond string
		want          bool
	}{
		// numbers, every operator
		{`{"n":5}`, "n = 5", true},
		{`{"n":5}`, "n == 5.0", true},
		{`{"n":5}`, "n = 5e0", true},
		{`{"n":5}`, "n = 50e-1", true},
		{`{"n":5}`, "n = 6", false},
		{`{"n":5}`, "n != 5", false},
		{`{"n":5}`, "n != 6", true},
		{`{"n":5}`, "n > 4", true},
		{`{"n":5}`, "n > 5", false},
		{`{"n":5}`, "n >= 5", true},
		{`{"n":5}`, "n >= 5.01", false},
		{`{"n":5}`, "n < 5", false},
		{`{"n":5}`, "n < 6", true},
		{`{"n":5}`, "n <= 5", true},
		{`{"n":5}`, "n <= 4.99", false},
		{`{"n":-0.5}`, "n < 0", true},
		{`{"n":-0.5}`, "n > -1", true},
		{`{"n":-2}`, "n < -1", true},
		{`{"n":0}`, "n = -0", true},
		{`{"n":1e2}`, "n = 100", true},
		{`{"n":0.001}`, "n < 0.01", true},
		{`{"n":123.45}`, "n > 123.4", true},
		{`{"n":1e-400}`, "n > 0", true},
		{`{"n":1e400}`, "n > 1e399", true},
		// exactness where float64 would round both sides together
		{`{"id":12345678901234567891}`, "id = 12345678901234567890", false},
		{`{"id":12345678901234567891}`, "id > 12345678901234567890", true},
		{`{"n":0.1}`, "n < 0.10000000000000001", true},
		// booleans
		{`{"approve":true}`, "approve = true", true},
		{`{"approve":true}`, "approve = false", false},
		{`{"approve":false}`, "approve != true", true},
		{`{"approve":true}`, "approve != true", false},
		{`{"approve":true}`, "approve = 1", false},
		{`{"n":true}`, "n > 0", false},
		// strings
		{`{"s":"approved"}`, "s = approved", true},
		{`{"s":"approved"}`, `s == "approved"`, true},
		{`{"s":"approved"}`, "s = Approved", false},
		{`{"s":"approved"}`, "s != approved", false},
		{`{"s":"a<b & c"}`, `s = "a<b & c"`, true},
		{`{"s":"5"}`, "s = 5", false},
		{`{"s":"5"}`, "s > 4", false},
		{`{"s":"5"}`, "s != 5", true},
		{`{"s":"true"}`, "s = true", false},
		// null
		{`{"x":null}`, "x = null", true},
		{`{"x":null}`, "x != null", false},
		{`{"x":0}`, "x = null", false},
		{`{"x":0}`, "x != null", true},
		{`{"x":null}`, "x < 1", false},
		// nested paths and arrays
		{`{"result":{"score":4.5}}`, "result.score >= 4.5", true},
		{`{"result":{"score":4.5}}`, "result.score > 4.5", false},
		{`{"a":{"b":{"c":{"d":"deep"}}}}`, "a.b.c.d = deep", true},
		{`{"items":[{"sku":"A"},{"sku":"B"}]}`, "items.1.sku = B", true},
		{`{"items":[{"sku":"A"},{"sku":"B"}]}`, "items.0.sku = B", false},
		{`{"items":[{"sku":"A"}]}`, "items.2.sku = A", false},
		{`{"items":[{"sku":"A"}]}`, "items.00.sku = A", false},
		{`{"items":[{"sku":"A"}]}`, "items.-1.sku = A", false},
		{`{"0":"zero"}`, "0 = zero", true},
		{`["first"]`, "0 = first", true},
		// missing paths: every operator false
		{`{}`, "x = null", false},
		{`{}`, "x != null", false},
		{`{}`, "x != 1", false},
		{`{"result":{}}`, "result.score > 1", false},
		{`{"result":5}`, "result.score = 5", false},
		{`{"result":"str"}`, "result.0 = s", false},
		// incompatible shapes
		{`{"x":{"a":1}}`, "x = 1", false},
		{`{"x":{"a":1}}`, "x != 1", true},
		{`{"x":[1]}`, "x > 0", false},
		// payloads that are not objects, or not JSON
		{`5`, "x = 5", false},
		{`"s"`, "x = s", false},
		{`{`, "x != 1", false},
		{``, "x != 1", false},
		{`{"x":1} trailing`, "x = 1", false},
	}
	for _, tc := range cases {
		t.Run(tc.cond+" on "+tc.payload, func(t *testing.T) {
			p, err := ParseCondition("p@x.com responds with " + tc.cond)
			require.NoError(t, err)
			require.Equal(t, tc.want, p.Eval(json.RawMessage(tc.payload)))
		})
	}
}

func TestDecimalOrder(t *testing.T) {
	// Each number is strictly smaller than the next; equal spellings are
	// grouped.
	groups := [][]string{
		{"-1e400"},
		{"-12345678901234567891"},
		{"-12345678901234567890", "-1.234567890123456789e19"},
		{"-100", "-1e2", "-100.000"},
		{"-1.5"},
		{"-1", "-1.0", "-10e-1"},
		{"-0.001"},
		{"0", "-0", "0.0", "0e10", "-0e-5"},
		{"1e-400"},
		{"0.001", "1e-3", "1E-3"},
		{"0.1"},
		{"0.10000000000000001"},
		{"1", "1.000", "10E-1", "0.1e1"},
		{"1.5"},
		{"2"},
		{"10", "1e1", "1e+1"},
		{"12345678901234567890"},
		{"12345678901234567891"},
		{"1e400"},
	}
	var all []struct {
		group int
		d     decimal
	}
	for gi, g := range groups {
		for _, s := range g {
			d, ok := parseDecimal(s)
			require.True(t, ok, s)
			all = append(all, struct {
				group int
				d     decimal
			}{gi, d})
		}
	}
	for _, x := range all {
		for _, y := range all {
			want := 0
			switch {
			case x.group < y.group:
				want = -1
			case x.group > y.group:
				want = 1
			}
			require.Equal(t, want, x.d.cmp(y.d), "%+v vs %+v", x.d, y.d)
		}
	}
	for _, s := range []string{"", "-", "01", "+1", ".5", "1.", "1e", "1e+", "0x10", "1_0", "NaN", "Infinity", "1 ", " 1", "--1", "1.2.3"} {
		_, ok := parseDecimal(s)
		require.False(t, ok, "%q is not a JSON number", s)
	}
}
