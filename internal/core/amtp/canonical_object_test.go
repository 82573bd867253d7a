package amtp

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCanonicalizeObject checks the member locations CanonicalizeObject
// reports, in the input and in the canonical form, by the text they cut
// out: "name": with whatever spacing the input has, and the value.
func TestCanonicalizeObject(t *testing.T) {
	type where struct {
		inName, inValue, canonValue string // "" for a member not found
	}
	// Enough members to leave the insertion sort for the general one.
	var many strings.Builder
	many.WriteString("{")
	for i := 30; i > 0; i-- {
		fmt.Fprintf(&many, `"m%02d":%d,`, i, i)
	}
	many.WriteString(`"a":[1,2]}`)

	for _, tc := range []struct {
		name  string
		in    string
		names []string
		want  []where
	}{
		{
			name:  "already canonical",
			in:    `{"a":1,"b":"x","c":{}}`,
			names: []string{"b", "c"},
			want:  []where{{`"b":`, `"x"`, `"x"`}, {`"c":`, `{}`, `{}`}},
		},
		{
			name:  "reordered and spaced",
			in:    " {\n \"z\" : 1.50 ,\"b\" :\t[ 1 , {\"z\":2} ] , \"a\":\"\\u00e9\" } \n",
			names: []string{"a", "z", "b"},
			want: []where{
				{`"a":`, `"\u00e9"`, `"é"`},
				{`"z" : `, `1.50`, `1.5`},
				{`"b" :` + "\t", `[ 1 , {"z":2} ]`, `[1,{"z":2}]`},
			},
		},
		{
			name:  "escaped name is found by its value",
			in:    `{"sign\u0061ture" : {"k":"}"} , "sender":"a@b.test"}`,
			names: []string{"signature", "sender"},
			want:  []where{{`"sign\u0061ture" : `, `{"k":"}"}`, `{"k":"}"}`}, {`"sender":`, `"a@b.test"`, `"a@b.test"`}},
		},
		{
			name:  "nested and quoted names are not top-level members",
			in:    `{"p":{"signature":1},"q":"\"signature\":2","r":[{"signature":3}]}`,
			names: []string{"signature"},
			want:  []where{{}},
		},
		{
			name:  "absent and present",
			in:    `{"b":null,"a":true}`,
			names: []string{"missing", "a"},
			want:  []where{{}, {`"a":`, `true`, `true`}},
		},
		{
			name:  "empty object",
			in:    `{ }`,
			names: []string{"a"},
			want:  []where{{}},
		},
		{
			name:  "no names asked",
			in:    `{"b":1,"a":2}`,
			names: nil,
			want:  []where{},
		},
		{
			name:  "many members",
			in:    many.String(),
			names: []string{"m01", "a", "m30"},
			want:  []where{{`"m01":`, `1`, `1`}, {`"a":`, `[1,2]`, `[1,2]`}, {`"m30":`, `30`, `30`}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.in)
			canon, spans, err := CanonicalizeObject(data, tc.names)
			require.NoError(t, err)
			plain, err := Canonicalize(data)
			require.NoError(t, err)
			assert.Equal(t, string(plain), string(canon), "same canonical form as Canonicalize")
			require.Len(t, spans, len(tc.want))
			for i, w := range tc.want {
				s := spans[i]
				if w == (where{}) {
					assert.False(t, s.Found, tc.names[i])
					continue
				}
				require.True(t, s.Found, tc.names[i])
				assert.Equal(t, w.inName, tc.in[s.In.Name:s.In.Value], "input name of %s", tc.names[i])
				assert.Equal(t, w.inValue, tc.in[s.In.Value:s.In.End], "input value of %s", tc.names[i])
				assert.Equal(t, `"`+tc.names[i]+`":`, string(canon[s.Canon.Name:s.Canon.Value]), "canonical name of %s", tc.names[i])
				assert.Equal(t, w.canonValue, string(canon[s.Canon.Value:s.Canon.End]), "canonical value of %s", tc.names[i])
			}
		})
	}
}

// TestCanonicalizeObjectRejects: what Canonicalize refuses is refused with
// the same error, and so is a top-level value that is not an object.
func TestCanonicalizeObjectRejects(t *testing.T) {
	const notObject = "top-level value is not an object"
	for _, tc := range []struct {
		name, in string
		names    []string
		want     string
	}{
		{"array", `[{"a":1}]`, []string{"a"}, notObject},
		{"array, no names asked", ` [{"a":1}]`, nil, notObject},
		{"string", `"{}"`, []string{"a"}, notObject},
		{"empty", ``, []string{"a"}, notObject},
		{"duplicate tracked name", `{"a":1,"\u0061":2}`, []string{"a"}, "duplicate object member name"},
		{"inexact number", `{"a":9007199254740993}`, []string{"a"}, "cannot be represented exactly"},
		{"lone surrogate", `{"a":"\ud800"}`, []string{"a"}, "unpaired high surrogate"},
		{"trailing data", `{"a":1}}`, []string{"a"}, "unexpected data after top-level value"},
		{"unterminated", `{"a":1`, []string{"a"}, "unexpected end of input in object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			canon, spans, err := CanonicalizeObject([]byte(tc.in), tc.names)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Nil(t, canon)
			assert.Nil(t, spans)
			if tc.want != notObject {
				_, plainErr := Canonicalize([]byte(tc.in))
				require.Error(t, plainErr)
				assert.Equal(t, plainErr.Error(), err.Error(), "same error as Canonicalize")
			}
		})
	}
}
