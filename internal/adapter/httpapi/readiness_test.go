package httpapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/httpapi"
	"github.com/agentry/agentry/internal/adapter/httpapi/httpapitest"
	"github.com/agentry/agentry/internal/adapter/pebblestore"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// newOptionsAPI is newAPI with the handler options given.
func newOptionsAPI(t *testing.T, opt httpapi.Options) *api {
	t.Helper()
	db, err := pebblestore.Open(pebblestore.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := gateway.NewService(gateway.Config{Domain: "example.org", AdminKey: testAdminKey, Logger: quiet},
		gateway.Ports{Messages: db, Inbox: db, Agents: db, Queue: db, Schemas: schema.NewRegistry(db)})
	require.NoError(t, err)
	opt.Logger = quiet
	return &api{t: t, h: httpapi.New(svc, opt)}
}

// TestReadyzSaysWhichCheckFailed: /readyz runs the store check (Ready)
// and every named check, and a 503 names the ones that failed in
// details.failed — never what failed inside them.
func TestReadyzSaysWhichCheckFailed(t *testing.T) {
	fine := func(context.Context) error { return nil }
	broken := func(context.Context) error {
		return errors.New("read /var/lib/agentry/store/000123.sst: input/output error")
	}
	cases := []struct {
		name         string
		store, queue func(context.Context) error
		wantStatus   int
		wantFailed   []any
	}{
		{"both pass", fine, fine, http.StatusOK, nil},
		{"queue fails", fine, broken, http.StatusServiceUnavailable, []any{"queue"}},
		{"store fails", broken, fine, http.StatusServiceUnavailable, []any{"store"}},
		{"both fail, in order", broken, broken, http.StatusServiceUnavailable, []any{"store", "queue"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newOptionsAPI(t, httpapi.Options{Ready: tc.store,
				ReadyChecks: []httpapi.ReadyCheck{{Name: "queue", Check: tc.queue}}})
			for _, path := range []string{"/readyz", "/ready"} {
				code, out, raw := a.call("GET", path, nil, "")
				require.Equal(t, tc.wantStatus, code, "%s: %s", path, raw)
				if tc.wantStatus == http.StatusOK {
					assert.Equal(t, "ready", out["status"])
					continue
				}
				body := httpapitest.RequireErrorBody(t, []byte(raw), "TEMPORARY_FAILURE", path)
				assert.Equal(t, tc.wantFailed, body.Error.Details["failed"], path)
				assert.NotContains(t, raw, "/var/lib", path)
				assert.NotContains(t, raw, "input/output", path)
			}
		})
	}
}

// TestReadyzChecksRunTogether: a check that hangs does not keep the
// others from being run, and each is bounded: a hung store is reported
// as failed, by name.
func TestReadyzChecksRunTogether(t *testing.T) {
	queueRan := make(chan struct{})
	hung := func(ctx context.Context) error {
		// Unblocked only by the queue check having run: sequential checks
		// would wait here until the deadline and never run it first.
		select {
		case <-queueRan:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-ctx.Done()
		return ctx.Err()
	}
	var once sync.Once
	a := newOptionsAPI(t, httpapi.Options{Ready: hung, ReadyChecks: []httpapi.ReadyCheck{{Name: "queue",
		Check: func(context.Context) error { once.Do(func() { close(queueRan) }); return nil }}}})
	code, out, raw := a.call("GET", "/readyz", nil, "")
	require.Equal(t, http.StatusServiceUnavailable, code, "%s", raw)
	assert.Equal(t, []any{"store"}, out["error"].(map[string]any)["details"].(map[string]any)["failed"])
}

// TestRefusedSubmissionsAreCounted: Options.Refused hears of every
// message submission answered with an AMTP error, under the code the
// caller was told, and of nothing else.
func TestRefusedSubmissionsAreCounted(t *testing.T) {
	var mu sync.Mutex
	var got []amtp.Code
	a := newOptionsAPI(t, httpapi.Options{Refused: func(_ context.Context, c amtp.Code) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, c)
	}})
	key := bearer(a.register(`{"address":"alice","delivery_mode":"pull"}`)["api_key"].(string))
	a.register(`{"address":"bob","delivery_mode":"pull"}`)
	good := `{"version":"1.0","sender":"alice@example.org","recipients":["bob@example.org"],"payload":{}}`

	cases := []struct {
		name, method, path string
		hdr                map[string]string
		body               string
		want               []amtp.Code
	}{
		{"accepted", "POST", "/v1/messages", key, good, nil},
		{"not JSON", "POST", "/v1/messages", key, `{"version":`, []amtp.Code{amtp.CodeInvalidMessageFormat}},
		{"unknown key", "POST", "/v1/messages", bearer("amtp_nobody_0123456789"), good, []amtp.Code{amtp.CodeAuthenticationRequired}},
		{"anonymous as a local sender", "POST", "/v1/messages", nil, good, []amtp.Code{amtp.CodeLocalSenderAuthRequired}},
		{"as another agent", "POST", "/v1/messages", key, strings.Replace(good, `"sender":"alice@`, `"sender":"bob@`, 1),
			[]amtp.Code{amtp.CodeSenderCredentialMismatch}},
		{"too large", "POST", "/v1/messages", key, `{"payload":"` + strings.Repeat("x", 11<<20) + `"}`, []amtp.Code{amtp.CodeMessageTooLarge}},
		{"not a submission", "GET", "/v1/messages/nope", key, "", nil},
		{"wrong method", "PUT", "/v1/messages", key, good, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			rec := a.do(tc.method, tc.path, tc.hdr, tc.body)
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, tc.want, got, "%d %s", rec.Code, rec.Body)
			if tc.want != nil {
				httpapitest.RequireErrorBody(t, rec.Body.Bytes(), string(tc.want[0]), tc.name)
			}
		})
	}
}
