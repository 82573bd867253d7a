package attach_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/attach"
	"github.com/agentry/agentry/internal/adapter/netguard"
	"github.com/agentry/agentry/internal/core/amtp"
)

func TestVerifyAttachments(t *testing.T) {
	content := []byte("%PDF-1.7 quarterly report")
	sum := sha256.Sum256(content)
	hash := "sha256:" + hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/report.pdf":
			w.Header().Set("Content-Type", "application/pdf")
			_, _ = w.Write(content)
		case "/charset.txt":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write(content)
		case "/busy":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/redirect":
			http.Redirect(w, r, "/report.pdf", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	dev := attach.Verifier{Client: netguard.NewClient(netguard.Options{AllowInsecure: true}), MaxBytes: 1 << 10}

	for _, tc := range []struct {
		name      string
		v         attach.Verifier
		a         amtp.Attachment
		wantCode  amtp.Code // "" = verified
		wantField string
	}{
		{name: "matches", a: amtp.Attachment{URL: srv.URL + "/report.pdf", ContentType: "application/pdf", Size: int64(len(content)), Hash: hash}},
		{name: "no hash declared: size checked", a: amtp.Attachment{URL: srv.URL + "/report.pdf", ContentType: "application/pdf", Size: int64(len(content))}},
		{name: "media type parameters ignored", a: amtp.Attachment{URL: srv.URL + "/charset.txt", ContentType: "text/plain", Size: int64(len(content)), Hash: hash}},
		{name: "wrong hash", a: amtp.Attachment{URL: srv.URL + "/report.pdf", ContentType: "application/pdf", Size: int64(len(content)), Hash: "sha256:" + hex.EncodeToString(make([]byte, 32))},
			wantCode: amtp.CodeInvalidMessageFormat, wantField: "attachments[0].hash"},
		{name: "larger than declared", a: amtp.Attachment{URL: srv.URL + "/report.pdf", ContentType: "application/pdf", Size: 5, Hash: hash},
			wantCode: amtp.CodeInvalidMessageFormat, wantField: "attachments[0].size"},
		{name: "smaller than declared", a: amtp.Attachment{URL: srv.URL + "/report.pdf", ContentType: "application/pdf", Size: 500, Hash: hash},
			wantCode: amtp.CodeInvalidMessageFormat, wantField: "attachments[0].size"},
		{name: "other media type", a: amtp.Attachment{URL: srv.URL + "/report.pdf", ContentType: "image/png", Size: int64(len(content))},
			wantCode: amtp.CodeInvalidMessageFormat, wantField: "attachments[0].content_type"},
		{name: "missing", a: amtp.Attachment{URL: srv.URL + "/gone", ContentType: "application/pdf", Size: 1},
			wantCode: amtp.CodeInvalidMessageFormat, wantField: "attachments[0].url"},
		{name: "redirect not followed", a: amtp.Attachment{URL: srv.URL + "/redirect", ContentType: "application/pdf", Size: int64(len(content))},
			wantCode: amtp.CodeInvalidMessageFormat, wantField: "attachments[0].url"},
		{name: "host busy: retry later", a: amtp.Attachment{URL: srv.URL + "/busy", ContentType: "application/pdf", Size: 1},
			wantCode: amtp.CodeTemporaryFailure, wantField: "attachments[0].url"},
		{name: "over the download cap", a: amtp.Attachment{URL: srv.URL + "/report.pdf", ContentType: "application/pdf", Size: 2 << 10},
			wantCode: amtp.CodeMessageTooLarge, wantField: "attachments[0].size"},
		{name: "loopback refused in production mode", v: attach.Verifier{Client: netguard.NewClient(netguard.Options{})},
			a:        amtp.Attachment{URL: "https://localhost:1/x.pdf", ContentType: "application/pdf", Size: 1},
			wantCode: amtp.CodeInvalidMessageFormat, wantField: "attachments[0].url"},
		{name: "metadata address refused", v: attach.Verifier{Client: netguard.NewClient(netguard.Options{})},
			a:        amtp.Attachment{URL: "https://169.254.169.254/latest/meta-data", ContentType: "text/plain", Size: 1},
			wantCode: amtp.CodeInvalidMessageFormat, wantField: "attachments[0].url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.v
			if v.Client == nil {
				v = dev
			}
			err := v.VerifyAttachments(context.Background(), &amtp.Message{Attachments: []amtp.Attachment{tc.a}})
			if tc.wantCode == "" {
				require.NoError(t, err)
				return
			}
			ae, ok := amtp.AsError(err)
			require.True(t, ok, "want an AMTP error, got %v", err)
			assert.Equal(t, tc.wantCode, ae.Code, ae.Message)
			assert.Equal(t, tc.wantField, ae.Details["field"], ae.Message)
		})
	}
}
