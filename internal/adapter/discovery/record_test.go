package discovery

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type validTXTCase struct {
	name  string
	parts []string // character-strings of one TXT RR, joined before parsing
	want  Record
}

var validTXTCases = []validTXTCase{
	{
		name:  "full record from the protocol",
		parts: []string{"v=amtp1;gateway=https://amtp.example.com:443;auth=cert,oauth;max-size=50000000;schemas=agntcy:commerce.*,agntcy:finance.payment.*"},
		want: Record{
			Version: "amtp1", Gateway: "https://amtp.example.com:443", Auth: []string{"cert", "oauth"},
			MaxSize: 50000000, Schemas: []string{"agntcy:commerce.*", "agntcy:finance.payment.*"},
		},
	},
	{
		name:  "minimal record gets the default max-size",
		parts: []string{"v=amtp1;gateway=https://gw.example.com"},
		want:  Record{Version: "amtp1", Gateway: "https://gw.example.com", MaxSize: DefaultMaxSize},
	},
	{
		name:  "whitespace around tokens",
		parts: []string{"  v = amtp1 ;\tgateway =  https://gw.example.com:8443/amtp ; auth = cert , oauth ;  max-size = 42 ;"},
		want: Record{
			Version: "amtp1", Gateway: "https://gw.example.com:8443/amtp", Auth: []string{"cert", "oauth"}, MaxSize: 42,
		},
	},
	{
		name:  "keys and version are case-insensitive, auth is lower-cased",
		parts: []string{"V=AMTP1;GATEWAY=https://gw.example.com;AUTH=Cert,OAUTH;Max-Size=100;SCHEMAS=Agntcy:Commerce.*"},
		want: Record{
			Version: "amtp1", Gateway: "https://gw.example.com", Auth: []string{"cert", "oauth"},
			MaxSize: 100, Schemas: []string{"Agntcy:Commerce.*"},
		},
	},
	{
		name:  "split character-strings are joined",
		parts: []string{"v=amtp1;gate", "way=https://gw.exa", "mple.com;auth=cert"},
		want:  Record{Version: "amtp1", Gateway: "https://gw.example.com", Auth: []string{"cert"}, MaxSize: DefaultMaxSize},
	},
	{
		name:  "unknown keys are ignored",
		parts: []string{"v=amtp1;future=anything goes, really;gateway=https://gw.example.com;x_y-z="},
		want:  Record{Version: "amtp1", Gateway: "https://gw.example.com", MaxSize: DefaultMaxSize},
	},
	{
		name:  "stray commas and empty lists",
		parts: []string{"v=amtp1;gateway=https://gw.example.com;auth=,cert,,oauth,;schemas="},
		want:  Record{Version: "amtp1", Gateway: "https://gw.example.com", Auth: []string{"cert", "oauth"}, MaxSize: DefaultMaxSize},
	},
	{
		name:  "plain http and an IPv6 host with port",
		parts: []string{"v=amtp1;gateway=http://[2001:db8::1]:8080/x?y=z"},
		want:  Record{Version: "amtp1", Gateway: "http://[2001:db8::1]:8080/x?y=z", MaxSize: DefaultMaxSize},
	},
	{
		name:  "max-size with leading zeros",
		parts: []string{"v=amtp1;gateway=https://gw.example.com;max-size=0007"},
		want:  Record{Version: "amtp1", Gateway: "https://gw.example.com", MaxSize: 7},
	},
}

var invalidTXTCases = []struct {
	name string
	txt  string
}{
	{"empty", ""},
	{"only separators", " ; ; "},
	{"missing v", "gateway=https://gw.example.com"},
	{"v not first", "gateway=https://gw.example.com;v=amtp1"},
	{"wrong v", "v=amtp2;gateway=https://gw.example.com"},
	{"empty v", "v=;gateway=https://gw.example.com"},
	{"v with suffix", "v=amtp10;gateway=https://gw.example.com"},
	{"missing gateway", "v=amtp1;auth=cert"},
	{"empty gateway", "v=amtp1;gateway="},
	{"gateway wrong scheme", "v=amtp1;gateway=ftp://gw.example.com"},
	{"gateway relative", "v=amtp1;gateway=/amtp"},
	{"gateway without host", "v=amtp1;gateway=https://"},
	{"gateway with empty host and path", "v=amtp1;gateway=https:///amtp"},
	{"gateway opaque", "v=amtp1;gateway=https:gw.example.com"},
	{"gateway with userinfo", "v=amtp1;gateway=https://user:pw@gw.example.com"},
	{"gateway with fragment", "v=amtp1;gateway=https://gw.example.com/#frag"},
	{"gateway with empty fragment", "v=amtp1;gateway=https://gw.example.com#"},
	{"gateway with inner space", "v=amtp1;gateway=https://gw.example.com/a b"},
	{"gateway port out of range", "v=amtp1;gateway=https://gw.example.com:99999"},
	{"gateway port zero", "v=amtp1;gateway=https://gw.example.com:0"},
	{"gateway port not numeric", "v=amtp1;gateway=https://gw.example.com:https"},
	{"max-size not a number", "v=amtp1;gateway=https://gw.example.com;max-size=big"},
	{"max-size negative", "v=amtp1;gateway=https://gw.example.com;max-size=-5"},
	{"max-size signed", "v=amtp1;gateway=https://gw.example.com;max-size=+5"},
	{"max-size zero", "v=amtp1;gateway=https://gw.example.com;max-size=0"},
	{"max-size empty", "v=amtp1;gateway=https://gw.example.com;max-size="},
	{"max-size fractional", "v=amtp1;gateway=https://gw.example.com;max-size=1.5"},
	{"max-size overflow", "v=amtp1;gateway=https://gw.example.com;max-size=99999999999999999999"},
	{"duplicate tag", "v=amtp1;gateway=https://a.example.com;gateway=https://b.example.com"},
	{"tag without equals", "v=amtp1;gateway=https://gw.example.com;cert"},
	{"malformed tag name", "v=amtp1;gate way=https://gw.example.com"},
	{"empty tag name", "v=amtp1;gateway=https://gw.example.com;=x"},
	{"auth item with space", "v=amtp1;gateway=https://gw.example.com;auth=ce rt"},
	{"schema item with bad byte", "v=amtp1;gateway=https://gw.example.com;schemas=agntcy:a?b"},
}

func TestParseTXTValid(t *testing.T) {
	for _, tc := range validTXTCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTXT(joinTXT(tc.parts))
			require.NoError(t, err)
			assert.Equal(t, tc.want, *got)
		})
	}
}

func TestParseTXTInvalid(t *testing.T) {
	for _, tc := range invalidTXTCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTXT(tc.txt)
			require.ErrorIs(t, err, ErrInvalidRecord)
			assert.Nil(t, got)
			assert.False(t, IsTransient(err), "an invalid record is permanent")
		})
	}
}

func TestFormatTXT(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
		want string
	}{
		{
			name: "canonical order",
			rec: Record{
				Schemas: []string{"agntcy:commerce.*"}, MaxSize: 50000000, Auth: []string{"cert", "oauth"},
				Gateway: "https://amtp.example.com:443", Version: "amtp1",
			},
			want: "v=amtp1;gateway=https://amtp.example.com:443;auth=cert,oauth;max-size=50000000;schemas=agntcy:commerce.*",
		},
		{
			name: "empty fields omitted, version defaulted",
			rec:  Record{Gateway: "https://gw.example.com"},
			want: "v=amtp1;gateway=https://gw.example.com",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, FormatTXT(tc.rec))
		})
	}
}

func TestFormatTXTRoundTrip(t *testing.T) {
	for _, tc := range validTXTCases {
		t.Run(tc.name, func(t *testing.T) {
			txt := FormatTXT(tc.want)
			got, err := ParseTXT(txt)
			require.NoError(t, err, "formatted as %q", txt)
			assert.Equal(t, tc.want, *got)
			assert.Equal(t, txt, FormatTXT(*got), "canonical form must be a fixed point")
		})
	}
}

func TestHasVersion(t *testing.T) {
	tests := []struct {
		txt  string
		want bool
	}{
		{"v=amtp1;gateway=x", true},
		{"  V = AMTP1 ", true},
		{"v=amtp1", true},
		{"v=amtp2;gateway=x", false},
		{"v=amtp10", false},
		{"gateway=x;v=amtp1", false},
		{"v=spf1 -all", false},
		{"", false},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, hasVersion(tc.txt), "%q", tc.txt)
	}
}

func FuzzParseTXT(f *testing.F) {
	for _, tc := range validTXTCases {
		f.Add(joinTXT(tc.parts))
	}
	for _, tc := range invalidTXTCases {
		f.Add(tc.txt)
	}
	f.Add("v=amtp1;gateway=https://gw.example.com;auth=\x00;schemas=\xff")
	f.Add("v=amtp1;gateway=https://gw.example.com/%zz;max-size=9223372036854775807")

	f.Fuzz(func(t *testing.T, txt string) {
		rec, err := ParseTXT(txt)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidRecord)
			require.Nil(t, rec)
			return
		}
		require.NotNil(t, rec)
		require.Equal(t, Version, rec.Version)
		require.Positive(t, rec.MaxSize)

		out := FormatTXT(*rec)
		again, err := ParseTXT(out)
		require.NoError(t, err, "FormatTXT output %q must parse", out)
		require.Equal(t, rec, again)
		require.Equal(t, out, FormatTXT(*again))
	})
}
