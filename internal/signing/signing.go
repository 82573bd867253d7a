// Package signing wires the signature package into a running gateway: it
// loads the gateway's signing key from the configuration, signs what the
// delivery worker forwards (delivery.MessageSigner), and verifies what
// other domains hand us (gateway.InboundVerifier) with keys found through
// DNS discovery. It is composition glue shared by the local and the AWS
// gateway, so that neither the core nor the worker knows about keys or DNS.
package signing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/agentry/agentry/internal/amtp"
	"github.com/agentry/agentry/internal/config"
	"github.com/agentry/agentry/internal/discovery"
	"github.com/agentry/agentry/internal/signature"
)

// KeyFileName is the signing key's file in the local gateway's data dir.
const KeyFileName = "signing.pem"

// Configured returns the signer for the key the configuration names
// (AGENTRY_SIGNING_KEY or AGENTRY_SIGNING_KEY_FILE), or nil when it names
// none. It never generates a key.
func Configured(cfg config.Config) (*signature.Signer, error) {
	var pemData []byte
	switch {
	case cfg.SigningKey != "":
		pemData = []byte(cfg.SigningKey)
	case cfg.SigningKeyFile != "":
		data, err := os.ReadFile(cfg.SigningKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read AGENTRY_SIGNING_KEY_FILE: %w", err)
		}
		pemData = data
	default:
		return nil, nil
	}
	return newSigner(cfg, pemData)
}

// LoadLocal returns the local gateway's signer: the configured key, else
// the one in <data dir>/signing.pem, else a new Ed25519 key stored there
// (0600) for the next start, like the admin key. generated tells the
// caller to show the key record that must now be published.
func LoadLocal(cfg config.Config) (s *signature.Signer, generated bool, err error) {
	if s, err := Configured(cfg); s != nil || err != nil {
		return s, false, err
	}
	path := filepath.Join(cfg.DataDir, KeyFileName)
	data, err := os.ReadFile(path)
	if err == nil {
		s, err := newSigner(cfg, data)
		if err != nil {
			return nil, false, fmt.Errorf("signing key %s: %w", path, err)
		}
		return s, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read signing key: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data dir: %w", err)
	}
	key, err := signature.GenerateKey(signature.EdDSA)
	if err != nil {
		return nil, false, fmt.Errorf("generate signing key: %w", err)
	}
	data, err = signature.EncodePrivateKeyPEM(key)
	if err != nil {
		return nil, false, fmt.Errorf("encode signing key: %w", err)
	}
	// O_EXCL: two gateways started on one data dir at once must not end
	// up signing with different keys, one of which was overwritten.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("store signing key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("store signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("store signing key: %w", err)
	}
	s, err = signature.NewSigner(cfg.Domain, cfg.SigningSelector, key)
	if err != nil {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	s.MaxBytes = cfg.MaxMessageBytes
	return s, true, nil
}

func newSigner(cfg config.Config, pemData []byte) (*signature.Signer, error) {
	key, err := signature.ParsePrivateKeyPEM(pemData)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	s, err := signature.NewSigner(cfg.Domain, cfg.SigningSelector, key)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	// The worker signs whole messages up to the size we accept.
	s.MaxBytes = cfg.MaxMessageBytes
	return s, nil
}

// KeyRecord is the DNS record publishing s's public key, as a zone file
// line.
func KeyRecord(s *signature.Signer) (string, error) {
	txt, err := signature.PublicKeyTXT(s.Public())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s._amtpkey.%s. 300 IN TXT %s", s.Selector(), s.Domain(), ZoneTXT(txt)), nil
}

// ZoneTXT quotes txt for a zone file, split into character-strings of at
// most 255 bytes: an RSA key record is longer than one string may be, and
// resolvers join the parts again.
func ZoneTXT(txt string) string {
	var out []byte
	for len(txt) > 0 {
		n := min(len(txt), 255)
		if len(out) > 0 {
			out = append(out, ' ')
		}
		// The record's characters are base64 and tag syntax: nothing
		// needs escaping inside the quotes.
		out = append(out, '"')
		out = append(out, txt[:n]...)
		out = append(out, '"')
		txt = txt[n:]
	}
	return string(out)
}

// Signer adapts a fixed signature.Signer to delivery.MessageSigner.
type Signer struct{ S *signature.Signer }

// SignMessage signs raw with the fixed key.
func (s Signer) SignMessage(_ context.Context, raw []byte) ([]byte, error) {
	return s.S.Sign(raw)
}

// Lazy is a delivery.MessageSigner whose key is loaded on first use (from
// Secrets Manager on AWS), so that a Lambda cold start that never forwards
// anything makes no call for it. A failed load is retried at the next use.
type Lazy struct {
	Load func(ctx context.Context) (*signature.Signer, error)

	mu sync.Mutex
	s  *signature.Signer
}

// SignMessage loads the key if needed and signs raw.
func (l *Lazy) SignMessage(ctx context.Context, raw []byte) ([]byte, error) {
	l.mu.Lock()
	s := l.s
	if s == nil {
		var err error
		s, err = l.Load(ctx)
		if err != nil {
			l.mu.Unlock()
			return nil, fmt.Errorf("load signing key: %w", err)
		}
		l.s = s
	}
	l.mu.Unlock()
	return s.Sign(raw)
}

// Keys resolves signing keys through DNS discovery (cached there by the
// record's TTL). A key that is absent, revoked or unparsable is definitive
// (the message is refused); a DNS failure is not (the sender retries).
func Keys(r *discovery.Resolver) signature.KeyResolver {
	return signature.RecordLookup(func(ctx context.Context, domain, selector string) (string, []byte, error) {
		kr, err := r.LookupKey(ctx, domain, selector)
		if err != nil && !discovery.IsTransient(err) {
			err = fmt.Errorf("%w: %w", signature.ErrUnknownKey, err)
		}
		return kr.Algorithm, kr.PublicKey, err
	})
}

// Inbound implements gateway.InboundVerifier with a signature.Verifier.
type Inbound struct {
	Verifier *signature.Verifier
	// Require refuses unsigned mail from other domains; without it such
	// mail is accepted (development only: anyone could then write as any
	// sender of another domain).
	Require bool
	Logger  *slog.Logger // nil: slog.Default
}

// NewInbound builds the verifier for the gateway's configuration.
func NewInbound(cfg config.Config, r *discovery.Resolver, log *slog.Logger) *Inbound {
	return &Inbound{
		Verifier: &signature.Verifier{Keys: Keys(r), MaxBytes: cfg.MaxMessageBytes},
		Require:  cfg.RequireSignatures,
		Logger:   log,
	}
}

// VerifyInbound answers nil, SIGNATURE_INVALID (401) or TEMPORARY_FAILURE
// (503) as shared/PROTOCOL.md "Signatures" and the signature package's
// error kinds prescribe.
func (in *Inbound) VerifyInbound(ctx context.Context, raw []byte) error {
	v, err := in.Verifier.Verify(ctx, raw)
	log := in.Logger
	if log == nil {
		log = slog.Default()
	}
	switch {
	case err == nil:
		log.DebugContext(ctx, "inbound signature verified", "keyid", v.KeyID, "algorithm", string(v.Algorithm))
		return nil
	case errors.Is(err, signature.ErrUnsigned):
		if !in.Require {
			return nil
		}
		return amtp.Errorf(amtp.CodeSignatureInvalid, "mail from another domain must be signed by its gateway")
	case signature.Temporary(err):
		// The cause (a DNS timeout) is ours to look at, not the caller's.
		log.WarnContext(ctx, "signing key lookup failed", "err", err)
		return amtp.Errorf(amtp.CodeTemporaryFailure, "the sender's signing key could not be fetched now, retry later")
	default:
		// The sending gateway has to fix something; the error text (keyid,
		// domains, clipped) tells its operator what.
		log.InfoContext(ctx, "inbound signature refused", "err", err)
		return amtp.Errorf(amtp.CodeSignatureInvalid, "%s", err.Error())
	}
}
