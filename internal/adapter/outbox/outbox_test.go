package outbox_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/outbox"
	"github.com/agentry/agentry/internal/usecase/delivery"
)

func mail(date, id, body string) []byte {
	return []byte("Date: " + date + "\r\nMessage-Id: <" + id + ">\r\nFrom: a@x.example\r\nTo: b@y.example\r\nSubject: s\r\n\r\n" + body + "\r\n")
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "outbox")
	o, err := outbox.New(dir)
	require.NoError(t, err)
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())

	ctx := context.Background()
	later := delivery.OutboundEmail{From: "amtp-bridge@x.example", To: "b@y.example", Raw: mail("Thu, 14 Aug 2025 10:30:00 +0000", "amtp.2@x.example", "second")}
	earlier := delivery.OutboundEmail{From: "amtp-bridge@x.example", To: "b@y.example", Raw: mail("Thu, 14 Aug 2025 12:29:00 +0200", "amtp.1@x.example", "first")}

	cases := []struct {
		name  string
		email delivery.OutboundEmail
		files int
	}{
		{"a first email", later, 1},
		{"an earlier one", earlier, 2},
		{"a retry of the first", later, 2},
		{"the first to another recipient", delivery.OutboundEmail{From: later.From, To: "c@y.example", Raw: later.Raw}, 3},
		{"a retry with the recipient in other case", delivery.OutboundEmail{From: later.From, To: "C@Y.example", Raw: later.Raw}, 3},
	}
	ids := map[string]string{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := o.SendEmail(ctx, c.email)
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(dir, id))
			require.NoError(t, err)
			assert.Equal(t, c.email.Raw, got)
			info, err := os.Stat(filepath.Join(dir, id))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
			assert.Len(t, files(t, dir), c.files, "no duplicate, no temporary file left")
			ids[c.name] = id
		})
	}
	assert.Equal(t, ids["a first email"], ids["a retry of the first"])
	names := files(t, dir)
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	assert.Equal(t, ids["an earlier one"], sorted[0], "names sort by the email's time")
	assert.Regexp(t, `^20250814T103000Z-[0-9a-f]{24}\.eml$`, ids["a first email"])
}

func TestOutboxRefusesEmptyEmail(t *testing.T) {
	o, err := outbox.New(t.TempDir())
	require.NoError(t, err)
	_, err = o.SendEmail(context.Background(), delivery.OutboundEmail{To: "b@y.example"})
	assert.True(t, delivery.IsEmailRejected(err))
}

func TestOutboxHonoursCancellation(t *testing.T) {
	dir := t.TempDir()
	o, err := outbox.New(dir)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = o.SendEmail(ctx, delivery.OutboundEmail{To: "b@y.example", Raw: mail("Thu, 14 Aug 2025 10:30:00 +0000", "a@x", "x")})
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, delivery.IsEmailRejected(err), "retried, not final")
	assert.Empty(t, files(t, dir))
}
