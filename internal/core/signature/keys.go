package signature

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
)

// Algorithm is a signature algorithm by its JOSE name, as written in
// signature.algorithm and in the alg= parameter of a key record.
type Algorithm string

// The algorithms of the draft's Domain Signatures profile (§9.3.3). There
// is deliberately no EdDSA: the profile has none, so a peer could not
// verify it.
const (
	RS256 Algorithm = "RS256"
	ES256 Algorithm = "ES256"
)

// RSA modulus bounds. The profile's floor is 2048 bits; above 8192 a
// published key costs verifiers real time for no gain, and a bound keeps
// hostile key records from doing that on purpose.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// generatedRSABits is the size GenerateKey uses for RS256: the profile's
// minimum and a 256-byte signature. ES256 is the default and the better
// choice for new deployments.
const generatedRSABits = 2048

// ParseAlgorithm accepts exactly ES256 and RS256. Matching is
// case-sensitive, as in JOSE.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch a := Algorithm(s); a {
	case RS256, ES256:
		return a, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, clip(s))
}

// signatureLen bounds the decoded value for a. An RS256 signature is
// exactly as long as the modulus, which only the key tells; an ES256 one is
// always the 64-byte r||s.
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
// is acceptable: RSA of MinRSABits..MaxRSABits, or ECDSA on P-256.
func AlgorithmFor(pub crypto.PublicKey) (Algorithm, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return "", fmt.Errorf("%w: empty RSA key", ErrKeyRecord)
		}
		if bits := k.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
			return "", fmt.Errorf("%w: RSA key of %d bits, want %d to %d", ErrKeyRecord, bits, MinRSABits, MaxRSABits)
		}
		// x509 parses these, but crypto/rsa refuses to verify with them: a
		// record holding one is unusable, not a key every signature fails.
		if k.N.Bit(0) == 0 {
			return "", fmt.Errorf("%w: RSA modulus is even", ErrKeyRecord)
		}
		if k.E < 3 || k.E%2 == 0 || k.E > 1<<31-1 {
			return "", fmt.Errorf("%w: RSA exponent %d is not acceptable", ErrKeyRecord, k.E)
		}
		return RS256, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve != elliptic.P256() {
			return "", fmt.Errorf("%w: ECDSA key is not on P-256", ErrKeyRecord)
		}
		// ecdsa.Verify dereferences the point; a resolver that builds keys
		// itself could hand over a zero one.
		if k.X == nil || k.Y == nil { //nolint:staticcheck // read, not set; k.Bytes() would dereference them
			return "", fmt.Errorf("%w: ECDSA key has no point", ErrKeyRecord)
		}
		return ES256, nil
	}
	return "", fmt.Errorf("%w: unsupported key type %T (the profile has ES256 and RS256 only)", ErrKeyRecord, pub)
}

// GenerateKey makes a new private key for alg: P-256 for ES256, RSA 2048
// for RS256.
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

// KeyRecordVersion is the v= value of a key record.
const KeyRecordVersion = "amtpkey1"

// PublicKeyTXT renders the key record to publish at
// <selector>._amtpkey.<domain>: "v=amtpkey1;alg=<ES256|RS256>;p=<standard
// base64 with padding of the DER SubjectPublicKeyInfo>". An RSA record is
// longer than 255 bytes, so the zone must split it into several
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
	return "v=" + KeyRecordVersion + ";alg=" + string(alg) + ";p=" + base64.StdEncoding.EncodeToString(spki), nil
}

// ParsePublicKey decodes the p= bytes of a key record (a DER
// SubjectPublicKeyInfo) and checks that they hold a usable key for the
// algorithm the alg= parameter declares. Failures wrap ErrKeyRecord: the
// publisher has to fix the record.
func ParsePublicKey(alg string, spki []byte) (crypto.PublicKey, error) {
	declared, err := ParseAlgorithm(alg)
	if err != nil {
		return nil, fmt.Errorf("%w: record alg: %w", ErrKeyRecord, err)
	}
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing published key: %w", ErrKeyRecord, err)
	}
	got, err := AlgorithmFor(pub)
	if err != nil {
		return nil, fmt.Errorf("parsing published key: %w", err)
	}
	if got != declared {
		return nil, fmt.Errorf("%w: record says alg=%s but holds a key for %s", ErrKeyRecord, declared, got)
	}
	return pub, nil
}

const maxSelectorLen = 63

// ParseSelector checks a keyid: the profile's keyid is a selector, one DNS
// label of lower-case letters, digits and hyphens (§3.2.3), so nothing an
// attacker writes into it turns into a DNS name of their choosing.
// Upper-case letters are refused rather than folded: the draft's grammar
// has none, and a signature should have one spelling.
func ParseSelector(keyID string) (string, error) {
	if err := checkSelector(keyID); err != nil {
		return "", fmt.Errorf("%w: keyid %q: %w", ErrMalformed, clip(keyID), err)
	}
	return keyID, nil
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
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
		default:
			return fmt.Errorf("selector has a character other than lower-case letters, digits and hyphens")
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
