// Package attach verifies a message's attachments (draft §4.1) by fetching
// them: the declared size and sha256 hash must match what the URL serves.
// The amtp parser already checked the shape (https URL, size, content
// type, hash format); this is the optional, network-bound part, enabled by
// AGENTRY_VERIFY_ATTACHMENTS. Fetches go through the SSRF-guarded client
// (internal/adapter/netguard), are bounded by the declared size and a hard cap,
// and never follow redirects, so an attachment URL cannot make the gateway
// read from its own network or download without limit.
package attach

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// DefaultMaxBytes caps one attachment's download.
const DefaultMaxBytes = 25 << 20

// Verifier fetches attachments with Client (from netguard).
type Verifier struct {
	Client   *http.Client
	MaxBytes int64         // per attachment; DefaultMaxBytes when 0
	Timeout  time.Duration // per attachment; 20 s when 0
}

// FromConfig is the verifier AGENTRY_VERIFY_ATTACHMENTS asks for, over the
// composition's guarded client (the one deliveries use); nil when it is
// off, which the gateway takes as "check the shape only".
func FromConfig(cfg config.Config, client *http.Client) gateway.AttachmentVerifier {
	if !cfg.VerifyAttachments {
		return nil
	}
	return Verifier{Client: client, MaxBytes: cfg.AttachmentMaxBytes}
}

// VerifyAttachments checks every attachment of m. Refusals are *amtp.Error
// with details.field naming the attachment; a fetch that fails for reasons
// the sender cannot fix (the host is down) is a TEMPORARY_FAILURE so that
// the submission can be retried.
func (v Verifier) VerifyAttachments(ctx context.Context, m *amtp.Message) error {
	for i, a := range m.Attachments {
		if err := v.verify(ctx, a, fmt.Sprintf("attachments[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func (v Verifier) verify(ctx context.Context, a amtp.Attachment, field string) error {
	limit := v.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	timeout := v.Timeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	if a.Size > limit {
		return amtp.Errorf(amtp.CodeMessageTooLarge, "%s is %d bytes; attachments are verified up to %d", field, a.Size, limit).WithDetail("field", field+".size")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return amtp.FieldError(field+".url", "attachment url is not usable")
	}
	resp, err := v.Client.Do(req)
	if err != nil {
		if errors.Is(err, gateway.ErrBlockedAddress) {
			return amtp.FieldError(field+".url", "attachment url points to an address this gateway does not fetch from")
		}
		return amtp.Errorf(amtp.CodeTemporaryFailure, "%s could not be fetched; retry later", field).WithDetail("field", field+".url")
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return amtp.Errorf(amtp.CodeTemporaryFailure, "%s: its host answered %d; retry later", field, resp.StatusCode).WithDetail("field", field+".url")
	case resp.StatusCode != http.StatusOK:
		return amtp.FieldError(field+".url", "attachment url answered %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !sameMediaType(ct, a.ContentType) {
		return amtp.FieldError(field+".content_type", "attachment is served as %s, declared %s", mediaType(ct), mediaType(a.ContentType))
	}
	// One byte past the declared size is enough to tell that it is larger.
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(resp.Body, a.Size+1))
	if err != nil {
		return amtp.Errorf(amtp.CodeTemporaryFailure, "%s: download broke off; retry later", field).WithDetail("field", field+".url")
	}
	if n != a.Size {
		return amtp.FieldError(field+".size", "attachment has %s bytes, declared %d", sizeText(n, a.Size), a.Size)
	}
	if a.Hash != "" {
		got := "sha256:" + hex.EncodeToString(h.Sum(nil))
		if !strings.EqualFold(got, a.Hash) {
			return amtp.FieldError(field+".hash", "attachment content does not match its hash")
		}
	}
	return nil
}

func sizeText(n, declared int64) string {
	if n > declared {
		return "more than " + fmt.Sprint(declared)
	}
	return fmt.Sprint(n)
}

func mediaType(s string) string {
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.ToLower(strings.TrimSpace(s))
}

// sameMediaType compares type/subtype only: parameters such as charset
// differ harmlessly between what a sender declares and a server sends.
func sameMediaType(a, b string) bool { return mediaType(a) == mediaType(b) }
