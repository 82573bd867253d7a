package amtp

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jcsRFCExampleInput is the RFC 8785 §3.2.3 sample with one number
// respelt: the RFC's 333333333.33333329 has a digit more than the double
// it denotes, whose shortest spelling 333333333.3333333 it is written as
// here (I-JSON numbers must be exact, see jcsRFCExampleVerbatim). The
// expected output is the one printed in the RFC.
const (
	jcsRFCExampleInput = `{
  "numbers": [333333333.3333333, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`
	// jcsRFCExampleVerbatim is the sample as the RFC prints it.
	jcsRFCExampleVerbatim = `{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`
	jcsRFCExampleOutput = `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`
)

// jcsNumberVectors map JSON number text to ECMAScript's String(JSON.parse(x)).
// Every expected value was produced with Node.js rather than written by hand;
// where Node's input was not exact (jcsInexactNumbers), its output, a fixed
// point, is the input instead.
var jcsNumberVectors = []struct{ in, want string }{
	{"0", "0"},
	{"-0", "0"},
	{"-0.0", "0"},
	{"0e10", "0"},
	{"1", "1"},
	{"-1", "-1"},
	{"1.0", "1"},
	{"1e0", "1"},
	{"10.0e-1", "1"},
	{"1.5", "1.5"},
	{"0.1", "0.1"},
	{"0.30000000000000004", "0.30000000000000004"},
	{"100", "100"},
	{"1E2", "100"},
	{"1e2", "100"},
	{"4.35", "4.35"},
	{"4.50", "4.5"},
	{"2e-3", "0.002"},
	{"1E30", "1e+30"},
	{"1e20", "100000000000000000000"},
	{"1e21", "1e+21"},
	{"0.1e22", "1e+21"},
	{"1e22", "1e+22"},
	{"1e23", "1e+23"},
	{"123456789012345680000", "123456789012345680000"},
	{"295147905179352830000", "295147905179352830000"},
	{"12345678901234567000", "12345678901234567000"},
	{"123456789012345680", "123456789012345680"},
	{"999999999999999", "999999999999999"},
	{"10000000000000000", "10000000000000000"},
	{"1e15", "1000000000000000"},
	{"1e16", "10000000000000000"},
	{"9007199254740992", "9007199254740992"},
	{"-9007199254740992", "-9007199254740992"},
	{"333333333.3333333", "333333333.3333333"},
	{"1e-5", "0.00001"},
	{"2.5e-5", "0.000025"},
	{"1e-6", "0.000001"},
	{"0.000001", "0.000001"},
	{"0.0000015", "0.0000015"},
	{"1e-7", "1e-7"},
	{"1.2e-7", "1.2e-7"},
	{"1.5e-7", "1.5e-7"},
	{"123e-20", "1.23e-18"},
	{"0.000000000000000000000000001", "1e-27"},
	{"5e-324", "5e-324"},
	{"2.2250738585072014e-308", "2.2250738585072014e-308"},
	{"1.7976931348623157e308", "1.7976931348623157e+308"},
	{"1.7976931348623157e+308", "1.7976931348623157e+308"},
	{"-1.5e300", "-1.5e+300"},
	{"0.10000000000000000000", "0.1"},
	{"0e-400", "0"},
	{"-0.000e+99999", "0"},
}

// jcsInexactNumbers are numbers that no double holds exactly: each parses
// to a double whose shortest round-trip spelling has another value.
var jcsInexactNumbers = []string{
	"12345678901234567890",
	"12345678901234567891",
	"123456789012345678",
	"9999999999999999",
	"9007199254740993",
	"-9007199254740993",
	"9007199254740992.50000000001",
	"333333333.333333290001",
	"0.10000000000000000001",
	"2.00000000000000000001",
	"0.30000000000000004441",
	"4.9406564584124654000001e-324",
	"1.7976931348623158000001e308",
	// Overflow: out of range altogether.
	"1e400",
	"-1e400",
	"1.8e308",
	"1e99999999999999999999",
	// Underflow: they would become 0.
	"1e-400",
	"-1e-400",
	"1e-324",
	"0." + strings.Repeat("0", 400) + "1",
	"1e-99999999999999999999",
}

// jcsBitsVectors is the RFC 8785 Appendix B table (IEEE 754 bits to
// ECMAScript text); each value was re-derived with Node.js.
var jcsBitsVectors = []struct {
	bits uint64
	want string
}{
	{0x0000000000000000, "0"},
	{0x8000000000000000, "0"},
	{0x0000000000000001, "5e-324"},
	{0x8000000000000001, "-5e-324"},
	{0x7fefffffffffffff, "1.7976931348623157e+308"},
	{0xffefffffffffffff, "-1.7976931348623157e+308"},
	{0x4340000000000000, "9007199254740992"},
	{0xc340000000000000, "-9007199254740992"},
	{0x4430000000000000, "295147905179352830000"},
	{0x44b52d02c7e14af5, "9.999999999999997e+22"},
	{0x44b52d02c7e14af6, "1e+23"},
	{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
	{0x444b1ae4d6e2ef4e, "999999999999999700000"},
	{0x444b1ae4d6e2ef4f, "999999999999999900000"},
	{0x444b1ae4d6e2ef50, "1e+21"},
	{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
	{0x3eb0c6f7a0b5ed8d, "0.000001"},
	{0x41b3de4355555553, "333333333.3333332"},
	{0x41b3de4355555554, "333333333.33333325"},
	{0x41b3de4355555555, "333333333.3333333"},
	{0x41b3de4355555556, "333333333.3333334"},
	{0x41b3de4355555557, "333333333.33333343"},
	{0xbecbf647612f3696, "-0.0000033333333333333333"},
	{0x43143ff3c1cb0959, "1424953923781206.2"},
	{0x3e7ad7f29abcaf48, "1e-7"},
}

var jcsStringVectors = []struct{ name, in, want string }{
	{"empty", `""`, `""`},
	{"plain", `"hello"`, `"hello"`},
	{"nul", `"\u0000"`, `"\u0000"`},
	{"unit separator upper hex", `"\u001F"`, `"\u001f"`},
	{"short forms kept", `"\b\f\n\r\t"`, `"\b\f\n\r\t"`},
	{"short forms from \\u", `"\u0008\u000c\u000A\u000d\u0009"`, `"\b\f\n\r\t"`},
	{"other controls", `"\u0001\u000b\u000e\u001a"`, `"\u0001\u000b\u000e\u001a"`},
	{"quote and backslash", `"\"\\"`, `"\"\\"`},
	{"quote and backslash from \\u", `"\u0022\u005C"`, `"\"\\"`},
	{"solidus", `"\/a/b"`, `"/a/b"`},
	{"del escaped", `"\u007f"`, "\"\x7f\""},
	{"del raw", "\"\x7f\"", "\"\x7f\""},
	{"html characters", `"\u003c\u003e\u0026<>&"`, `"<>&<>&"`},
	{"line separators", `"\u2028\u2029"`, "\"\u2028\u2029\""},
	{"latin-1 escaped", `"\u00e9\u00C9"`, `"éÉ"`},
	{"latin-1 raw", `"é"`, `"é"`},
	{"c1 control", `"\u0080"`, "\"\u0080\""},
	{"surrogate pair", `"\ud83d\ude00"`, `"😀"`},
	{"surrogate pair upper hex", `"\uD83D\uDE00"`, `"😀"`},
	{"astral raw", `"😀𝄞"`, `"😀𝄞"`},
	{"replacement character", `"\ufffd�"`, `"��"`},
	{"noncharacter", `"\uffff"`, "\"\uffff\""},
	{"escape between raw text", `"a\tb\u00e9c"`, `"a\tbéc"`},
}

func TestCanonicalizeRFC8785Example(t *testing.T) {
	got, err := Canonicalize([]byte(jcsRFCExampleInput))
	require.NoError(t, err)
	assert.Equal(t, jcsRFCExampleOutput, string(got))

	// The RFC's own spelling of its first number has the 17 digits a
	// serialiser prints for a double: accepted, and canonicalised as the
	// RFC says.
	got, err = Canonicalize([]byte(jcsRFCExampleVerbatim))
	require.NoError(t, err)
	assert.Equal(t, jcsRFCExampleOutput, string(got))
}

// Numbers with a fraction or an exponent may round, as doubles printed
// with 17 digits do; an integer written without either may not.
func TestCanonicalizeRoundingSpellings(t *testing.T) {
	for in, want := range map[string]string{
		"9007199254740992.5":      "9007199254740992",
		"333333333.33333329":      "333333333.3333333",
		"4.940656458412465e-324":  "5e-324",
		"2.4703282292062328e-324": "5e-324",
		"1.7976931348623158e308":  "1.7976931348623157e+308",
		"1.2345678901234567e19":   "12345678901234567000",
	} {
		got, err := Canonicalize([]byte(in))
		require.NoError(t, err, in)
		assert.Equal(t, want, string(got), in)
	}
	for _, in := range []string{"12345678901234567890", "12345678901234567891", "1.2345678901234567890e19"} {
		_, err := Canonicalize([]byte(in))
		assert.Error(t, err, in)
	}
}

// TestCanonicalizeRFC8785Sorting is the member-ordering sample of RFC 8785
// §3.2.3, whose names differ in UTF-8 and UTF-16 order (U+FB33 vs U+1F600).
func TestCanonicalizeRFC8785Sorting(t *testing.T) {
	in := `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`
	want := `{"\r":"Carriage Return","1":"One","` + "\u0080" + `":"Control",` +
		`"ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign",` +
		`"😀":"Emoji: Grinning Face","` + "\ufb33" + `":"Hebrew Letter Dalet With Dagesh"}`
	got, err := Canonicalize([]byte(in))
	require.NoError(t, err)
	assert.Equal(t, want, string(got))
}

func TestCanonicalizeNumbers(t *testing.T) {
	for _, tc := range jcsNumberVectors {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Canonicalize([]byte(tc.in))
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))

			got, err = Canonicalize([]byte("[" + tc.in + "]"))
			require.NoError(t, err)
			assert.Equal(t, "["+tc.want+"]", string(got))
		})
	}
}

// TestCanonicalizeInexactNumbers: I-JSON numbers must be exact, wherever
// they are, and the error names where the number starts.
func TestCanonicalizeInexactNumbers(t *testing.T) {
	const msg = "amtp: canonical json: number cannot be represented exactly as an IEEE 754 double at offset "
	for _, in := range jcsInexactNumbers {
		t.Run(in, func(t *testing.T) {
			for _, wrap := range []struct{ before, after string }{
				{"", ""},
				{"[", "]"},
				{`{"payload":{"amount":`, `}}`},
				{`{"b":[true,{"c":`, `}],"a":1}`},
				{" \n[1, ", " ]"},
			} {
				in := wrap.before + in + wrap.after
				got, err := Canonicalize([]byte(in))
				require.EqualError(t, err, msg+strconv.Itoa(len(wrap.before)), in)
				assert.Nil(t, got)

				_, err = CanonicalSHA256([]byte(in))
				require.Error(t, err, in)
				dst := []byte("keep")
				out, err := AppendCanonical(dst, []byte(in))
				require.Error(t, err, in)
				assert.Equal(t, "keep", string(out))
			}
		})
	}
}

// jcsExactReference decides exactness the slow way: the number's exact
// rational value against that of the shortest spelling of its double.
func jcsExactReference(t *testing.T, text string) bool {
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return false // out of range
	}
	written, ok := new(big.Rat).SetString(text)
	require.True(t, ok, text)
	shortest, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'e', -1, 64))
	require.True(t, ok, text)
	if written.Cmp(shortest) == 0 {
		return true
	}
	// Not exact: a fraction or exponent of at most 17 significant digits
	// that neither overflowed nor underflowed is a double's spelling.
	mant, _, _ := strings.Cut(strings.ToLower(strings.TrimLeft(text, "-")), "e")
	if !strings.ContainsAny(text, ".eE") || f == 0 {
		return false
	}
	sig := strings.Trim(strings.Replace(mant, ".", "", 1), "0")
	return len(sig) <= 17
}

// TestCanonicalizeNumberExactness holds the exactness check to
// jcsExactReference over random spellings: of random doubles (shortest,
// with 17 to 25 significant digits, padded with zeros, moved by a digit
// far down) and of random digit strings.
func TestCanonicalizeNumberExactness(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		return string(b)
	}
	var texts []string
	for range 5000 {
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		short := strconv.FormatFloat(f, 'e', -1, 64)
		mant, exp, _ := strings.Cut(short, "e")
		if !strings.Contains(mant, ".") {
			mant += "."
		}
		texts = append(texts,
			short,
			strconv.FormatFloat(f, 'e', 16+rng.IntN(9), 64),
			mant+"000e"+exp,
			mant+strings.Repeat("0", rng.IntN(30))+"1e"+exp,
			strconv.FormatFloat(f, 'f', -1, 64),
		)
	}
	for range 20000 {
		text := ""
		if rng.IntN(2) == 0 {
			text = "-"
		}
		if rng.IntN(4) == 0 {
			text += "0"
		} else {
			text += string(byte('1'+rng.IntN(9))) + digits(rng.IntN(25))
		}
		if rng.IntN(2) == 0 {
			text += "." + digits(1+rng.IntN(25))
		}
		if rng.IntN(2) == 0 {
			text += "eE"[rng.IntN(2):][:1] + []string{"", "+", "-"}[rng.IntN(3)] + strconv.Itoa(rng.IntN(700))
		}
		texts = append(texts, text)
	}
	accepted := 0
	for _, text := range texts {
		require.True(t, json.Valid([]byte(text)), text)
		want := jcsExactReference(t, text)
		got, err := Canonicalize([]byte(text))
		require.Equal(t, want, err == nil, "%s: %v", text, err)
		if err == nil {
			accepted++
			f, _ := strconv.ParseFloat(text, 64)
			require.Equal(t, string(jcsAppendFloat(nil, f)), string(got), text)
		}
	}
	// Both answers must be well represented for the comparison to mean much.
	assert.Greater(t, accepted, len(texts)/5)
	assert.Less(t, accepted, len(texts)*4/5)
}

// FuzzCanonicalNumber holds the exactness check to jcsExactReference on
// any JSON number whose exponent is small enough for big.Rat to expand.
func FuzzCanonicalNumber(f *testing.F) {
	for _, v := range jcsNumberVectors {
		f.Add(v.in)
	}
	for _, v := range jcsInexactNumbers {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" || scanNumber([]byte(s), 0) != len(s) {
			return
		}
		if i := strings.IndexAny(s, "eE"); i >= 0 && len(s)-i > 6 {
			return
		}
		got, err := Canonicalize([]byte(s))
		require.Equal(t, jcsExactReference(t, s), err == nil, "%s: %v", s, err)
		if err == nil {
			v, _ := strconv.ParseFloat(s, 64)
			require.Equal(t, string(jcsAppendFloat(nil, v)), string(got), s)
		}
	})
}

func TestCanonicalizeNumberBits(t *testing.T) {
	for _, tc := range jcsBitsVectors {
		t.Run(strconv.FormatUint(tc.bits, 16), func(t *testing.T) {
			f := math.Float64frombits(tc.bits)
			// The expected text must denote exactly this double, otherwise
			// the vector itself is wrong.
			back, err := strconv.ParseFloat(tc.want, 64)
			require.NoError(t, err)
			if f != 0 {
				require.Equal(t, tc.bits, math.Float64bits(back))
			}

			assert.Equal(t, tc.want, string(jcsAppendFloat(nil, f)))

			got, err := Canonicalize([]byte(strconv.FormatFloat(f, 'g', -1, 64)))
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
		})
	}
}

// TestCanonicalizeNumberRoundTrip checks, over many random doubles, that the
// output parses back to the same value and uses ECMAScript's notation choice.
func TestCanonicalizeNumberRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		s := string(jcsAppendFloat(nil, f))
		back, err := strconv.ParseFloat(s, 64)
		require.NoError(t, err, s)
		require.Equal(t, f, back, s)
		require.True(t, json.Valid([]byte(s)), s)
		abs := math.Abs(f)
		if abs >= 1e-6 && abs < 1e21 {
			require.NotContains(t, s, "e", "%v", f)
		} else if f != 0 {
			require.Contains(t, s, "e", "%v", f)
		}
	}
}

func TestCanonicalizeStrings(t *testing.T) {
	for _, tc := range jcsStringVectors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tc.in))
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))

			// Member names are written by the same code path but also
			// feed ordering; check they come out identically.
			got, err = Canonicalize([]byte("{" + tc.in + ":0}"))
			require.NoError(t, err)
			assert.Equal(t, "{"+tc.want+":0}", string(got))
		})
	}
}

func TestCanonicalizeStructure(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"literals", ` [ true , false , null ] `, `[true,false,null]`},
		{"top-level literal", "\n\ttrue\r\n", `true`},
		{"empty containers", `{ "a" : [ ] , "b" : { } }`, `{"a":[],"b":{}}`},
		{"array order kept", `[3, 1, 2, "b", "a"]`, `[3,1,2,"b","a"]`},
		{"members sorted", `{"b": 1, "a": 2, "c": 3}`, `{"a":2,"b":1,"c":3}`},
		{"already sorted", `{"a":1,"b":2}`, `{"a":1,"b":2}`},
		{"empty name first", `{"a": 1, "": 2}`, `{"":2,"a":1}`},
		{"prefix first", `{"ab": 1, "a": 2}`, `{"a":2,"ab":1}`},
		{"nested", `{"b": {"d": 1, "c": [{"z": 1, "y": 2}]}, "a": null}`,
			`{"a":null,"b":{"c":[{"y":2,"z":1}],"d":1}}`},
		{"utf16 order", `{"\u20ac": 1, "\ud83d\ude00": 2, "\u00e9": 3, "a": 4}`,
			`{"a":4,"é":3,"€":1,"😀":2}`},
		{"utf16 order differs from utf8", `{"\uff21": 1, "\ud83d\ude00": 2}`,
			`{"😀":2,"Ａ":1}`},
		{"private use after astral", `{"\ue000": 1, "\ud800\udc00": 2, "\ud7ff": 3}`,
			"{\"\ud7ff\":3,\"\U00010000\":2,\"\ue000\":1}"},
		// Ordering is on unescaped names: U+001F sorts before ' ' even
		// though its escaped form starts with a backslash.
		{"sorted by unescaped name", `{" ": 1, "\u001f": 2, "\\": 3, "\n": 4}`,
			`{"\n":4,"\u001f":2," ":1,"\\":3}`},
		{"escaped names", `{"b": 1, "a\"": 2, "a": 3}`, `{"a":3,"a\"":2,"b":1}`},
		{"whitespace everywhere", " \t\n\r{ \"x\" :\n[ 1 ,\t{ \"y\" : \"z\" } ] } \n",
			`{"x":[1,{"y":"z"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tc.in))
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
		})
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"whitespace only", " \n"},
		{"unclosed object", `{`},
		{"unclosed array", `[1`},
		{"trailing comma array", `[1,]`},
		{"trailing comma object", `{"a":1,}`},
		{"missing value", `{"a"}`},
		{"missing colon", `{"a" 1}`},
		{"unquoted name", `{a:1}`},
		{"number name", `{1:1}`},
		{"single quotes", `'a'`},
		{"missing comma", `[1 2]`},
		{"missing member comma", `{"a":1 "b":2}`},
		{"truncated literal", `tru`},
		{"capitalized literal", `True`},
		{"literal with suffix", `[nullx]`},
		{"leading zero", `01`},
		{"leading zero in array", `[-01]`},
		{"lone minus", `-`},
		{"missing fraction", `1.`},
		{"missing integer", `.5`},
		{"plus sign", `+1`},
		{"missing exponent", `1e`},
		{"missing exponent digits", `1e+`},
		{"hex", `0x10`},
		{"NaN", `NaN`},
		{"Infinity", `-Infinity`},
		{"trailing value", `1 2`},
		{"trailing bracket", `[]]`},
		{"trailing garbage", `{} x`},
		{"two documents", `{}{}`},
		{"byte order mark", "\xef\xbb\xbf{}"},
		{"comment", `/**/{}`},
		{"unterminated string", `"abc`},
		{"raw tab in string", "\"a\tb\""},
		{"raw control in string", "\"\x01\""},
		{"raw newline in name", "{\"\n\":1}"},
		{"bad escape", `"\x"`},
		{"uppercase escape", `"\U0041"`},
		{"short \\u", `"\u12"`},
		{"bad hex", `"\u12g4"`},
		{"escape at end", `"\`},
		{"duplicate", `{"a":1,"a":2}`},
		{"duplicate not adjacent", `{"a":1,"b":0,"a":2}`},
		{"duplicate unsorted", `{"b":1,"a":1,"b":2}`},
		{"duplicate via escape", `{"a":1,"\u0061":2}`},
		{"duplicate astral", `{"\ud83d\ude00":1,"😀":2}`},
		{"duplicate nested", `{"x":[{"k":1,"k":1}]}`},
		{"invalid utf8", "\"\xff\""},
		{"truncated utf8", "\"\xc3\""},
		{"overlong utf8", "\"\xc0\xaf\""},
		{"utf8 encoded surrogate", "\"\xed\xa0\x80\""},
		{"invalid utf8 in name", "{\"\xfe\":1}"},
		{"invalid utf8 outside string", "[\xff]"},
		{"lone high surrogate", `"\ud800"`},
		{"high surrogate then text", `"\ud83dx"`},
		{"high surrogate then BMP escape", `"\ud83d\u0041"`},
		{"two high surrogates", `"\ud83d\ud83d"`},
		{"high surrogate then other escape", `"\ud83d\n"`},
		{"lone low surrogate", `"\ude00"`},
		{"reversed pair", `"\ude00\ud83d"`},
		{"lone surrogate in name", `{"\udfff":1}`},
		{"overflow", `1e400`},
		{"negative overflow", `-1e400`},
		{"overflow just above max", `1.8e308`},
		{"overflow nested", `{"a":[1e999]}`},
		{"underflow", `1e-400`},
		{"underflow nested", `{"a":[0.5e-330]}`},
		{"beyond 2^53", `9007199254740993`},
		{"beyond 2^64", `{"amount":12345678901234567890}`},
		{"more digits than a double", `[0.10000000000000000001]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tc.in))
			require.Error(t, err)
			assert.Nil(t, got)
			var je *jcsError
			assert.True(t, errors.As(err, &je))
		})
	}
}

func TestCanonicalizeDepth(t *testing.T) {
	nestArrays := func(n int) []byte {
		return []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
	}
	nestObjects := func(n int) []byte {
		return []byte(strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n))
	}
	for _, nest := range []func(int) []byte{nestArrays, nestObjects} {
		got, err := Canonicalize(nest(jcsMaxDepth))
		require.NoError(t, err)
		assert.Equal(t, nest(jcsMaxDepth), got)

		_, err = Canonicalize(nest(jcsMaxDepth + 1))
		require.ErrorContains(t, err, "nesting")
	}
	// Far deeper than any stack could handle recursively, and unterminated.
	_, err := Canonicalize([]byte(strings.Repeat("[", 10_000_000)))
	require.ErrorContains(t, err, "nesting")

	// Depth is nesting, not the number of containers seen.
	wide := "[" + strings.Repeat("[[]],", 5000) + "[]]"
	_, err = Canonicalize([]byte(wide))
	require.NoError(t, err)
}

func TestAppendCanonical(t *testing.T) {
	dst := []byte("prefix:")
	out, err := AppendCanonical(dst, []byte(`{"b":[1E2],"a":"x"}`))
	require.NoError(t, err)
	assert.Equal(t, `prefix:{"a":"x","b":[100]}`, string(out))

	// Sorting must only move bytes of the object being sorted, not the
	// caller's prefix.
	out, err = AppendCanonical(out, []byte(`{"d":1,"c":2}`))
	require.NoError(t, err)
	assert.Equal(t, `prefix:{"a":"x","b":[100]}{"c":2,"d":1}`, string(out))

	buf := make([]byte, 3, 64)
	copy(buf, "abc")
	failed, err := AppendCanonical(buf, []byte(`{"a":1,"a":2}`))
	require.Error(t, err)
	assert.Equal(t, "abc", string(failed))

	// A reused buffer gives the same result as a fresh one.
	reused, err := AppendCanonical(buf[:0], []byte(jcsRFCExampleInput))
	require.NoError(t, err)
	assert.Equal(t, jcsRFCExampleOutput, string(reused))
}

func TestCanonicalSHA256(t *testing.T) {
	for _, in := range jcsSeeds() {
		canon, err := Canonicalize([]byte(in))
		sum, sumErr := CanonicalSHA256([]byte(in))
		if err != nil {
			require.Error(t, sumErr, in)
			assert.Equal(t, err.Error(), sumErr.Error(), in)
			continue
		}
		require.NoError(t, sumErr, in)
		assert.Equal(t, sha256.Sum256(canon), sum, in)
	}
}

func TestCanonicalizeErrorMessage(t *testing.T) {
	_, err := Canonicalize([]byte(`{"a": tru}`))
	require.Error(t, err)
	assert.Equal(t, "amtp: canonical json: invalid literal at offset 6", err.Error())

	_, err = Canonicalize([]byte(`{"x":0,"k":1,"k":2}`))
	require.ErrorContains(t, err, `duplicate object member name "k" at offset 0`)

	_, err = Canonicalize([]byte(`{"a":[1,9007199254740993]}`))
	require.EqualError(t, err, "amtp: canonical json: number cannot be represented exactly as an IEEE 754 double at offset 8")
}

// TestCanonicalizeConcurrent exercises the pooled parser state under -race.
func TestCanonicalizeConcurrent(t *testing.T) {
	inputs := []string{jcsRFCExampleInput, jcsBenchMessage, `{"z":{"y":{"x":1,"w":2}},"a":[3,2,1]}`}
	want := make([][]byte, len(inputs))
	for i, in := range inputs {
		var err error
		want[i], err = Canonicalize([]byte(in))
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % len(inputs)
				got, err := Canonicalize([]byte(inputs[k]))
				if !assert.NoError(t, err) || !assert.Equal(t, want[k], got) {
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCanonicalizeIdempotent(t *testing.T) {
	for _, in := range jcsSeeds() {
		out, err := Canonicalize([]byte(in))
		if err != nil {
			continue
		}
		again, err := Canonicalize(out)
		require.NoError(t, err, in)
		assert.Equal(t, string(out), string(again), in)
	}
}

// jcsCompareUTF16Reference is the definition from RFC 8785 §3.2.3, spelled
// out the slow way.
func jcsCompareUTF16Reference(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func TestCompareUTF16(t *testing.T) {
	// Characters chosen around every boundary where UTF-8 and UTF-16 ordering
	// could disagree.
	alphabet := []rune{0, 'a', 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfb33,
		0xffff, 0x10000, 0x1f600, 0x10ffff}
	rng := rand.New(rand.NewPCG(3, 4))
	randomString := func() string {
		r := make([]rune, rng.IntN(7))
		for i := range r {
			r[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(r)
	}
	for range 100000 {
		a, b := randomString(), randomString()
		want := jcsCompareUTF16Reference(a, b)
		require.Equal(t, want, jcsCompareUTF16([]byte(a), []byte(b)), "%+q vs %+q", a, b)

		// Whenever the packed prefixes differ they must agree with the
		// full comparison, since members are ordered by them first.
		pa, pb := jcsSortPrefix([]byte(a)), jcsSortPrefix([]byte(b))
		if pa != pb {
			require.Equal(t, want, cmp.Compare(pa, pb), "prefix of %+q vs %+q", a, b)
		}
	}
}

func jcsSeeds() []string {
	seeds := []string{jcsRFCExampleInput, jcsRFCExampleOutput, jcsBenchMessage,
		`{"\u20ac":1,"\ud83d\ude00":2,"\u00e9":3,"a":4}`, `{"\uff21":1,"\ud83d\ude00":2}`,
		`{" ":1,"\u001f":2}`, `{"a":1,"a":2}`, `"\ud800"`, "\"\xff\"", `[[[[]]]]`, `1 2`}
	for _, v := range jcsNumberVectors {
		seeds = append(seeds, v.in)
	}
	seeds = append(seeds, jcsInexactNumbers...)
	for _, v := range jcsStringVectors {
		seeds = append(seeds, v.in)
	}
	return seeds
}

// FuzzCanonicalize checks that Canonicalize is never laxer than
// encoding/json and that whatever it accepts it maps to valid, ordered,
// idempotent JSON with the same meaning.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range jcsSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Canonicalize(data)
		if !json.Valid(data) {
			require.Error(t, err, "accepted invalid JSON %q", data)
			return
		}
		if err != nil {
			return
		}
		require.True(t, json.Valid(out), "output %q", out)
		require.True(t, utf8.Valid(out), "output %q", out)
		require.NoError(t, jcsCheckMemberOrder(out), "output %q", out)

		again, err := Canonicalize(out)
		require.NoError(t, err, "output %q", out)
		require.Equal(t, string(out), string(again))

		require.True(t, reflect.DeepEqual(jcsDecode(t, data), jcsDecode(t, out)),
			"input %q output %q", data, out)
	})
}

func jcsDecode(t *testing.T, data []byte) any {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	return jcsNumbersToFloat(t, v)
}

func jcsNumbersToFloat(t *testing.T, v any) any {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		require.NoError(t, err)
		return f
	case []any:
		for i := range v {
			v[i] = jcsNumbersToFloat(t, v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = jcsNumbersToFloat(t, v[k])
		}
	}
	return v
}

// jcsCheckMemberOrder walks canonical output with encoding/json's tokenizer
// and verifies every object's names are strictly increasing in UTF-16 order.
func jcsCheckMemberOrder(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			first, prev := true, ""
			for dec.More() {
				tok, err := dec.Token()
				if err != nil {
					return err
				}
				name := tok.(string)
				if !first && jcsCompareUTF16Reference(prev, name) >= 0 {
					return errors.New("members out of order: " + strconv.Quote(prev) + " before " + strconv.Quote(name))
				}
				first, prev = false, name
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
		}
		return err
	}
	return walk()
}

// jcsBenchMessage is a representative AMTP message (~2 KB) as a client
// would submit it: indented, members in arbitrary order, a few escapes.
const jcsBenchMessage = `{
  "version": "1.0",
  "message_id": "01908f3e-6b2a-7c4d-9e1f-2a3b4c5d6e7f",
  "idempotency_key": "order-2024-000871-submit",
  "timestamp": "2024-07-01T12:34:56.789Z",
  "sender": "procurement-agent@acme.example",
  "recipients": [
    "fulfilment@warehouse.example",
    "billing-agent@finance.acme.example",
    "audit@compliance.example"
  ],
  "subject": "Purchase order PO-000871 \u2014 confirm availability",
  "schema": "agntcy:commerce.order.v2",
  "response_type": "sync",
  "headers": {
    "x-priority": "high",
    "x-trace-id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "content-language": "en-GB",
    "x-tenant": "acme"
  },
  "coordination": {
    "type": "sequential",
    "timeout_seconds": 3600,
    "required_responses": ["fulfilment@warehouse.example", "billing-agent@finance.acme.example"],
    "conditions": [
      {"if": "fulfilment.status == 'available'", "then": "billing-agent@finance.acme.example"},
      {"if": "fulfilment.status != 'available'", "then": "abort"}
    ]
  },
  "payload": {
    "order_id": "PO-000871",
    "currency": "EUR",
    "total": 18734.50,
    "tax_rate": 0.19,
    "discount": 1.5e2,
    "created_by": {"name": "Zo\u00eb M\u00fcller", "email": "zoe@acme.example", "employee_id": 40211},
    "shipping": {
      "street": "Friedrichstra\u00dfe 123",
      "city": "Berlin",
      "postal_code": "10117",
      "country": "DE",
      "notes": "Deliver to loading dock B.\nCall ahead: +49 30 1234567 \"reception\"",
      "geo": {"lon": 13.388860, "lat": 52.517037}
    },
    "lines": [
      {"sku": "WIDGET-42", "description": "Industrial widget, stainless", "quantity": 120, "unit_price": 74.95, "tags": ["metal", "bulk"]},
      {"sku": "GASKET-7", "description": "Nitrile gasket \u00d8 42 mm", "quantity": 2000, "unit_price": 0.35, "tags": []},
      {"sku": "BOLT-M8", "description": "Hex bolt M8\u00d740 <A2-70>", "quantity": 5000, "unit_price": 0.0825, "tags": ["fastener"]},
      {"sku": "LABEL-\u20ac", "description": "Price labels \ud83c\udff7\ufe0f", "quantity": 10, "unit_price": 12, "tags": null}
    ],
    "approved": true,
    "requires_signature": false,
    "metadata": {"source": "erp", "batch": 17, "ratio": 1e-7, "limit": 1e21}
  },
  "attachments": [
    {"filename": "po-000871.pdf", "content_type": "application/pdf", "size": 48213, "url": "https://files.acme.example/po/000871.pdf"}
  ]
}`

func BenchmarkCanonicalize(b *testing.B) {
	msg := []byte(jcsBenchMessage)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonicalize(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendCanonical(b *testing.B) {
	msg := []byte(jcsBenchMessage)
	buf := make([]byte, 0, len(msg))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendCanonical(buf[:0], msg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestContentSHA256IsTheDigestOfTheWholeInput: the digest computed with
// the payload canonicalized on its own is the one of the whole digest
// input, for payloads whose members, escapes and numbers canonicalize
// differently from how they are written, and an absent payload; a
// payload that is not I-JSON is refused as before.
func TestContentSHA256IsTheDigestOfTheWholeInput(t *testing.T) {
	for name, payload := range map[string]string{
		"unordered object":  `{"z":1,"a":{"y":[3,2,1],"b":"x"},"m":null}`,
		"escapes":           `{"text":"\u00e9\ud83d\ude00 \/ \"q\" \t","\u0041":true}`,
		"numbers":           `{"n":[1.0,1e2,-0,0.000001,9007199254740992,1E-7]}`,
		"string":            `"just a string"`,
		"array":             `[{"b":1,"a":2},[],{}]`,
		"spaces":            " { \"a\" : [ 1 , 2 ] , \"A\" : { } } ",
		"keys sorting past": `{"payload":1,"recipients":2,"aaa":3,"zzz":4}`,
	} {
		t.Run(name, func(t *testing.T) {
			m, err := Parse([]byte(msgWith("payload", payload, "subject", `"Grüße"`, "headers", `{"x":"y"}`)), Limits{})
			require.NoError(t, err)
			requireContentSHA256(t, m)
			whole, err := CanonicalSHA256(m.AppendContentDigestInput(nil))
			require.NoError(t, err)
			for _, scratch := range [][]byte{nil, make([]byte, 0, 4), make([]byte, 10, 4096)} {
				got, buf, err := m.ContentSHA256(scratch)
				require.NoError(t, err)
				require.Equal(t, whole, got)
				require.Empty(t, buf, "the buffer comes back empty, for reuse")
			}
		})
	}
	t.Run("no payload", func(t *testing.T) {
		m, err := Parse([]byte(msgWith()), Limits{})
		require.NoError(t, err)
		m.Payload = nil
		requireContentSHA256(t, m)
	})
	t.Run("duplicate keys in the payload", func(t *testing.T) {
		m, err := Parse([]byte(msgWith()), Limits{})
		require.NoError(t, err)
		m.Payload = []byte(`{"a":1,"a":2}`)
		_, _, err = m.ContentSHA256(nil)
		require.Error(t, err)
		requireContentSHA256(t, m)
	})
}
