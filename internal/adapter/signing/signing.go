// Package signing wires the signature package into a running gateway: it
// loads the gateway's signing key from the configuration, signs what the
// delivery worker forwards (delivery.MessageSigner), and verifies what
// other domains hand us (gateway.InboundVerifier) with keys found through
// DNS discovery. It is composition glue shared by the local and the AWS
// gateway, so that neither the core nor the worker knows about keys or DNS.
package signing

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/agentry/agentry/internal/adapter/discovery"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/signature"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/gateway"
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
// the one in <data dir>/signing.pem, else a new ES256 key stored there
// (0600) for the next start, like the admin key. A data dir holding a key
// of a kind the Domain Signatures profile has no place for (the Ed25519
// keys earlier versions generated) gets a new ES256 key; the old one is
// kept beside it as signing.pem.retired, never used again. notice is empty
// when the key was already there, else a line for the operator saying
// what happened; the record to publish is KeyRecord's.
func LoadLocal(cfg config.Config) (s *signature.Signer, notice string, err error) {
	if s, err := Configured(cfg); s != nil || err != nil {
		return s, "", err
	}
	path := filepath.Join(cfg.DataDir, KeyFileName)
	data, err := os.ReadFile(path)
	switch {
	case err == nil && outsideProfile(data):
		retired := path + ".retired"
		if err := os.Rename(path, retired); err != nil {
			return nil, "", fmt.Errorf("retire signing key %s: %w", path, err)
		}
		s, err := generateLocal(cfg, path)
		if err != nil {
			return nil, "", err
		}
		return s, fmt.Sprintf("the signing key in %s was Ed25519, which the AMTP Domain Signatures profile does not allow: "+
			"a new ES256 key signs under selector %s (the old one is kept in %s and no longer used); publish the record below "+
			"and remove the old key record", path, s.Selector(), retired), nil
	case err == nil:
		s, err := newSigner(cfg, data)
		if err != nil {
			return nil, "", fmt.Errorf("signing key %s: %w", path, err)
		}
		return s, "", nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, "", fmt.Errorf("read signing key: %w", err)
	}
	s, err = generateLocal(cfg, path)
	if err != nil {
		return nil, "", err
	}
	return s, fmt.Sprintf("generated an ES256 signing key in %s (selector %s); publish the record below", path, s.Selector()), nil
}

// outsideProfile reports whether a PEM holds a private key that parses but
// is of a kind the profile has no algorithm for (Ed25519, from earlier
// versions). Anything else unreadable is left to newSigner to report.
func outsideProfile(pemData []byte) bool {
	block, _ := pem.Decode(pemData)
	if block == nil {
		return false
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return false
	}
	_, ed := key.(ed25519.PrivateKey)
	return ed
}

// generateLocal makes a new ES256 key at path (which must not exist).
func generateLocal(cfg config.Config, path string) (*signature.Signer, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	key, err := signature.GenerateKey(signature.ES256)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	data, err := signature.EncodePrivateKeyPEM(key)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	// O_EXCL: two gateways started on one data dir at once must not end
	// up signing with different keys, one of which was overwritten.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	return newSigner(cfg, data)
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

// Keys resolves signing keys through DNS discovery (cached there: found
// for at most five minutes, not found for at most 30 seconds). No valid
// record is ErrKeyNotFound (key_unavailable), several records or an
// unusable one ErrKeyRecord (invalid), a DNS failure temporary.
func Keys(r *discovery.Resolver) signature.KeyResolver {
	return signature.RecordLookup(func(ctx context.Context, domain, selector string) (string, []byte, error) {
		kr, err := r.LookupKey(ctx, domain, selector)
		switch {
		case err == nil, discovery.IsTransient(err):
		case errors.Is(err, discovery.ErrKeyNotFound):
			err = fmt.Errorf("%w: %w", signature.ErrKeyNotFound, err)
		default:
			err = fmt.Errorf("%w: %w", signature.ErrKeyRecord, err)
		}
		return kr.Algorithm, kr.PublicKey, err
	})
}

// Inbound implements gateway.InboundVerifier: it verifies the domain
// signature of mail from other domains and applies the verification
// policy (draft §9.3.4) to what does not verify.
type Inbound struct {
	Verifier *signature.Verifier
	// Policy is config.SignatureAccept, SignatureFlag or SignatureReject;
	// "" means flag, the draft's default.
	Policy string
	Logger *slog.Logger // nil: slog.Default
	// Flagged, when set, counts each message let through unverified under
	// flag (the draft's "increment a verification metric").
	Flagged func(ctx context.Context, result gateway.VerificationResult)
}

// NewInbound builds the verifier for the gateway's configuration.
func NewInbound(cfg config.Config, r *discovery.Resolver, log *slog.Logger) *Inbound {
	return &Inbound{
		Verifier: &signature.Verifier{Keys: Keys(r), MaxBytes: cfg.MaxMessageBytes},
		Policy:   cfg.SignaturePolicy,
		Logger:   log,
	}
}

// VerifyInbound records what verification found and, under reject,
// refuses what did not verify: 403 SIGNATURE_REQUIRED (unsigned), 403
// SIGNATURE_INVALID, 503 SIGNATURE_KEY_UNAVAILABLE (the sender retries).
func (in *Inbound) VerifyInbound(ctx context.Context, raw []byte) (gateway.SenderVerification, error) {
	v, err := in.Verifier.Verify(ctx, raw)
	kind := signature.KindOf(err)
	sv := gateway.SenderVerification{
		Result: gateway.VerificationResult(kind), Method: gateway.MethodDomainSignature,
		Domain: v.Domain, KeyID: v.Selector, Algorithm: string(v.Algorithm),
	}
	if kind == signature.KindUnsigned {
		sv.Method = gateway.MethodNone
	}
	log := in.Logger
	if log == nil {
		log = slog.Default()
	}
	if err == nil {
		log.DebugContext(ctx, "inbound signature verified", "domain", v.Domain, "keyid", v.Selector, "algorithm", string(v.Algorithm))
		return sv, nil
	}
	switch in.Policy {
	case config.SignatureAccept:
		log.DebugContext(ctx, "inbound mail not verified; accepted by policy", "result", string(kind), "domain", v.Domain, "err", err)
		return sv, nil
	case config.SignatureReject:
		return sv, refusal(kind, err)
	}
	// flag: accepted, recorded with the message, logged and counted.
	log.WarnContext(ctx, "inbound mail not verified; accepted and flagged", "result", string(kind), "domain", v.Domain, "keyid", v.Selector, "err", err)
	if in.Flagged != nil {
		in.Flagged(ctx, sv.Result)
	}
	return sv, nil
}

// refusal is the reject policy's answer for a result other than verified.
// The reason text (keyid, domains, clipped by the signature package) tells
// the sending gateway's operator what to fix; a DNS failure's cause is
// ours to look at, not the caller's.
func refusal(kind signature.Kind, err error) *amtp.Error {
	var e *amtp.Error
	switch kind {
	case signature.KindUnsigned:
		e = amtp.Errorf(amtp.CodeSignatureRequired, "this gateway accepts mail from other domains only with a domain signature")
	case signature.KindKeyUnavailable:
		if errors.Is(err, signature.ErrKeyNotFound) {
			e = amtp.Errorf(amtp.CodeSignatureKeyUnavailable, "no signing key record could be found: %s; retry once it is published", err.Error())
		} else {
			e = amtp.Errorf(amtp.CodeSignatureKeyUnavailable, "the sender's signing key could not be fetched now; retry later")
		}
	default:
		e = amtp.Errorf(amtp.CodeSignatureInvalid, "%s", err.Error())
	}
	return e.WithDetail("result", string(kind))
}
