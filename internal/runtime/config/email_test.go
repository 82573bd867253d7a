package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEmailBridgeSettings(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "smtp-password")
	require.NoError(t, os.WriteFile(pwFile, []byte("s3cret\n"), 0o600))
	long := filepath.Join(t.TempDir(), "long")
	require.NoError(t, os.WriteFile(long, []byte(strings.Repeat("x", maxPasswordBytes+1)), 0o600))
	for _, tc := range []struct {
		name string
		env  map[string]string
		want Email
		errs []string // each must be in the one error
	}{
		{name: "defaults", env: map[string]string{"AGENTRY_DOMAIN": "a.test", "AGENTRY_DATA_DIR": "/var/agentry"},
			want: Email{BridgeAddress: "amtp-bridge@a.test", InboundPolicy: "flag", Outbox: "/var/agentry/outbox", SESInboundPrefix: "inbound-email/"}},
		{name: "a relay with a password file", env: map[string]string{
			"AGENTRY_DOMAIN": "a.test", "AGENTRY_DATA_DIR": "/d", "AGENTRY_SMTP_RELAY": "smtp.a.test:587", "AGENTRY_SMTP_USERNAME": "gw",
			"AGENTRY_SMTP_PASSWORD_FILE": pwFile, "AGENTRY_SMTP_FALLBACK": "1", "AGENTRY_SMTP_LISTEN": ":2525",
			"AGENTRY_EMAIL_INBOUND_POLICY": "Reject", "AGENTRY_SMTP_BRIDGE_ADDRESS": "Mailer-Daemon@a.test",
			"AGENTRY_SES_CONFIGURATION_SET": "agentry", "AGENTRY_SES_INBOUND_PREFIX": "mail/",
		}, want: Email{Relay: "smtp.a.test:587", RelayUsername: "gw", RelayPassword: "s3cret", Fallback: true, Listen: "127.0.0.1:2525",
			InboundPolicy: "reject", BridgeAddress: "Mailer-Daemon@a.test", SESConfigurationSet: "agentry", SESInboundPrefix: "mail/", Outbox: "/d/outbox"}},
		{name: "a listener with a host, plaintext relay", env: map[string]string{
			"AGENTRY_DOMAIN": "a.test", "AGENTRY_DATA_DIR": "/d", "AGENTRY_SMTP_LISTEN": "0.0.0.0:25", "AGENTRY_SMTP_RELAY": "127.0.0.1:2526",
			"AGENTRY_SMTP_INSECURE": "1", "AGENTRY_SMTP_USERNAME": "u", "AGENTRY_SMTP_PASSWORD": "p",
		}, want: Email{Relay: "127.0.0.1:2526", RelayInsecure: true, RelayUsername: "u", RelayPassword: "p", Listen: "0.0.0.0:25",
			InboundPolicy: "flag", BridgeAddress: "amtp-bridge@a.test", Outbox: "/d/outbox", SESInboundPrefix: "inbound-email/"}},
		{name: "a bare port listens on loopback", env: map[string]string{"AGENTRY_DOMAIN": "a.test", "AGENTRY_DATA_DIR": "/d", "AGENTRY_SMTP_LISTEN": "2525"},
			want: Email{Listen: "127.0.0.1:2525", InboundPolicy: "flag", BridgeAddress: "amtp-bridge@a.test", Outbox: "/d/outbox", SESInboundPrefix: "inbound-email/"}},
		{name: "invalid", env: map[string]string{
			"AGENTRY_DOMAIN": "a.test", "AGENTRY_SMTP_RELAY": "smtp.a.test", "AGENTRY_SMTP_INSECURE": "maybe", "AGENTRY_SMTP_FALLBACK": "2",
			"AGENTRY_SMTP_LISTEN": "a:b:c", "AGENTRY_EMAIL_INBOUND_POLICY": "bounce", "AGENTRY_SMTP_BRIDGE_ADDRESS": "alice@a.test",
			"AGENTRY_SMTP_USERNAME": "u",
		}, errs: []string{"AGENTRY_SMTP_RELAY", "AGENTRY_SMTP_INSECURE", "AGENTRY_SMTP_FALLBACK", "AGENTRY_SMTP_LISTEN",
			"AGENTRY_EMAIL_INBOUND_POLICY", `AGENTRY_SMTP_BRIDGE_ADDRESS "alice@a.test"`, "must be set together"}},
		{name: "bridge address of another domain", env: map[string]string{"AGENTRY_DOMAIN": "a.test", "AGENTRY_SMTP_BRIDGE_ADDRESS": "amtp-bridge@b.test"},
			errs: []string{"must be an address of a.test"}},
		{name: "both passwords", env: map[string]string{"AGENTRY_SMTP_USERNAME": "u", "AGENTRY_SMTP_PASSWORD": "p", "AGENTRY_SMTP_PASSWORD_FILE": pwFile},
			errs: []string{"set only one of AGENTRY_SMTP_PASSWORD and AGENTRY_SMTP_PASSWORD_FILE"}},
		{name: "password file too long", env: map[string]string{"AGENTRY_SMTP_USERNAME": "u", "AGENTRY_SMTP_PASSWORD_FILE": long},
			errs: []string{"longer than 4096 bytes"}},
		{name: "password file missing", env: map[string]string{"AGENTRY_SMTP_USERNAME": "u", "AGENTRY_SMTP_PASSWORD_FILE": filepath.Join(t.TempDir(), "none")},
			errs: []string{"AGENTRY_SMTP_PASSWORD_FILE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromEnv(env(tc.env))
			if len(tc.errs) == 0 {
				require.NoError(t, err)
				assert.Equal(t, tc.want, c.Email)
				return
			}
			require.Error(t, err)
			for _, w := range tc.errs {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
