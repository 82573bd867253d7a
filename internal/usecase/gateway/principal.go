package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/agentry/agentry/internal/core/amtp"
)

// PrincipalKind says who is calling.
type PrincipalKind int

const (
	Anonymous PrincipalKind = iota // no credentials: another gateway, or the public
	AgentCaller
	AdminCaller
)

// Principal is an authenticated caller.
type Principal struct {
	Kind  PrincipalKind
	Agent *Agent
	// PeerNames are the DNS names (or common name) of the verified client
	// certificate the caller presented, if any: the transport's word for
	// which gateway is calling.
	PeerNames []string
	// ViaToken: the caller proved who it is with an OAuth 2.0 token rather
	// than an API key (recorded as the sender verification method).
	ViaToken bool
}

// RequireAdmin answers 401/403 unless p is the admin.
func RequireAdmin(p Principal) error {
	switch p.Kind {
	case AdminCaller:
		return nil
	case Anonymous:
		return amtp.Errorf(amtp.CodeAuthenticationRequired, "this call needs the admin key as a bearer token")
	}
	return amtp.Errorf(amtp.CodeForbidden, "this call is for the gateway admin only")
}

// predates reports whether mail accepted at acceptedAt was accepted before
// agent a was registered: it belonged to an agent deleted since, whose
// address a took over, and is none of a's business. An agent is its
// address and its registration time.
func predates(acceptedAt time.Time, a *Agent) bool {
	return acceptedAt.Before(a.CreatedAt)
}

// HashAPIKey is how agent keys are stored.
func HashAPIKey(key string) string { return hexDigest(tokenHash(key)) }

// tokenHash is the SHA-256 of a bearer token. Tokens are short: hashing a
// copy on the stack spares the heap copy that []byte(token) makes of any
// string longer than 32 bytes.
func tokenHash(token string) [sha256.Size]byte {
	var buf [256]byte
	if len(token) <= len(buf) {
		return sha256.Sum256(append(buf[:0], token...))
	}
	return sha256.Sum256([]byte(token))
}

// hexDigest is hex.EncodeToString(h[:]) with one allocation, the string,
// instead of two.
func hexDigest(h [sha256.Size]byte) string {
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], h[:])
	return string(hx[:])
}
