package amtp

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// label returns a DNS label of exactly n bytes.
func label(n int) string { return strings.Repeat("a", n) }

// domainOfLen builds a syntactically valid domain of exactly n bytes out of
// 63-byte labels, so length limits can be probed without tripping the label
// limit first.
func domainOfLen(t *testing.T, n int) string {
	t.Helper()
	require.GreaterOrEqual(t, n, 5, "need room for a TLD")
	var parts []string
	rest := n - 4 // reserve ".com"
	for rest > 0 {
		l := min(rest, 63)
		if rest-l == 1 {
			// a 1-byte remainder would need a label of 0 bytes after the dot
			l--
		}
		parts = append(parts, label(l))
		rest -= l + 1
	}
	d := strings.Join(parts, ".") + ".com"
	require.Len(t, d, n)
	return d
}

func TestParseAddressValid(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantLocal  string
		wantDomain string
	}{
		{"simple", "bob@example.com", "bob", "example.com"},
		{"draft example", "logistics.coordinator@shipper.org", "logistics.coordinator", "shipper.org"},
		{"hyphen in local", "purchase-agent@acme.com", "purchase-agent", "acme.com"},
		{"all atext specials", "a!#$%&'*+-/=?^_`{|}~z@x.com", "a!#$%&'*+-/=?^_`{|}~z", "x.com"},
		{"plus tag", "bob+orders@x.com", "bob+orders", "x.com"},
		{"single label domain", "postmaster@localhost", "postmaster", "localhost"},
		{"upper-case domain lower-cased, local kept", "Bob.Smith@EXAMPLE.COM", "Bob.Smith", "example.com"},
		{"mixed-case domain", "bob@Sub.Example.Org", "bob", "sub.example.org"},
		{"A-label accepted", "bob@xn--bcher-kva.de", "bob", "xn--bcher-kva.de"},
		{"upper-case A-label lower-cased", "bob@XN--BCHER-KVA.DE", "bob", "xn--bcher-kva.de"},
		{"hyphen inside label", "bob@my-host.example", "bob", "my-host.example"},
		{"digits in labels", "bob@1and1.com", "bob", "1and1.com"},
		{"numeric non-final label", "bob@123.example.com", "bob", "123.example.com"},
		{"hex-looking non-IP label", "bob@0xdead.com", "bob", "0xdead.com"},
		{"one-char local and labels", "a@b.c", "a", "b.c"},
		{"64-byte local-part", label(64) + "@x.com", label(64), "x.com"},
		{"63-byte label", "bob@" + label(63) + ".com", "bob", label(63) + ".com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAddress(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.wantLocal, a.Local)
			assert.Equal(t, tc.wantDomain, a.Domain)
			assert.Equal(t, tc.wantLocal+"@"+tc.wantDomain, a.String())
			assert.False(t, a.IsZero())
		})
	}
}

func TestParseAddressLengthBoundaries(t *testing.T) {
	// 64 + 1 + 189 = 254: the longest address allowed.
	local := label(64)
	d189 := domainOfLen(t, 189)
	a, err := ParseAddress(local + "@" + d189)
	require.NoError(t, err)
	assert.Len(t, a.String(), MaxAddressLen)

	_, err = ParseAddress(local + "@" + domainOfLen(t, 190))
	require.Error(t, err, "255 bytes in total")
	assert.True(t, IsCode(err, CodeInvalidRecipient))

	_, err = ParseAddress(label(65) + "@x.com")
	require.Error(t, err, "65-byte local-part")
	assert.True(t, IsCode(err, CodeInvalidRecipient))
}

func TestParseAddressInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"no at", "bob.example.com"},
		{"only at", "@"},
		{"empty local", "@example.com"},
		{"empty domain", "bob@"},
		{"two ats", "bob@alice@example.com"},
		{"two ats adjacent", "bob@@example.com"},
		{"display name", "Bob <bob@example.com>"},
		{"angle brackets only", "<bob@example.com>"},
		{"quoted display name", `"Bob" <bob@example.com>`},
		{"quoted local-part", `"quoted"@example.com`},
		{"quoted local-part with at", `"bob@evil"@example.com`},
		{"comment after", "bob@example.com (Bob)"},
		{"comment in local", "bob(comment)@example.com"},
		{"IPv4 literal", "bob@[127.0.0.1]"},
		{"IPv6 literal", "bob@[IPv6:::1]"},
		{"bare IPv4", "bob@127.0.0.1"},
		{"bare numeric single label", "bob@2130706433"},
		{"hex IPv4 single label", "bob@0x7f000001"},
		{"hex IPv4 dotted", "bob@0x7f.0x0.0x0.0x1"},
		{"hex final label upper-case", "bob@example.0X1F"},
		{"numeric TLD", "bob@example.123"},
		{"leading dot local", ".bob@example.com"},
		{"trailing dot local", "bob.@example.com"},
		{"double dot local", "bo..b@example.com"},
		{"leading dot domain", "bob@.example.com"},
		{"trailing dot domain", "bob@example.com."},
		{"double dot domain", "bob@example..com"},
		{"space in local", "b ob@example.com"},
		{"leading space", " bob@example.com"},
		{"trailing space", "bob@example.com "},
		{"tab", "bob@example.com\t"},
		{"newline", "bob@example.com\n"},
		{"NUL", "bob\x00@example.com"},
		{"backslash in local", `bo\b@example.com`},
		{"comma list", "bob@example.com,eve@example.com"},
		{"semicolon", "bob@example.com;"},
		{"underscore in domain", "bob@ex_ample.com"},
		{"label starts with hyphen", "bob@-example.com"},
		{"label ends with hyphen", "bob@example-.com"},
		{"TLD ends with hyphen", "bob@example.com-"},
		{"hyphen-only label", "bob@-.com"},
		{"bare xn-- label", "bob@xn--.com"},
		{"U-label domain", "bob@bücher.de"},
		{"fullwidth dot", "bob@example。com"},
		{"non-ASCII local", "bøb@example.com"},
		{"64-byte label", "bob@" + label(64) + ".com"},
		{"65-byte local-part", label(65) + "@example.com"},
		{"over 254 bytes", label(64) + "@" + strings.Repeat(label(63)+".", 3) + "com"},
		{"mailto scheme", "mailto:bob@example.com"},
		{"port", "bob@example.com:25"},
		{"path", "bob@example.com/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAddress(tc.in)
			require.Error(t, err)
			assert.True(t, a.IsZero(), "a rejected address must come back zero")
			e, ok := AsError(err)
			require.True(t, ok, "error must be an *Error, got %T", err)
			assert.Equal(t, CodeInvalidRecipient, e.Code)
			assert.NotEmpty(t, e.Message)
		})
	}
}

func TestMustParseAddress(t *testing.T) {
	assert.Equal(t, Address{Local: "Bob", Domain: "x.com"}, MustParseAddress("Bob@X.com"))
	assert.Panics(t, func() { MustParseAddress("not an address") })
}

func TestAddressKey(t *testing.T) {
	variants := []string{
		"Bob.Smith@Example.COM",
		"bob.smith@example.com",
		"BOB.SMITH@EXAMPLE.COM",
		"bOB.sMITH@eXAMPLE.cOM",
	}
	want := "bob.smith@example.com"
	for _, v := range variants {
		a := MustParseAddress(v)
		assert.Equal(t, want, a.Key(), v)
	}
	// Key folds case for comparison only: the stored form keeps the local-part.
	assert.Equal(t, "Bob.Smith@example.com", MustParseAddress(variants[0]).String())

	assert.NotEqual(t, MustParseAddress("bob@example.com").Key(), MustParseAddress("bob2@example.com").Key())
	assert.NotEqual(t, MustParseAddress("bob@example.com").Key(), MustParseAddress("bob@example.org").Key())
	// dots are significant in the local-part: no Gmail-style folding
	assert.NotEqual(t, MustParseAddress("bob.smith@example.com").Key(), MustParseAddress("bobsmith@example.com").Key())
}

func TestAddressIsZero(t *testing.T) {
	assert.True(t, Address{}.IsZero())
	assert.False(t, Address{Local: "a"}.IsZero())
	assert.False(t, Address{Domain: "a"}.IsZero())
}

func TestNormalizeDomain(t *testing.T) {
	valid := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"EXAMPLE.COM", "example.com"},
		{"Mail.Example.Com", "mail.example.com"},
		{"xn--bcher-kva.de", "xn--bcher-kva.de"},
		{"XN--BCHER-KVA.DE", "xn--bcher-kva.de"},
		{"localhost", "localhost"},
		{"a-b-c.d-e", "a-b-c.d-e"},
		{"0xg.com", "0xg.com"},
		{label(63) + ".com", label(63) + ".com"},
	}
	for _, tc := range valid {
		got, err := NormalizeDomain(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}

	d253 := domainOfLen(t, 253)
	got, err := NormalizeDomain(strings.ToUpper(d253))
	require.NoError(t, err, "253 bytes is the limit")
	assert.Equal(t, d253, got)

	invalid := []string{
		"",
		domainOfLen(t, 254),
		label(64) + ".com",
		"[127.0.0.1]",
		"127.0.0.1",
		"10.0.0.1",
		"1",
		"0x7f000001",
		"0X7F.1",
		"example.0x",
		"example.com.",
		".example.com",
		"example..com",
		"-example.com",
		"example-.com",
		"ex ample.com",
		"ex_ample.com",
		"exa*mple.com",
		"bücher.de",
		"münchen.xn--p1ai",
		"example.com:443",
	}
	for _, in := range invalid {
		_, err := NormalizeDomain(in)
		assert.Error(t, err, "%q", in)
	}
}
