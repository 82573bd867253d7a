package localgw

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/smtp"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/runtime/config"
)

// TestSMTPListenerPortInUse: a listener address that cannot be bound
// stops the gateway at start, and its store is released.
func TestSMTPListenerPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = busy.Close() }()
	dir := t.TempDir()
	env := map[string]string{"AGENTRY_DATA_DIR": dir, "AGENTRY_ADMIN_KEY": "local-test-admin-key-0123", "AGENTRY_SMTP_LISTEN": busy.Addr().String()}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	api, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g, err := New(cfg, Options{Listener: api})
	require.NoError(t, err)
	err = g.Serve(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "smtp listen on "+busy.Addr().String())

	// The store was closed: a second gateway opens the same data dir.
	again, err := New(cfg, Options{Listener: api})
	require.NoError(t, err)
	require.NoError(t, again.Close())
}

// TestSMTPReply: what the bridge's answer means to a sending server.
func TestSMTPReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code int // 0: not a refusal
	}{
		{"accepted", nil, 0},
		{"unknown agent", amtp.Errorf(amtp.CodeAgentUnknown, "no agent"), 550},
		{"too large", amtp.Errorf(amtp.CodeMessageTooLarge, "big"), 552},
		{"unreadable", amtp.Errorf(amtp.CodeInvalidMessageFormat, "bad"), 554},
		{"store down", errors.New("store unavailable"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := SMTPReply(tc.err)
			var refused *smtp.RefusedError
			if tc.code == 0 {
				assert.False(t, errors.As(err, &refused))
				assert.Equal(t, tc.err, err)
				return
			}
			require.ErrorAs(t, err, &refused)
			assert.Equal(t, tc.code, refused.Code)
		})
	}
}
