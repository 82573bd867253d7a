package signature

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/agentry/agentry/internal/amtp"
)

// Algorithm is a signature algorithm by its JOSE name, as written in
// signature.algorithm.
type Algorithm string

// The algorithms of PROTOCOL.md.
const (
	RS256 Algorithm = "RS256"
	ES256 Algorithm = "ES256"
	EdDSA Algorithm = "EdDSA"
)

// Key types as written in the k= tag of a key record.
const (
	KeyTypeRSA     = "rsa"
	KeyTypeEC      = "ec"
	KeyTypeEd25519 = "ed25519"
)

// RSA modulus bounds. Below 2048 bits RSA is no longer considered safe;
// above 8192 a published key costs verifiers real time for no gain, and a
// bound keeps hostile key records from doing that on purpose.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// generatedRSABits is the size GenerateKey uses: the DKIM norm, and a 256-byte
// signature. EdDSA is the better choice for new deployments.
const generatedRSABits = 2048

// ParseAlgorithm accepts exactly the three JOSE names. Matching is
// case-sensitive, as in JOSE.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch a := Algorithm(s); a {
	case RS256, ES256, EdDSA:
		return a, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, clip(s))
}

// KeyType is the k= tag of keys that sign with a.
func (a Algorithm) KeyType() string {
	switch a {
	case RS256:
		return KeyTypeRSA
	case ES256:
		return KeyTypeEC
	case EdDSA:
		return KeyTypeEd25519
	}
	return ""
}

// minSignatureLen and maxSignatureLen bound the decoded value for a. An
// RS256 signature is exactly as long as the modulus, which only the key
// tells; the others are always 64 bytes.
func (a Algorithm) minSignatureLen() int {
	if a == RS256 {
		return MinRSABits / 8
	}
	return 64
}

func (a Algorithm) maxSignatureLen() int {
	if a == RS256 {
		return MaxRSABits / 8
	}
	return 64
}

// AlgorithmFor returns the algorithm that pub verifies and checks that pub
// is acceptable: RSA of MinRSABits..MaxRSABits, ECDSA on P-256, Ed25519.
func AlgorithmFor(pub crypto.PublicKey) (Algorithm, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return "", fmt.Errorf("%w: empty RSA key", ErrUnknownKey)
		}
		if bits := k.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
			return "", fmt.Errorf("%w: RSA key of %d bits, want %d to %d", ErrUnknownKey, bits, MinRSABits, MaxRSABits)
		}
		return RS256, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve != elliptic.P256() {
			return "", fmt.Errorf("%w: ECDSA key is not on P-256", ErrUnknownKey)
		}
		// ecdsa.Verify dereferences the point; a resolver that builds keys
		// itself could hand over a zero one.
		if k.X == nil || k.Y == nil {
			return "", fmt.Errorf("%w: ECDSA key has no point", ErrUnknownKey)
		}
		return ES256, nil
	case ed25519.PublicKey:
		// ed25519.Verify panics on a key of the wrong length.
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("%w: Ed25519 key of %d bytes", ErrUnknownKey, len(k))
		}
		return EdDSA, nil
	}
	return "", fmt.Errorf("%w: unsupported key type %T", ErrUnknownKey, pub)
}

// GenerateKey makes a new private key for alg: RSA 2048, P-256 or Ed25519.
func GenerateKey(alg Algorithm) (crypto.Signer, error) {
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case RS256:
		k, err = rsa.GenerateKey(rand.Reader, generatedRSABits)
	case ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, clip(string(alg)))
	}
	if err != nil {
		return nil, fmt.Errorf("signature: generating %s key: %w", alg, err)
	}
	return k, nil
}

const pemPrivateKey = "PRIVATE KEY"

// EncodePrivateKeyPEM writes k as an unencrypted PKCS#8 "PRIVATE KEY" PEM
// block. Only in-memory keys can be exported; a KMS- or HSM-backed
// crypto.Signer cannot.
func EncodePrivateKeyPEM(k crypto.Signer) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("signature: encoding private key: no key")
	}
	if _, err := AlgorithmFor(k.Public()); err != nil {
		return nil, fmt.Errorf("signature: encoding private key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("signature: encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// ParsePrivateKeyPEM reads one unencrypted PKCS#8 "PRIVATE KEY" block and
// returns a key this package can sign with. Legacy "RSA PRIVATE KEY" and
// "EC PRIVATE KEY" blocks, encrypted PEM and files holding anything after
// the key are refused: a key file should be unambiguous about what it
// holds.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("signature: parsing private key: no PEM block")
	}
	if block.Type != pemPrivateKey {
		return nil, fmt.Errorf("signature: parsing private key: PEM block is %q, want %q (PKCS#8; convert with openssl pkcs8 -topk8 -nocrypt)", block.Type, pemPrivateKey)
	}
	if len(block.Headers) > 0 {
		return nil, fmt.Errorf("signature: parsing private key: PEM block has headers (encrypted keys are not supported)")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, fmt.Errorf("signature: parsing private key: data after the PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signature: parsing private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signature: parsing private key: %T cannot sign", key)
	}
	if _, err := AlgorithmFor(signer.Public()); err != nil {
		return nil, fmt.Errorf("signature: parsing private key: %w", err)
	}
	return signer, nil
}

// PublicKeyTXT renders the key record to publish at
// <selector>._amtpkey.<domain>: "v=amtp1;k=<type>;p=<base64 SPKI>". An RSA
// record is longer than 255 bytes, so the zone must split it into several
// character-strings; resolvers join them.
func PublicKeyTXT(pub crypto.PublicKey) (string, error) {
	alg, err := AlgorithmFor(pub)
	if err != nil {
		return "", fmt.Errorf("signature: key record: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("signature: key record: %w", err)
	}
	return "v=amtp1;k=" + alg.KeyType() + ";p=" + base64.StdEncoding.EncodeToString(spki), nil
}

// ParsePublicKey decodes the p= bytes of a key record (a DER
// SubjectPublicKeyInfo) and checks that they hold a usable key of the type
// the k= tag declares. Failures wrap ErrUnknownKey: the publisher has to
// fix the record.
func ParsePublicKey(keyType string, spki []byte) (crypto.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing published key: %w", ErrUnknownKey, err)
	}
	alg, err := AlgorithmFor(pub)
	if err != nil {
		return nil, fmt.Errorf("parsing published key: %w", err)
	}
	if got := alg.KeyType(); !strings.EqualFold(keyType, got) {
		return nil, fmt.Errorf("%w: record says k=%s but holds a %s key", ErrUnknownKey, clip(keyType), got)
	}
	return pub, nil
}

// FormatKeyID joins a domain and selector into a keyid.
func FormatKeyID(domain, selector string) string { return domain + ":" + selector }

// maxKeyIDLen is a domain, a colon and a one-label selector.
const maxKeyIDLen = amtp.MaxDomainLen + 1 + maxSelectorLen

const maxSelectorLen = 63

// ParseKeyID splits "<domain>:<selector>" and returns both lower-cased. The
// domain must be a valid mail domain and the selector a single DNS label
// (letters, digits, hyphens), so nothing an attacker writes into a keyid
// turns into an unexpected DNS name such as one with extra labels.
func ParseKeyID(keyID string) (domain, selector string, err error) {
	if len(keyID) > maxKeyIDLen {
		return "", "", fmt.Errorf("%w: keyid is longer than %d bytes", ErrMalformed, maxKeyIDLen)
	}
	domain, selector, ok := strings.Cut(keyID, ":")
	if !ok || strings.Contains(selector, ":") {
		return "", "", fmt.Errorf("%w: keyid %q is not <domain>:<selector>", ErrMalformed, clip(keyID))
	}
	domain, err = amtp.NormalizeDomain(domain)
	if err != nil {
		return "", "", fmt.Errorf("%w: keyid %q: %w", ErrMalformed, clip(keyID), err)
	}
	if err := checkSelector(selector); err != nil {
		return "", "", fmt.Errorf("%w: keyid %q: %w", ErrMalformed, clip(keyID), err)
	}
	return domain, strings.ToLower(selector), nil
}

func checkSelector(sel string) error {
	switch {
	case sel == "":
		return fmt.Errorf("selector is empty")
	case len(sel) > maxSelectorLen:
		return fmt.Errorf("selector is longer than %d bytes", maxSelectorLen)
	case sel[0] == '-' || sel[len(sel)-1] == '-':
		return fmt.Errorf("selector starts or ends with a hyphen")
	}
	for i := 0; i < len(sel); i++ {
		switch c := sel[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
		default:
			return fmt.Errorf("selector has a character other than letters, digits and hyphens")
		}
	}
	return nil
}

// clip keeps attacker-supplied text in error messages short.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
