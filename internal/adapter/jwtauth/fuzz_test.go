package jwtauth_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/agentry/agentry/internal/adapter/jwtauth"
	"github.com/agentry/agentry/internal/adapter/jwtauth/jwttest"
	"github.com/agentry/agentry/internal/core/amtp"
)

// FuzzVerify feeds arbitrary strings to Verify and LooksLikeJWT. Neither
// may panic; Verify may only accept what LooksLikeJWT routes to it, and may
// only fail with a token error (the issuer is up, so never
// ErrKeysUnavailable).
func FuzzVerify(f *testing.F) {
	iss := jwttest.NewIssuer(f, jwtauth.ES256)
	v, err := jwtauth.New(jwtauth.Config{
		Issuer: iss.URL(), Audience: audience, JWKSURL: iss.JWKSURL(), Client: iss.Client(),
	})
	if err != nil {
		f.Fatal(err)
	}
	good := iss.Mint(claims(map[string]any{"scope": "a b"}))
	parts := strings.Split(good, ".")
	for _, seed := range []string{
		good,
		iss.Mint(claims(map[string]any{"scp": []string{"x"}, "aud": []any{audience, 1}})),
		iss.MintWith(map[string]any{"alg": "none"}, claims(nil)),
		iss.MintWith(map[string]any{"alg": "ES256", "kid": "unknown"}, claims(nil)),
		iss.MintWith(map[string]any{"alg": "ES256"}, claims(map[string]any{"exp": 1e300})),
		parts[0] + "." + parts[1] + ".",
		parts[0] + "." + parts[1],
		parts[1] + "." + parts[0] + "." + parts[2],
		"eyJhbGciOiJIUzI1NiJ9.e30.",
		"",
		"..",
		"a.b.c",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		looks := jwtauth.LooksLikeJWT(token)
		c, err := v.Verify(context.Background(), token)
		if err == nil {
			if !looks {
				t.Fatalf("verified a token LooksLikeJWT refuses")
			}
			if c.Issuer != iss.URL() || !slices.Contains(c.Audience, audience) || c.Expiry.IsZero() {
				t.Fatalf("verified token with odd claims: %+v", c)
			}
			return
		}
		if !amtp.IsCode(err, amtp.CodeAuthenticationRequired) {
			t.Fatalf("not a token error: %v", err)
		}
	})
}
