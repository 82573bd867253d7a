package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsAddr: the Prometheus listener is off unless
// AGENTRY_METRICS_ADDR names an address; a bare port listens on loopback
// only, as the SMTP listener's does.
func TestMetricsAddr(t *testing.T) {
	cases := []struct {
		name, value, want, err string
	}{
		{name: "off by default"},
		{name: "host and port", value: "0.0.0.0:9464", want: "0.0.0.0:9464"},
		{name: "a bare port listens on loopback", value: "9464", want: "127.0.0.1:9464"},
		{name: "a port without a host listens on loopback", value: ":9464", want: "127.0.0.1:9464"},
		{name: "any free port", value: "127.0.0.1:0", want: "127.0.0.1:0"},
		{name: "not an address", value: "a:b:c", err: "AGENTRY_METRICS_ADDR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"AGENTRY_DOMAIN": "a.test", "AGENTRY_METRICS_ADDR": tc.value}
			cfg, err := FromEnv(func(k string) string { return env[k] })
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, cfg.MetricsAddr)
		})
	}
}
