package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// internals is what the failures below carry and no sender may read.
var internals = []string{"127.0.0.1", "10.0.0.2", "36329", ":53", "lookup", "dial", "tcp", "localhost", "0x7f000001", "no such host", "refused", "x509", "Post", "https://"}

func dialFailure(err error) error {
	return &url.Error{Op: "Post", URL: "https://0x7f000001:36329/v1/messages?token=s3cret", Err: &net.OpError{
		Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 36329}, Err: err}}
}

// TestNetworkFailureTellsTheSenderNoInternals: the sender's message says
// what kind of failure it was, in words meant for it; the whole error goes
// to the operator's log (detail) only.
func TestNetworkFailureTellsTheSenderNoInternals(t *testing.T) {
	w := &Worker{cfg: Config{Now: time.Now, Retry: DefaultRetryPolicy()}}
	rcpts := []string{"bob@b.test"}
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
		want      string
	}{
		{"blocked after resolution", dialFailure(fmt.Errorf("%w: 127.0.0.1", gateway.ErrBlockedAddress)), true,
			"the destination address is not allowed"},
		{"blocked numeric spelling", &url.Error{Op: "Post", URL: "https://0x7f000001:36329/", Err: fmt.Errorf("%w: 0x7f000001 is a numeric IPv4 spelling", gateway.ErrBlockedAddress)}, true,
			"the destination address is not allowed"},
		{"lookup failed", dialFailure(&net.DNSError{Err: "no such host", Name: "0x7f000001", Server: "10.0.0.2:53", IsNotFound: true}), false,
			"the recipient's gateway could not be reached"},
		{"connection refused", dialFailure(syscall.ECONNREFUSED), false,
			"the recipient's gateway could not be reached"},
		{"lookup timed out", dialFailure(&net.DNSError{Err: "i/o timeout", Name: "localhost", Server: "10.0.0.2:53", IsTimeout: true}), false,
			"the recipient's gateway did not answer in time"},
		{"deadline", &url.Error{Op: "Post", URL: "https://localhost:36329/", Err: context.DeadlineExceeded}, false,
			"the recipient's gateway did not answer in time"},
		{"certificate", &url.Error{Op: "Post", URL: "https://localhost:36329/", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, false,
			"the recipient's gateway could not be reached: its TLS certificate was not accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := w.networkFailure(rcpts, "the recipient's gateway", tc.err)
			var got *amtp.Error
			if tc.permanent {
				require.Nil(t, o.transient)
				require.Contains(t, o.results, "bob@b.test")
				got = o.results["bob@b.test"].err
			} else {
				require.Empty(t, o.results)
				got = o.transient
			}
			require.NotNil(t, got)
			assert.Equal(t, amtp.CodeRecipientUnavailable, got.Code)
			assert.Equal(t, tc.want, got.Message)
			for _, s := range internals {
				assert.NotContains(t, got.Message, s)
			}
			assert.Contains(t, o.detail, "36329", "the operator's log keeps the whole error")
			assert.NotContains(t, o.detail, "s3cret", "but not a URL's query")
		})
	}
}

// TestHTTPFailureBoundsWhatThePeerSaid: a peer's error text reaches the
// sender cut to length, without control characters, as valid UTF-8.
func TestHTTPFailureBoundsWhatThePeerSaid(t *testing.T) {
	w := &Worker{cfg: Config{Now: time.Now, Retry: DefaultRetryPolicy()}}
	rcpts := []string{"bob@b.test"}
	long := strings.Repeat("é", 2000)
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		permanent bool
		code      amtp.Code
		want      string // the whole message, or its start when long
	}{
		{"5xx", 500, "", false, amtp.CodeRecipientUnavailable, "the recipient's webhook answered 500 Internal Server Error"},
		{"gone", 410, "", true, amtp.CodeRecipientNotFound, "the recipient's webhook answered 410 Gone"},
		{"forbidden", 403, "", true, amtp.CodeAuthenticationFailed, "the recipient's webhook answered 403 Forbidden"},
		{"peer code and text", 400, `{"error":{"code":"INVALID_RECIPIENT","message":"no bob here"}}`, true, amtp.CodeInvalidRecipient,
			"the recipient's webhook answered 400 Bad Request: no bob here"},
		{"not a code", 400, `{"error":{"code":"bad code!","message":"x"}}`, true, amtp.CodeRecipientUnavailable,
			"the recipient's webhook answered 400 Bad Request: x"},
		{"control characters", 503, `{"error":{"code":"TEMPORARY_FAILURE","message":"a\u001b[31mb\u0000c\r\nInjected: yes\u202ed\u0085e\tf"}}`, false, amtp.CodeRecipientUnavailable,
			"the recipient's webhook answered 503 Service Unavailable: a [31mb c Injected: yes d e f"},
		{"invalid UTF-8", 400, "{\"error\":{\"code\":\"X\",\"message\":\"a\xffb\"}}", true, "X",
			"the recipient's webhook answered 400 Bad Request: a\ufffdb"},
		{"long", 400, `{"error":{"code":"X","message":"` + long + `"}}`, true, "X",
			"the recipient's webhook answered 400 Bad Request: éé"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{}}
			o := w.httpFailure(rcpts, "the recipient's webhook", resp, []byte(tc.body))
			var got *amtp.Error
			if tc.permanent {
				require.Nil(t, o.transient)
				got = o.results["bob@b.test"].err
			} else {
				got = o.transient
			}
			require.NotNil(t, got)
			assert.Equal(t, tc.code, got.Code)
			if tc.name == "long" {
				assert.True(t, strings.HasPrefix(got.Message, tc.want), "%q", got.Message)
			} else {
				assert.Equal(t, tc.want, got.Message)
			}
			assert.True(t, utf8.ValidString(got.Message))
			assert.LessOrEqual(t, len(got.Message), 400, "bounded")
			for _, r := range got.Message {
				assert.False(t, unicode.IsControl(r) || unicode.Is(unicode.Cf, r), "control or format character %U in %q", r, got.Message)
			}
		})
	}
}
