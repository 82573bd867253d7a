package discovery

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
)

// TestHasMailExchangers: the email fallback asks whether a domain that
// has an AMTP gateway also receives email, through the resolver the
// gateway discovers with (same server, same cache); a null MX (RFC 7505)
// says it does not.
func TestHasMailExchangers(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetMX("mail.test", 60, "mx1.mail.test", 10)
	srv.SetTXT("_amtp.both.test", 60, "v=amtp1;gateway=https://amtp.both.test")
	srv.SetMX("both.test", 60, "mx.both.test", 10)
	srv.SetMX("nullmx.test", 60, ".", 0)
	srv.SetTXT("_amtp.nomx.test", 60, "v=amtp1;gateway=https://amtp.nomx.test")
	r, err := New(Config{Server: srv.Addr()})
	require.NoError(t, err)
	for _, tc := range []struct {
		domain string
		want   bool
	}{
		{"mail.test", true},
		{"both.test", true},
		{"nullmx.test", false},
		{"nomx.test", false},
		{"nothing.test", false},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			got, err := r.HasMailExchangers(context.Background(), tc.domain)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	_, err = r.HasMailExchangers(context.Background(), "bad..name")
	assert.ErrorIs(t, err, ErrInvalidName)
}
