package jwtauth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/jwtauth"
	"github.com/agentry/agentry/internal/adapter/jwtauth/jwttest"
	"github.com/agentry/agentry/internal/adapter/netguard"
	"github.com/agentry/agentry/internal/core/amtp"
)

const audience = "https://gw.example.com/amtp"

// clock is a settable Config.Now. It starts at the real time because
// jwttest.Mint stamps iat and exp from the real clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newVerifier(t *testing.T, iss *jwttest.Issuer, clk *clock, mods ...func(*jwtauth.Config)) *jwtauth.Verifier {
	t.Helper()
	cfg := jwtauth.Config{
		Issuer:   iss.URL(),
		Audience: audience,
		JWKSURL:  iss.JWKSURL(),
		Client:   iss.Client(),
		Now:      clk.Now,
	}
	for _, m := range mods {
		m(&cfg)
	}
	v, err := jwtauth.New(cfg)
	require.NoError(t, err)
	return v
}

// claims is a valid claim set for audience plus extra (nil values delete).
func claims(extra map[string]any) map[string]any {
	c := map[string]any{"sub": "agent@example.com", "aud": audience}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// handMade builds a token with any header and signature, for the attacks
// jwttest will not sign.
func handMade(t *testing.T, header, claims map[string]any, sign func(input string) []byte) string {
	t.Helper()
	seg := func(v any) string {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := seg(header) + "." + seg(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign(input))
}

func requireRejected(t *testing.T, err error, wantMsg string) {
	t.Helper()
	require.Error(t, err)
	e, ok := amtp.AsError(err)
	require.True(t, ok, "want an *amtp.Error, got %v", err)
	assert.Equal(t, amtp.CodeAuthenticationRequired, e.Code)
	assert.Contains(t, e.Message, wantMsg)
	assert.NotErrorIs(t, err, jwtauth.ErrKeysUnavailable)
}

func requireUnavailable(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, jwtauth.ErrKeysUnavailable)
	_, isAMTP := amtp.AsError(err)
	assert.False(t, isAMTP, "a fetch failure must not look like a bad token: %v", err)
}

func TestVerifyValidTokenForEachAlgorithm(t *testing.T) {
	for _, alg := range []string{jwtauth.RS256, jwtauth.ES256, jwtauth.EdDSA} {
		t.Run(alg, func(t *testing.T) {
			iss := jwttest.NewIssuer(t, alg)
			clk := newClock()
			v := newVerifier(t, iss, clk)
			exp := clk.Now().Add(5 * time.Minute).Truncate(time.Second)
			tok := iss.Mint(claims(map[string]any{"exp": exp.Unix(), "tenant": "acme"}))
			require.True(t, jwtauth.LooksLikeJWT(tok))

			c, err := v.Verify(context.Background(), tok)
			require.NoError(t, err)
			assert.Equal(t, "agent@example.com", c.Subject)
			assert.Equal(t, iss.URL(), c.Issuer)
			assert.Equal(t, []string{audience}, c.Audience)
			assert.True(t, exp.Equal(c.Expiry), "expiry %v, want %v", c.Expiry, exp)
			assert.Equal(t, "acme", c.String("tenant"))
			assert.Equal(t, "", c.String("exp"), "a number is not a string claim")
			assert.Equal(t, "", c.String("missing"))
			assert.Equal(t, 1, iss.Fetches())
		})
	}
}

func TestVerifyWithinLeeway(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.ES256)
	clk := newClock()
	v := newVerifier(t, iss, clk)
	now := clk.Now()
	for name, extra := range map[string]map[string]any{
		"expired 30s ago":       {"exp": now.Add(-30 * time.Second).Unix()},
		"valid in 30s":          {"nbf": now.Add(30 * time.Second).Unix()},
		"issued 30s in future":  {"iat": now.Add(30 * time.Second).Unix()},
		"fractional dates":      {"exp": float64(now.Add(time.Hour).Unix()) + 0.5, "iat": float64(now.Unix()) - 0.25},
		"aud array with ours":   {"aud": []string{"https://other.example", audience}},
		"unknown claim ignored": {"jti": "abc"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), iss.Mint(claims(extra)))
			require.NoError(t, err)
		})
	}
	t.Run("custom leeway", func(t *testing.T) {
		strict := newVerifier(t, iss, clk, func(c *jwtauth.Config) { c.Leeway = time.Second })
		_, err := strict.Verify(context.Background(), iss.Mint(claims(map[string]any{"exp": now.Add(-30 * time.Second).Unix()})))
		requireRejected(t, err, "expired")
	})
}

func TestVerifyAudienceArray(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.EdDSA)
	v := newVerifier(t, iss, newClock())
	c, err := v.Verify(context.Background(), iss.Mint(claims(map[string]any{"aud": []string{"https://a.example", audience}})))
	require.NoError(t, err)
	assert.Equal(t, []string{"https://a.example", audience}, c.Audience)
}

func TestVerifyRejectsBadTokens(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.RS256)
	ecKid := iss.AddKey(jwtauth.ES256)
	otherRSAKid := iss.AddKey(jwtauth.RS256)
	clk := newClock()
	v := newVerifier(t, iss, clk)
	now := clk.Now()
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	hdr := func(extra map[string]any) map[string]any {
		h := map[string]any{"alg": iss.Alg(), "kid": iss.Kid()}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	valid := iss.Mint(claims(nil))
	parts := strings.Split(valid, ".")
	full := func(extra map[string]any) map[string]any {
		c := claims(map[string]any{"iss": iss.URL(), "exp": at(time.Hour)})
		for k, v := range extra {
			c[k] = v
		}
		return c
	}

	pubDER, err := x509.MarshalPKIXPublicKey(iss.PublicKey())
	require.NoError(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs256 := func(secret []byte) func(string) []byte {
		return func(input string) []byte {
			m := hmac.New(sha256.New, secret)
			m.Write([]byte(input))
			return m.Sum(nil)
		}
	}
	none := func(string) []byte { return nil }

	for _, tc := range []struct {
		name  string
		token string
		want  string
	}{
		{"expired", iss.Mint(claims(map[string]any{"exp": at(-2 * time.Minute)})), "expired"},
		{"no exp", iss.Mint(claims(map[string]any{"exp": nil})), "no expiry"},
		{"exp not a number", iss.Mint(claims(map[string]any{"exp": "tomorrow"})), `"exp" is not a valid date`},
		{"exp absurdly far", iss.Mint(claims(map[string]any{"exp": 1e15})), `"exp" is not a valid date`},
		{"not yet valid", iss.Mint(claims(map[string]any{"nbf": at(2 * time.Minute)})), "not valid yet"},
		{"issued in the future", iss.Mint(claims(map[string]any{"iat": at(2 * time.Minute)})), "issued in the future"},
		{"wrong issuer", iss.Mint(claims(map[string]any{"iss": "https://evil.example"})), "issuer"},
		{"issuer with trailing slash", iss.Mint(claims(map[string]any{"iss": iss.URL() + "/"})), "issuer"},
		{"no issuer", iss.Mint(claims(map[string]any{"iss": nil})), "issuer"},
		{"wrong audience", iss.Mint(claims(map[string]any{"aud": "https://other.example"})), "audience"},
		{"audience array without ours", iss.Mint(claims(map[string]any{"aud": []string{"a", "b"}})), "audience"},
		{"no audience", iss.Mint(claims(map[string]any{"aud": nil})), "audience"},
		{"audience not strings", iss.Mint(claims(map[string]any{"aud": []any{audience, 7}})), `"aud" has a member`},
		{"subject not a string", iss.Mint(claims(map[string]any{"sub": 42})), `"sub" is not a string`},
		{"scope not a string", iss.Mint(claims(map[string]any{"scope": []string{"a"}})), `"scope" is not a string`},
		{"alg none, no signature", handMade(t, hdr(map[string]any{"alg": "none"}), full(nil), none), `algorithm "none"`},
		{"alg none, with signature", iss.MintWith(hdr(map[string]any{"alg": "none"}), claims(nil)), `algorithm "none"`},
		{"alg missing", iss.MintWith(map[string]any{"kid": iss.Kid()}, claims(nil)), `algorithm ""`},
		{"alg lower case", iss.MintWith(hdr(map[string]any{"alg": "rs256"}), claims(nil)), `algorithm "rs256"`},
		{"alg not a string", iss.MintWith(hdr(map[string]any{"alg": 256}), claims(nil)), `header "alg" is not a string`},
		{"HS256 keyed with the public key", handMade(t, hdr(map[string]any{"alg": "HS256"}), full(nil), hs256(pubPEM)), `algorithm "HS256"`},
		{"HS256 keyed with the public key DER", handMade(t, hdr(map[string]any{"alg": "HS256"}), full(nil), hs256(pubDER)), `algorithm "HS256"`},
		{"PS256", iss.MintWith(hdr(map[string]any{"alg": "PS256"}), claims(nil)), `algorithm "PS256"`},
		{"RS256 header with the EC key's kid", iss.MintWith(hdr(map[string]any{"kid": ecKid}), claims(nil)), "key type is EC"},
		{"ES256 header with the RSA key's kid", handMade(t, hdr(map[string]any{"alg": "ES256"}), full(nil), func(string) []byte { return make([]byte, 64) }), "key type is RSA"},
		{"another key's kid", iss.MintWith(hdr(map[string]any{"kid": otherRSAKid}), claims(nil)), "signature does not verify"},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(
			fmt.Sprintf(`{"sub":"admin","aud":%q,"iss":%q,"exp":%d}`, audience, iss.URL(), at(time.Hour)))) + "." + parts[2],
			"signature does not verify"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), "signature does not verify"},
		{"signature truncated", parts[0] + "." + parts[1] + "." + parts[2][:100], "wrong length"},
		{"signature missing", parts[0] + "." + parts[1] + ".", "wrong length"},
		{"signature padded", valid + "=", "not a JWT"},
		{"critical extension", iss.MintWith(hdr(map[string]any{"crit": []string{"exp"}, "exp": 1}), claims(nil)), "critical"},
		{"oversized", iss.Mint(claims(map[string]any{"pad": strings.Repeat("x", jwtauth.MaxTokenBytes)})), "larger than 8192 bytes"},
		{"empty", "", "not a JWT"},
		{"two segments", parts[0] + "." + parts[1], "not a JWT"},
		{"four segments", valid + ".x", "not a JWT"},
		{"line break", parts[0] + ".\n" + parts[1] + "." + parts[2], "not a JWT"},
		{"header not JSON", "bm90IGpzb24." + parts[1] + "." + parts[2], "header is malformed"},
		{"header is an array", base64.RawURLEncoding.EncodeToString([]byte(`["alg"]`)) + "." + parts[1] + "." + parts[2], "header is malformed"},
		{"header is null", base64.RawURLEncoding.EncodeToString([]byte(`null`)) + "." + parts[1] + "." + parts[2], "header is malformed"},
		{"payload not JSON", parts[0] + ".bm90IGpzb24." + parts[2], "payload is not a JSON object"},
		{"payload null", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`null`)) + "." + parts[2], "payload is not a JSON object"},
		{"unknown kid", iss.MintWith(hdr(map[string]any{"kid": "nobody"}), claims(nil)), `key "nobody" is not one of the issuer's`},
		{"kid not a string", iss.MintWith(hdr(map[string]any{"kid": 7}), claims(nil)), `header "kid" is not a string`},
		{"payload not base64url", parts[0] + ".A." + parts[2], "payload is not base64url"},
		{"signature not base64url", parts[0] + "." + parts[1] + ".A", "signature is not base64url"},
		{"issuer not a string", iss.Mint(claims(map[string]any{"iss": 7})), `"iss" is not a string`},
		{"issuer quoted only in part", iss.Mint(claims(map[string]any{"iss": "https://" + strings.Repeat("x", 100)})),
			`issuer "https://` + strings.Repeat("x", 56) + `..." is not trusted`},
		{"audience null", handMade(t, hdr(nil), full(map[string]any{"aud": nil}), none), `"aud" is neither a string nor an array`},
		{"audience a number", iss.Mint(claims(map[string]any{"aud": 7})), `"aud" is neither a string nor an array`},
		{"nbf not a date", iss.Mint(claims(map[string]any{"nbf": "soon"})), `"nbf" is not a valid date`},
		{"iat not a date", iss.Mint(claims(map[string]any{"iat": -1})), `"iat" is not a valid date`},
		{"scp not strings", iss.Mint(claims(map[string]any{"scp": map[string]any{"a": 1}})), `"scp" is neither a string nor an array`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.token)
			requireRejected(t, err, tc.want)
		})
	}
	// Nothing above may have caused a refetch: the only kid-triggered one
	// is spaced 30s from the initial fetch.
	assert.Equal(t, 1, iss.Fetches())
	_, err = v.Verify(context.Background(), valid)
	require.NoError(t, err, "the valid token the cases were cut from")
}

// flip changes one character in the middle of a base64url string.
func flip(s string) string {
	i := len(s) / 2
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestScopes(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.EdDSA)
	v := newVerifier(t, iss, newClock())
	for _, tc := range []struct {
		name  string
		extra map[string]any
		want  []string
	}{
		{"scope", map[string]any{"scope": "amtp:send  amtp:read"}, []string{"amtp:send", "amtp:read"}},
		{"scp array", map[string]any{"scp": []string{"amtp:send", "amtp:read"}}, []string{"amtp:send", "amtp:read"}},
		{"scp string", map[string]any{"scp": "amtp:send amtp:read"}, []string{"amtp:send", "amtp:read"}},
		{"scope wins over scp", map[string]any{"scope": "amtp:read", "scp": []string{"amtp:send"}}, []string{"amtp:read"}},
		{"none", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), iss.Mint(claims(tc.extra)))
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.Scopes)
			for _, s := range tc.want {
				assert.True(t, c.HasScope(s), s)
			}
			assert.False(t, c.HasScope("amtp:admin"))
			assert.False(t, c.HasScope(""))
		})
	}
}

func TestRotationRefetchesOnce(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.ES256)
	clk := newClock()
	v := newVerifier(t, iss, clk)
	ctx := context.Background()
	old := iss.Mint(claims(nil))
	_, err := v.Verify(ctx, old)
	require.NoError(t, err)
	require.Equal(t, 1, iss.Fetches())

	iss.Rotate()
	rotated := iss.Mint(claims(nil))
	clk.Add(31 * time.Second)
	_, err = v.Verify(ctx, rotated)
	require.NoError(t, err, "the new kid is found by a refetch")
	assert.Equal(t, 2, iss.Fetches())

	_, err = v.Verify(ctx, rotated)
	require.NoError(t, err)
	assert.Equal(t, 2, iss.Fetches(), "the new key is cached")

	_, err = v.Verify(ctx, old)
	requireRejected(t, err, "is not one of the issuer's")
	assert.Equal(t, 2, iss.Fetches(), "the dropped key's kid does not refetch within 30s")
}

func TestRotationWithin30sOfAFetchWaits(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.RS256)
	clk := newClock()
	v := newVerifier(t, iss, clk)
	ctx := context.Background()
	_, err := v.Verify(ctx, iss.Mint(claims(nil)))
	require.NoError(t, err)

	iss.Rotate()
	rotated := iss.Mint(claims(nil))
	clk.Add(29 * time.Second)
	_, err = v.Verify(ctx, rotated)
	requireRejected(t, err, "is not one of the issuer's")
	assert.Equal(t, 1, iss.Fetches())

	clk.Add(time.Second)
	_, err = v.Verify(ctx, rotated)
	require.NoError(t, err)
	assert.Equal(t, 2, iss.Fetches())
}

func TestUnknownKidFloodRefetchesAtMostOnce(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.EdDSA)
	clk := newClock()
	v := newVerifier(t, iss, clk)
	ctx := context.Background()
	_, err := v.Verify(ctx, iss.Mint(claims(nil)))
	require.NoError(t, err)
	clk.Add(31 * time.Second)

	flood := func() {
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for g := range 20 {
			wg.Go(func() {
				for i := range 10 {
					tok := iss.MintWith(map[string]any{"alg": "EdDSA", "kid": fmt.Sprintf("forged-%d-%d", g, i)}, claims(nil))
					_, err := v.Verify(ctx, tok)
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		require.Len(t, errs, 200)
		for err := range errs {
			requireRejected(t, err, "is not one of the issuer's")
		}
	}
	flood()
	assert.Equal(t, 2, iss.Fetches(), "200 unknown kids, one refetch")
	clk.Add(29 * time.Second)
	flood()
	assert.Equal(t, 2, iss.Fetches(), "still within 30s of the refetch")
	clk.Add(time.Second)
	flood()
	assert.Equal(t, 3, iss.Fetches(), "30s later, one more")
}

func TestTokenWithoutKid(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string // alg of a second published key, "" for none
		ok    bool
	}{
		{"one key", "", true},
		{"one key for the alg, one for another", jwtauth.ES256, true},
		{"two keys for the alg", jwtauth.RS256, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := jwttest.NewIssuer(t, jwtauth.RS256)
			if tc.extra != "" {
				iss.AddKey(tc.extra)
			}
			v := newVerifier(t, iss, newClock())
			_, err := v.Verify(context.Background(), iss.MintWith(map[string]any{"alg": "RS256"}, claims(nil)))
			if tc.ok {
				require.NoError(t, err)
			} else {
				requireRejected(t, err, "has no kid and the issuer has 2 keys for RS256")
			}
			assert.Equal(t, 1, iss.Fetches(), "a missing kid does not refetch")
		})
	}
}

func TestBadKeySetIsUnavailable(t *testing.T) {
	manyKeys := `{"keys":[` + strings.TrimSuffix(strings.Repeat(`{"kty":"oct","k":"c2VjcmV0"},`, 101), ",") + `]}`
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want string
	}{
		{"larger than 64 KiB", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", 64<<10) + `"}`))
		}, "larger than 65536 bytes"},
		{"more than 100 keys", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(manyKeys)) }, "101 keys"},
		{"server error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }, "status 500"},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/jwks2.json", http.StatusFound)
		}, "status 302"},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) }, "not a JWK Set"},
		{"no keys member", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{}`)) }, "no keys member"},
		{"key not an object", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"keys":[1]}`)) }, "not a JSON object"},
		{"cut short", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = w.Write([]byte(`{"keys":[`))
		}, "reading"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := jwttest.NewIssuer(t, jwtauth.ES256)
			iss.SetJWKSHandler(tc.h)
			v := newVerifier(t, iss, newClock())
			_, err := v.Verify(context.Background(), iss.Mint(claims(nil)))
			requireUnavailable(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestIssuerDown(t *testing.T) {
	down := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })

	t.Run("nothing cached", func(t *testing.T) {
		iss := jwttest.NewIssuer(t, jwtauth.RS256)
		iss.SetJWKSHandler(down)
		clk := newClock()
		v := newVerifier(t, iss, clk)
		tok := iss.Mint(claims(nil))
		_, err := v.Verify(context.Background(), tok)
		requireUnavailable(t, err)
		assert.Contains(t, err.Error(), "status 503")

		_, err = v.Verify(context.Background(), tok)
		requireUnavailable(t, err)
		assert.Equal(t, 1, iss.Fetches(), "a failed fetch is not retried at once")

		iss.SetJWKSHandler(nil)
		clk.Add(30 * time.Second)
		_, err = v.Verify(context.Background(), tok)
		require.NoError(t, err)
		assert.Equal(t, 2, iss.Fetches())
	})

	t.Run("stale keys after expiry", func(t *testing.T) {
		iss := jwttest.NewIssuer(t, jwtauth.ES256)
		clk := newClock()
		v := newVerifier(t, iss, clk)
		ctx := context.Background()
		verify := func() error {
			_, err := v.Verify(ctx, iss.Mint(claims(map[string]any{"exp": clk.Now().Add(time.Hour).Unix()})))
			return err
		}
		require.NoError(t, verify())
		iss.SetJWKSHandler(down)

		clk.Add(jwtauth.DefaultCacheTTL)
		require.NoError(t, verify(), "expired cache, issuer down: stale keys")
		assert.Equal(t, 2, iss.Fetches())

		clk.Add(10 * time.Second)
		require.NoError(t, verify())
		assert.Equal(t, 2, iss.Fetches(), "no retry within 30s of the failure")

		clk.Add(20 * time.Second)
		require.NoError(t, verify())
		assert.Equal(t, 3, iss.Fetches(), "retried after 30s")

		clk.Add(jwtauth.DefaultCacheTTL - 30*time.Second)
		err := verify()
		requireUnavailable(t, err)
		assert.Equal(t, 4, iss.Fetches())
		assert.Contains(t, err.Error(), "status 503")

		iss.SetJWKSHandler(nil)
		clk.Add(30 * time.Second)
		require.NoError(t, verify(), "the issuer is back")
		assert.Equal(t, 5, iss.Fetches())
	})
}

func TestCacheExpiryRefetches(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.EdDSA)
	clk := newClock()
	v := newVerifier(t, iss, clk, func(c *jwtauth.Config) { c.CacheTTL = 5 * time.Second })
	tok := iss.Mint(claims(nil))
	for i := range 3 {
		_, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		assert.Equal(t, i+1, iss.Fetches(), "a TTL under 30s is honoured")
		_, err = v.Verify(context.Background(), tok)
		require.NoError(t, err)
		assert.Equal(t, i+1, iss.Fetches())
		clk.Add(5 * time.Second)
	}
}

func TestDiscovery(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.ES256)
	clk := newClock()
	v := newVerifier(t, iss, clk, func(c *jwtauth.Config) { c.JWKSURL = "" })
	tok := iss.Mint(claims(nil))
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, 1, iss.Discoveries())
	assert.Equal(t, 1, iss.Fetches())

	clk.Add(jwtauth.DefaultCacheTTL)
	_, err = v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, 2, iss.Fetches())
	assert.Equal(t, 1, iss.Discoveries(), "jwks_uri is discovered once")
}

func TestDiscoveryNamingAnotherIssuerIsRefused(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.ES256)
	// The document says iss.URL(); we are configured with a different
	// spelling of it.
	other := iss.URL() + "/"
	v := newVerifier(t, iss, newClock(), func(c *jwtauth.Config) { c.JWKSURL = ""; c.Issuer = other })
	_, err := v.Verify(context.Background(), iss.Mint(claims(map[string]any{"iss": other})))
	requireUnavailable(t, err)
	assert.Contains(t, err.Error(), "names issuer")
	assert.Equal(t, 0, iss.Fetches())
}

func TestNetguardClient(t *testing.T) {
	t.Run("insecure mode reaches a loopback issuer", func(t *testing.T) {
		iss := jwttest.NewHTTPIssuer(t, jwtauth.EdDSA)
		v := newVerifier(t, iss, newClock(), func(c *jwtauth.Config) {
			c.Client = netguard.NewClient(netguard.Options{AllowInsecure: true})
			c.JWKSURL = ""
		})
		_, err := v.Verify(context.Background(), iss.Mint(claims(nil)))
		require.NoError(t, err)
	})
	t.Run("production mode refuses a loopback JWKS", func(t *testing.T) {
		iss := jwttest.NewIssuer(t, jwtauth.EdDSA)
		v := newVerifier(t, iss, newClock(), func(c *jwtauth.Config) {
			c.Client = netguard.NewClient(netguard.Options{})
		})
		_, err := v.Verify(context.Background(), iss.Mint(claims(nil)))
		requireUnavailable(t, err)
		assert.True(t, netguard.Blocked(err), "%v", err)
		assert.Contains(t, err.Error(), "not public")
		assert.Equal(t, 0, iss.Fetches())
	})
}

func TestCallerGivesUpButTheFetchCarriesOn(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.RS256)
	release, entered := make(chan struct{}), make(chan struct{})
	iss.SetJWKSHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.WriteHeader(http.StatusTeapot)
	}))
	v := newVerifier(t, iss, newClock())
	tok := iss.Mint(claims(nil))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, tok)
	requireUnavailable(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	// The shared fetch is still running; let the real key set answer it.
	// Waiting for it to reach the issuer first keeps a slow start (TLS
	// under the race detector can take longer than the caller's 50ms) from
	// sending it to the real key set instead.
	<-entered
	iss.SetJWKSHandler(nil)
	close(release)
	_, err = v.Verify(context.Background(), tok)
	requireUnavailable(t, err) // the running fetch got 418, and is not retried within 30s
	assert.Contains(t, err.Error(), "status 418")
	assert.Equal(t, 1, iss.Fetches(), "waiting callers share the one fetch")
}

func TestConcurrentVerifyWhileCacheExpires(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.ES256)
	clk := newClock()
	v := newVerifier(t, iss, clk, func(c *jwtauth.Config) { c.CacheTTL = time.Minute })
	tok := iss.Mint(claims(nil))

	// Verify once so the goroutines start from a warm cache, then let
	// them run while the clock crosses several expiries.
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	var (
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		mu       sync.Mutex
		failures []error
		verified int
	)
	for range 50 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := v.Verify(context.Background(), tok)
				mu.Lock()
				verified++
				if err != nil {
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		})
	}
	// 20s steps: a fetch that lags a step or two behind the clock still
	// leaves the previous keys usable (stale by less than CacheTTL). The
	// clock moves on only once a Verify that began after its last step
	// has finished (with 50 callers, at most 50 of the next completions
	// began before it), never after a fixed pause: on a busy machine a
	// fetch could otherwise fall several steps behind, and the keys it
	// brings be stale on arrival.
	progressed := func() {
		mu.Lock()
		want := verified + 51
		mu.Unlock()
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return verified >= want
		}, 30*time.Second, time.Millisecond, "Verify calls stopped finishing")
	}
	for range 10 {
		progressed()
		clk.Add(20 * time.Second)
	}
	progressed()
	close(stop)
	wg.Wait()
	require.Empty(t, failures)
	assert.Greater(t, verified, 50)
	// 200s of clock with a 60s TTL: the initial fetch plus at most one per
	// expiry, however many callers saw it expire.
	assert.GreaterOrEqual(t, iss.Fetches(), 2)
	assert.LessOrEqual(t, iss.Fetches(), 5)
}

func TestNew(t *testing.T) {
	client := http.DefaultClient
	for _, tc := range []struct {
		name string
		cfg  jwtauth.Config
		want string
	}{
		{"ok", jwtauth.Config{Issuer: "https://id.example.com", Audience: "a", Client: client}, ""},
		{"no issuer", jwtauth.Config{Audience: "a", Client: client}, "issuer"},
		{"relative issuer", jwtauth.Config{Issuer: "id.example.com", Audience: "a", Client: client}, "issuer"},
		{"issuer not http", jwtauth.Config{Issuer: "ftp://id.example.com", Audience: "a", Client: client}, "issuer"},
		{"no audience", jwtauth.Config{Issuer: "https://id.example.com", Client: client}, "audience"},
		{"no client", jwtauth.Config{Issuer: "https://id.example.com", Audience: "a"}, "client"},
		{"relative JWKS URL", jwtauth.Config{Issuer: "https://id.example.com", Audience: "a", Client: client, JWKSURL: "/jwks"}, "JWKS URL"},
		{"JWKS URL that does not parse", jwtauth.Config{Issuer: "https://id.example.com", Audience: "a", Client: client, JWKSURL: "https://[::1"}, "JWKS URL"},
		{"negative TTL", jwtauth.Config{Issuer: "https://id.example.com", Audience: "a", Client: client, CacheTTL: -1}, "negative"},
		{"negative leeway", jwtauth.Config{Issuer: "https://id.example.com", Audience: "a", Client: client, Leeway: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := jwtauth.New(tc.cfg)
			if tc.want == "" {
				require.NoError(t, err)
				require.NotNil(t, v)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestLooksLikeJWT(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.EdDSA)
	tok := iss.Mint(claims(nil))
	parts := strings.Split(tok, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct {
		name  string
		token string
		want  bool
	}{
		{"minted", tok, true},
		{"unsecured", b64([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", true},
		{"API key", "agk_3f9a0c1d2e4b5a6978c0d1e2f3a4b5c6", false},
		{"hex", "3f9a0c1d2e4b5a6978c0d1e2f3a4b5c6", false},
		{"empty", "", false},
		{"dots only", "..", false},
		{"two segments", parts[0] + "." + parts[1], false},
		{"four segments", tok + ".x", false},
		{"header without alg", b64([]byte(`{"typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], false},
		{"header not an object", b64([]byte(`"alg"`)) + "." + parts[1] + "." + parts[2], false},
		{"header padded", b64([]byte(`{"alg":"x"}`)) + "==." + parts[1] + "." + parts[2], false},
		{"space inside", parts[0] + ". " + parts[1] + "." + parts[2], false},
		{"dotted words", "abc.def.ghi", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, jwtauth.LooksLikeJWT(tc.token))
		})
	}
}

func TestErrorsDoNotQuoteTheToken(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.RS256)
	v := newVerifier(t, iss, newClock())
	tok := iss.Mint(claims(map[string]any{"aud": "https://elsewhere.example"}))
	_, err := v.Verify(context.Background(), tok)
	require.Error(t, err)
	for _, part := range strings.Split(tok, ".") {
		assert.NotContains(t, err.Error(), part)
	}
	assert.False(t, errors.Is(err, jwtauth.ErrKeysUnavailable))
}

// TestDiscoveryFailures: an issuer whose OpenID configuration cannot be
// read or names no usable jwks_uri leaves the verifier without keys (the
// token cannot be checked, which is not the token's fault).
func TestDiscoveryFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  func(issuer string) (status int, body string)
		want string
	}{
		{"no configuration", func(string) (int, string) { return http.StatusNotFound, "" }, "status 404"},
		{"not JSON", func(string) (int, string) { return http.StatusOK, "<html>" }, "discovery document"},
		{"no jwks_uri", func(iss string) (int, string) { return http.StatusOK, fmt.Sprintf(`{"issuer":%q}`, iss) }, "jwks_uri: is empty"},
		{"relative jwks_uri", func(iss string) (int, string) {
			return http.StatusOK, fmt.Sprintf(`{"issuer":%q,"jwks_uri":"/jwks.json"}`, iss)
		}, "jwks_uri"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				assert.Equal(t, "/.well-known/openid-configuration", r.URL.Path, "nothing but discovery is fetched")
				status, body := tc.doc(srv.URL)
				w.WriteHeader(status)
				_, _ = w.Write([]byte(body))
			}))
			t.Cleanup(srv.Close)
			v, err := jwtauth.New(jwtauth.Config{Issuer: srv.URL, Audience: audience, Client: srv.Client()})
			require.NoError(t, err)
			tok := handMade(t, map[string]any{"alg": "ES256", "kid": "k1"},
				map[string]any{"iss": srv.URL, "aud": audience, "exp": time.Now().Add(time.Hour).Unix()},
				func(string) []byte { return make([]byte, 64) })
			_, err = v.Verify(context.Background(), tok)
			requireUnavailable(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestRefetchForAnUnknownKidGivesUp: a caller whose token names a kid the
// cache lacks waits for the refetch only as long as its context lets it.
func TestRefetchForAnUnknownKidGivesUp(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwtauth.ES256)
	clk := newClock()
	v := newVerifier(t, iss, clk)
	_, err := v.Verify(context.Background(), iss.Mint(claims(nil)))
	require.NoError(t, err)

	release := make(chan struct{})
	iss.SetJWKSHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(func() { close(release) })
	clk.Add(30 * time.Second) // a refetch is allowed again
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = v.Verify(ctx, iss.MintWith(map[string]any{"alg": iss.Alg(), "kid": "rotated-in"}, claims(nil)))
	requireUnavailable(t, err)
	assert.ErrorIs(t, err, context.Canceled)
}
