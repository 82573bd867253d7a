package discovery

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNormalizeDomain(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	// 4 labels of 63 plus separators is 255 bytes, 2 over the limit.
	tooLong := strings.Join([]string{long63, long63, long63, long63}, ".")
	fits := tooLong[:253]
	fits = fits[:len(fits)-1] + "b" // keep the last label free of a trailing dot

	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "example.com", want: "example.com"},
		{in: "Example.COM.", want: "example.com"},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{in: "a-b.c0m", want: "a-b.c0m"},
		{in: "localhost", want: "localhost"},
		{in: "1.example.com", want: "1.example.com"},
		{in: fits, want: fits},
		{in: "", wantErr: true},
		{in: ".", wantErr: true},
		{in: tooLong, wantErr: true},
		{in: strings.Repeat("a", 64) + ".com", wantErr: true},
		{in: "a..com", wantErr: true},
		{in: ".example.com", wantErr: true},
		{in: "example.com..", wantErr: true},
		{in: "-a.com", wantErr: true},
		{in: "a-.com", wantErr: true},
		{in: "exa_mple.com", wantErr: true},
		{in: "_amtp.example.com", wantErr: true},
		{in: "ex ample.com", wantErr: true},
		{in: "bücher.example", wantErr: true},
		{in: "192.0.2.1", wantErr: true},
		{in: "[192.0.2.1]", wantErr: true},
		{in: "[IPv6:2001:db8::1]", wantErr: true},
		{in: "2001:db8::1", wantErr: true},
		{in: "example.com/x", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := normalizeDomain(tc.in)
			if tc.wantErr {
				require.ErrorIs(t, err, ErrInvalidName)
				assert.False(t, IsTransient(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestNormalizeSelector(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "sel1", want: "sel1"},
		{in: "2026-Q1", want: "2026-q1"},
		{in: "", wantErr: true},
		{in: "a.b", wantErr: true},
		{in: "a_b", wantErr: true},
		{in: "-a", wantErr: true},
		{in: strings.Repeat("s", 64), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := normalizeSelector(tc.in)
			if tc.wantErr {
				require.ErrorIs(t, err, ErrInvalidName)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
