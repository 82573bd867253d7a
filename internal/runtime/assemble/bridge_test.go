package assemble

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/discovery/dnstest"
	"github.com/agentry/agentry/internal/runtime/config"
)

// TestMailExchangers: the email fallback asks the configured DNS server
// whether a domain receives email; a null MX (RFC 7505) says it does not.
func TestMailExchangers(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetMX("mail.test", 60, "mx1.mail.test", 10)
	dns.SetMX("nullmx.test", 60, ".", 0)
	dns.SetTXT("_amtp.nomx.test", 60, "v=amtp1;gateway=https://amtp.nomx.test")
	mx := mailExchangers(config.Config{DNSServer: dns.Addr()})
	for _, tc := range []struct {
		domain string
		want   bool
	}{
		{"mail.test", true},
		{"nullmx.test", false},
		{"nomx.test", false},
		{"nothing.test", false},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			got, err := mx.HasMailExchangers(context.Background(), tc.domain)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
