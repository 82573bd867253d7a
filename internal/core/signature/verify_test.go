package signature_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/signature"
)

// baseMessage is compact so that tampering can be done by plain string
// replacement and Sign appends the signature right before the final brace.
const baseMessage = `{"version":"1.0","message_id":"01H8X9Z2K3M4N5P6Q7R8S9T0VW",` +
	`"idempotency_key":"7c9e6679-7425-40de-944b-e07fc1f90ae7","timestamp":"2025-08-14T10:30:00.000Z",` +
	`"sender":"agent@example.com","recipients":["a@partner.example","b@partner.example"],` +
	`"headers":{"priority":"normal"},"payload":{"qty":5,"note":"hi"}}`

var baseTime = time.Date(2025, 8, 14, 10, 30, 0, 0, time.UTC)

func sign(t testing.TB, alg signature.Algorithm, raw string) string {
	t.Helper()
	out, err := vectorSigner(t, alg).Sign([]byte(raw))
	require.NoError(t, err)
	return string(out)
}

// signatureMember returns the raw JSON of the signature member of signed.
func signatureMember(t testing.TB, signed string) string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(signed), &m))
	require.Contains(t, m, "signature")
	return string(m["signature"])
}

// signatureValueOf returns signature.value of signed.
func signatureValueOf(t testing.TB, signed string) string {
	t.Helper()
	var s struct{ Value string }
	require.NoError(t, json.Unmarshal([]byte(signatureMember(t, signed)), &s))
	return s.Value
}

// withSignature is baseMessage carrying member as its signature.
func withSignature(member string) string {
	return baseMessage[:len(baseMessage)-1] + `,"signature":` + member + `}`
}

func sigJSON(alg, keyID, value string) string {
	b, _ := json.Marshal(map[string]string{"algorithm": alg, "keyid": keyID, "value": value})
	return string(b)
}

func verify(t testing.TB, v *signature.Verifier, raw string) (signature.Verified, error) {
	t.Helper()
	return v.Verify(context.Background(), []byte(raw))
}

func TestSignVerifyRoundTrip(t *testing.T) {
	// req are the members a signed delivery must carry.
	const req = `"version":"1.0","message_id":"01H8X9Z2K3M4N5P6Q7R8S9T0VW","idempotency_key":"k","timestamp":"2025-08-14T10:30:00Z",`
	inputs := map[string]string{
		"compact":                  baseMessage,
		"pretty":                   indent(t, baseMessage),
		"signature first":          `{"signature":{"algorithm":"ES256","keyid":"old","value":"AA"},` + req + `"sender":"a@example.com","payload":1}`,
		"signature middle":         "{" + req + "\"sender\":\"a@example.com\" ,\n \"signature\" : null , \"payload\":1}",
		"signature last":           `{` + req + `"sender":"a@example.com","payload":1,"signature":"garbage"}`,
		"signature first, empty":   `{"signature":{},` + req + `"sender":"a@example.com"}`,
		"escaped signature name":   `{` + req + `"sender":"a@example.com","sign\u0061ture":{"algorithm":"RS256","value":"AA"}}`,
		"surrounding space":        " \n\t{ " + req + " \"sender\" : \"a@example.com\" } \n",
		"upper-case sender domain": `{` + req + `"sender":"agent@EXAMPLE.Com"}`,
	}
	v := vectorVerifier(t)
	for _, alg := range algorithms {
		for name, raw := range inputs {
			t.Run(string(alg)+"/"+name, func(t *testing.T) {
				signed := sign(t, alg, raw)
				got, err := verify(t, v, signed)
				require.NoError(t, err)
				assert.Equal(t, alg, got.Algorithm)
				assert.Equal(t, selectorFor(alg), got.Selector)
				assert.Equal(t, testDomain, got.Domain)
				assert.Contains(t, signed, `"keyid":"`+selectorFor(alg)+`"`, "the keyid is the selector alone")

				before, err := signature.CanonicalInput([]byte(raw))
				require.NoError(t, err)
				after, err := signature.CanonicalInput([]byte(signed))
				require.NoError(t, err)
				assert.Equal(t, string(before), string(after))

				// Re-signing replaces the signature instead of adding one.
				again := sign(t, alg, signed)
				_, err = verify(t, v, again)
				require.NoError(t, err)
				assert.Equal(t, 1, strings.Count(again, `"algorithm"`))
			})
		}
	}
}

func TestSignKeepsOtherBytes(t *testing.T) {
	const req = `"version":"1.0","message_id":"m","idempotency_key":"k","timestamp":"2025-08-14T10:30:00Z",`
	raw := "{" + req + "\n  \"sender\": \"agent@example.com\",\n  \"payload\": {\"n\": 1.50, \"s\": \"\\u00e9\"}\n}\n"
	signed := sign(t, signature.ES256, raw)
	member := signatureMember(t, signed)
	assert.Equal(t, strings.Replace(raw, "}\n}", "},\"signature\":"+member+"\n}", 1), signed)

	// An existing member keeps its place and name spelling; only the value changes.
	raw = `{ "sign\u0061ture" : {"algorithm":"ES256","keyid":"old","value":"AA"} , ` + req + `"sender":"agent@example.com"}`
	signed = sign(t, signature.ES256, raw)
	member = signatureMember(t, signed)
	assert.Equal(t, `{ "sign\u0061ture" : `+member+` , `+req+`"sender":"agent@example.com"}`, signed)

	raw = `{}`
	_, err := vectorSigner(t, signature.ES256).Sign([]byte(raw))
	assert.ErrorIs(t, err, signature.ErrMalformed, "no sender")
}

// TestSignPlacesMember: the member goes where the canonicaliser located
// the old one, or after the last member; names and braces inside strings
// or nested objects do not mislead it. SIG stands for the new member.
func TestSignPlacesMember(t *testing.T) {
	const req = `"version":"1.0","message_id":"m","idempotency_key":"k","timestamp":"2025-08-14T10:30:00Z"`
	const sender = `"sender":"agent@example.com"`
	for _, tc := range []struct{ name, raw, want string }{
		{"appended", `{` + req + `,` + sender + `}`, `{` + req + `,` + sender + `,"signature":SIG}`},
		{"appended before spacing", "{ " + req + " , " + sender + " \n\t}  ", "{ " + req + " , " + sender + ",\"signature\":SIG \n\t}  "},
		{"value ends in a brace", `{` + req + `,` + sender + `,"p":{"q":"}"}}`, `{` + req + `,` + sender + `,"p":{"q":"}"},"signature":SIG}`},
		{"first replaced", `{"signature":null,` + req + `,` + sender + `}`, `{"signature":SIG,` + req + `,` + sender + `}`},
		{"middle replaced", `{` + req + `, "signature" : [ "}" ] ,` + sender + `}`, `{` + req + `, "signature" : SIG ,` + sender + `}`},
		{"last replaced", `{` + req + `,` + sender + `,"signature":"x"}`, `{` + req + `,` + sender + `,"signature":SIG}`},
		{"escaped name replaced", `{` + req + `,"sign\u0061ture":{},` + sender + `}`, `{` + req + `,"sign\u0061ture":SIG,` + sender + `}`},
		{"nested and quoted names ignored", `{` + req + `,"p":{"signature":1},"q":"\"signature\":2",` + sender + `}`, `{` + req + `,"p":{"signature":1},"q":"\"signature\":2",` + sender + `,"signature":SIG}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signed := sign(t, signature.ES256, tc.raw)
			assert.Equal(t, strings.Replace(tc.want, "SIG", signatureMember(t, signed), 1), signed)
		})
	}
}

func TestTampering(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		ok       bool // JCS absorbs the change
	}{
		{name: "payload value", old: `"qty":5`, new: `"qty":6`},
		{name: "payload member added", old: `"qty":5`, new: `"qty":5,"extra":true`},
		{name: "payload string", old: `"note":"hi"`, new: `"note":"hi "`},
		{name: "recipient added", old: `"b@partner.example"]`, new: `"b@partner.example","c@partner.example"]`},
		{name: "recipient removed", old: `"a@partner.example",`, new: ``},
		{name: "recipients reordered", old: `["a@partner.example","b@partner.example"]`, new: `["b@partner.example","a@partner.example"]`},
		{name: "recipient duplicated", old: `"b@partner.example"]`, new: `"b@partner.example","b@partner.example"]`},
		{name: "recipient domain case", old: `"a@partner.example"`, new: `"a@Partner.example"`},
		{name: "header changed", old: `"priority":"normal"`, new: `"priority":"high"`},
		{name: "header added", old: `"priority":"normal"`, new: `"priority":"normal","x-a":"b"`},
		{name: "headers removed", old: `"headers":{"priority":"normal"},`, new: ``},
		{name: "sender local part", old: `"sender":"agent@example.com"`, new: `"sender":"boss@example.com"`},
		{name: "sender domain case", old: `"sender":"agent@example.com"`, new: `"sender":"agent@EXAMPLE.com"`},
		{name: "message id", old: `T0VW"`, new: `T0VX"`},
		{name: "timestamp without millis", old: `10:30:00.000Z`, new: `10:30:00Z`},
		{name: "timestamp with offset", old: `10:30:00.000Z`, new: `10:30:00.000+00:00`},
		{name: "timestamp other zone", old: `10:30:00.000Z`, new: `12:30:00.000+02:00`},
		{name: "empty subject added", old: `"version":"1.0",`, new: `"version":"1.0","subject":"",`},
		{name: "extension added", old: `"version":"1.0",`, new: `"version":"1.0","x-new":1,`},
		{name: "version", old: `"version":"1.0"`, new: `"version":"1.1"`},
		{name: "idempotency key", old: `e07fc1f90ae7"`, new: `e07fc1f90ae8"`},

		{name: "whitespace", old: `,"payload":{"qty":5,`, new: " ,\n\t\"payload\" : { \"qty\" : 5 ,\r\n ", ok: true},
		{name: "nested member order", old: `{"qty":5,"note":"hi"}`, new: `{"note":"hi","qty":5}`, ok: true},
		{name: "string escapes", old: `"note":"hi"`, new: `"note":"\u0068\u0069"`, ok: true},
		{name: "solidus escape", old: `"note":"hi"`, new: `"n\u006fte":"hi"`, ok: true},
		{name: "number spelling", old: `"qty":5`, new: `"qty":5.0e0`, ok: true},
		{name: "number exponent", old: `"qty":5`, new: `"qty":0.5E1`, ok: true},
	}
	v := vectorVerifier(t)
	for _, alg := range algorithms {
		signed := sign(t, alg, baseMessage)
		for _, tc := range tests {
			t.Run(string(alg)+"/"+tc.name, func(t *testing.T) {
				require.Equal(t, 1, strings.Count(signed, tc.old), "mutation must apply exactly once")
				tampered := strings.Replace(signed, tc.old, tc.new, 1)
				_, err := verify(t, v, tampered)
				if tc.ok {
					assert.NoError(t, err)
				} else {
					assert.ErrorIs(t, err, signature.ErrBadSignature)
				}
			})
		}
		t.Run(string(alg)+"/members reordered and indented", func(t *testing.T) {
			_, err := verify(t, v, indent(t, reverseMembers(t, signed)))
			assert.NoError(t, err)
		})
	}
}

func TestVerifyErrors(t *testing.T) {
	esValue := signatureValueOf(t, sign(t, signature.ES256, baseMessage))
	rsValue := signatureValueOf(t, sign(t, signature.RS256, baseMessage))
	esKey := "es256"
	rawEs, err := base64.RawURLEncoding.DecodeString(esValue)
	require.NoError(t, err)
	valid := withSignature(sigJSON("ES256", esKey, esValue))
	without := func(member string) string {
		i := strings.Index(valid, `"`+member+`":`)
		j := i + strings.Index(valid[i:], `",`) + 2
		return valid[:i] + valid[j:]
	}

	tests := []struct {
		name    string
		raw     string
		want    error
		lookups int // how many key lookups the failure may cost
	}{
		{name: "valid", raw: valid, lookups: 1},
		{name: "no signature", raw: baseMessage, want: signature.ErrUnsigned},
		{name: "null signature", raw: withSignature(`null`), want: signature.ErrUnsigned},
		{name: "signature string", raw: withSignature(`"` + esValue + `"`), want: signature.ErrMalformed},
		{name: "signature array", raw: withSignature(`[]`), want: signature.ErrMalformed},
		{name: "signature empty object", raw: withSignature(`{}`), want: signature.ErrMalformed},
		{name: "no value", raw: withSignature(`{"algorithm":"ES256","keyid":"es256"}`), want: signature.ErrMalformed},
		{name: "empty value", raw: withSignature(sigJSON("ES256", esKey, "")), want: signature.ErrMalformed},
		{name: "no keyid", raw: withSignature(`{"algorithm":"ES256","value":"` + esValue + `"}`), want: signature.ErrMalformed},
		{name: "no algorithm", raw: withSignature(`{"keyid":"es256","value":"` + esValue + `"}`), want: signature.ErrMalformed},
		{name: "value not a string", raw: withSignature(`{"algorithm":"ES256","keyid":"es256","value":5}`), want: signature.ErrMalformed},
		{name: "extra member", raw: withSignature(`{"algorithm":"ES256","keyid":"es256","value":"` + esValue + `","t":1}`), want: signature.ErrMalformed},
		{name: "duplicate member inside", raw: withSignature(`{"algorithm":"ES256","keyid":"es256","keyid":"es256","value":"` + esValue + `"}`), want: signature.ErrMalformed},
		{name: "member name case", raw: withSignature(`{"Algorithm":"ES256","keyid":"es256","value":"` + esValue + `"}`), want: signature.ErrMalformed},
		{name: "duplicate signature", raw: baseMessage[:len(baseMessage)-1] + `,"sign\u0061ture":null,"signature":` + sigJSON("ES256", esKey, esValue) + `}`, want: signature.ErrMalformed},
		{name: "old domain:selector keyid", raw: withSignature(sigJSON("ES256", "example.com:es256", esValue)), want: signature.ErrMalformed},
		{name: "keyid with a dot", raw: withSignature(sigJSON("ES256", "es256.evil.example", esValue)), want: signature.ErrMalformed},
		{name: "keyid underscore", raw: withSignature(sigJSON("ES256", "_amtp", esValue)), want: signature.ErrMalformed},
		{name: "keyid upper case", raw: withSignature(sigJSON("ES256", "ES256", esValue)), want: signature.ErrMalformed},
		{name: "sender in a subdomain", raw: strings.Replace(valid, "agent@example.com", "agent@mail.example.com", 1), want: signature.ErrKeyNotFound, lookups: 1},
		{name: "unsupported algorithm", raw: withSignature(sigJSON("HS256", esKey, esValue)), want: signature.ErrUnsupportedAlgorithm},
		{name: "EdDSA is not in the profile", raw: withSignature(sigJSON("EdDSA", esKey, esValue)), want: signature.ErrUnsupportedAlgorithm},
		{name: "algorithm none", raw: withSignature(sigJSON("none", esKey, esValue)), want: signature.ErrUnsupportedAlgorithm},
		{name: "algorithm case", raw: withSignature(sigJSON("es256", esKey, esValue)), want: signature.ErrUnsupportedAlgorithm},
		{name: "ES256 value labelled RS256 on the EC key", raw: withSignature(sigJSON("RS256", esKey, rsValue)), want: signature.ErrAlgorithmMismatch, lookups: 1},
		{name: "RS256 value labelled ES256", raw: withSignature(sigJSON("ES256", "rs256", rsValue)), want: signature.ErrBadSignature},
		{name: "zero ES256 value", raw: withSignature(sigJSON("ES256", esKey, strings.Repeat("A", 86))), want: signature.ErrBadSignature, lookups: 1},
		{name: "DER-encoded ES256 value", raw: withSignature(sigJSON("ES256", esKey, base64.RawURLEncoding.EncodeToString(derOf(rawEs)))), want: signature.ErrBadSignature},
		{name: "unknown selector", raw: withSignature(sigJSON("ES256", "gone", esValue)), want: signature.ErrKeyNotFound, lookups: 1},
		{name: "padded value", raw: withSignature(sigJSON("ES256", esKey, esValue+"==")), want: signature.ErrMalformed},
		{name: "standard alphabet", raw: withSignature(sigJSON("ES256", esKey, base64.RawStdEncoding.EncodeToString(withPlusSlash(rawEs)))), want: signature.ErrMalformed},
		{name: "padded standard base64", raw: withSignature(sigJSON("ES256", esKey, base64.StdEncoding.EncodeToString(append(rawEs, 0)))), want: signature.ErrMalformed},
		{name: "non-zero trailing bits", raw: withSignature(sigJSON("ES256", esKey, esValue[:len(esValue)-1]+flipLow(esValue[len(esValue)-1]))), want: signature.ErrMalformed},
		{name: "truncated by one char", raw: withSignature(sigJSON("ES256", esKey, esValue[:len(esValue)-1])), want: signature.ErrMalformed},
		{name: "truncated to 63 bytes", raw: withSignature(sigJSON("ES256", esKey, esValue[:84])), want: signature.ErrBadSignature},
		{name: "extended", raw: withSignature(sigJSON("ES256", esKey, esValue+"AAAA")), want: signature.ErrBadSignature},
		{name: "RS256 truncated to 255 bytes", raw: withSignature(sigJSON("RS256", "rs256", rsValue[:340])), want: signature.ErrBadSignature, lookups: 1},
		{name: "RS256 too long", raw: withSignature(sigJSON("RS256", "rs256", strings.Repeat(rsValue, 6))), want: signature.ErrBadSignature},
		{name: "value with whitespace", raw: withSignature(sigJSON("ES256", esKey, esValue[:10]+" "+esValue[10:])), want: signature.ErrMalformed},
		{name: "value with newline", raw: withSignature(sigJSON("ES256", esKey, esValue[:10]+"\n"+esValue[10:])), want: signature.ErrMalformed},
		{name: "no sender", raw: strings.Replace(valid, `"sender":"agent@example.com",`, "", 1), want: signature.ErrMalformed},
		{name: "sender not an address", raw: strings.Replace(valid, `"agent@example.com"`, `"example.com"`, 1), want: signature.ErrMalformed},
		{name: "sender not a string", raw: strings.Replace(valid, `"agent@example.com"`, `["agent@example.com"]`, 1), want: signature.ErrMalformed},
		{name: "no version", raw: without("version"), want: signature.ErrMalformed},
		{name: "no message_id", raw: without("message_id"), want: signature.ErrMalformed},
		{name: "no idempotency_key", raw: without("idempotency_key"), want: signature.ErrMalformed},
		{name: "no timestamp", raw: without("timestamp"), want: signature.ErrMalformed},
		{name: "timestamp not a date", raw: strings.Replace(valid, `"2025-08-14T10:30:00.000Z"`, `"yesterday"`, 1), want: signature.ErrMalformed},
		{name: "empty message_id", raw: strings.Replace(valid, `"01H8X9Z2K3M4N5P6Q7R8S9T0VW"`, `""`, 1), want: signature.ErrMalformed},
		{name: "not JSON", raw: `{"sender":`, want: signature.ErrMalformed},
		{name: "array", raw: `[` + valid + `]`, want: signature.ErrMalformed},
		{name: "empty", raw: ``, want: signature.ErrMalformed},
		{name: "trailing data", raw: valid + `{}`, want: signature.ErrMalformed},
		{name: "duplicate member", raw: strings.Replace(valid, `"version":"1.0",`, `"version":"1.0","version":"1.0",`, 1), want: signature.ErrMalformed},
		{name: "duplicate nested member", raw: strings.Replace(valid, `"qty":5`, `"qty":5,"qty":5`, 1), want: signature.ErrMalformed},
		{name: "invalid UTF-8", raw: strings.Replace(valid, `"hi"`, "\"h\xffi\"", 1), want: signature.ErrMalformed},
		{name: "lone surrogate", raw: strings.Replace(valid, `"hi"`, `"\ud800"`, 1), want: signature.ErrMalformed},
		{name: "number out of range", raw: strings.Replace(valid, `"qty":5`, `"qty":1e999`, 1), want: signature.ErrMalformed},
		{name: "number beyond a double's precision", raw: strings.Replace(valid, `"qty":5`, `"qty":12345678901234567891`, 1), want: signature.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := &countingKeys{KeyResolver: vectorVerifier(t).Keys}
			v := &signature.Verifier{Keys: keys, Now: func() time.Time { return baseTime }}
			_, err := verify(t, v, tc.raw)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
				assert.False(t, errors.Is(err, signature.ErrKeyUnavailable))
			}
			assert.LessOrEqual(t, int(keys.n.Load()), tc.lookups, "key lookups")
		})
	}
}

// The draft's number rule closes a hole JCS alone leaves: a 20-digit
// integer changed after signing used to canonicalise to the same double
// and verify. It must not verify now, whatever the change.
func TestLargeIntegerTamperDoesNotVerify(t *testing.T) {
	v := vectorVerifier(t)
	v.Now = func() time.Time { return baseTime }
	for _, alg := range algorithms {
		// A signer that went by the old rules would have signed this; ours
		// refuses to, and the verifier refuses what another might send.
		raw := strings.Replace(baseMessage, `"qty":5`, `"qty":12345678901234567890`, 1)
		_, err := vectorSigner(t, alg).Sign([]byte(raw))
		require.ErrorIs(t, err, signature.ErrMalformed, alg)

		signed := sign(t, alg, baseMessage)
		value := signatureValueOf(t, signed)
		for _, n := range []string{"12345678901234567890", "12345678901234567891"} {
			tampered := strings.Replace(withSignature(sigJSON(string(alg), selectorFor(alg), value)), `"qty":5`, `"qty":`+n, 1)
			_, err := verify(t, v, tampered)
			assert.ErrorIs(t, err, signature.ErrMalformed, "%s %s", alg, n)
			assert.Equal(t, signature.KindInvalid, signature.KindOf(err))
		}
	}
}

// derOf re-encodes a 64-byte r||s as the ASN.1 DER the profile forbids.
func derOf(rs []byte) []byte {
	type sig struct{ R, S *big.Int }
	der, _ := asn1.Marshal(sig{new(big.Int).SetBytes(rs[:32]), new(big.Int).SetBytes(rs[32:])})
	return der
}

func TestVerifyWrongKey(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			other, err := signature.GenerateKey(alg)
			require.NoError(t, err)
			v := &signature.Verifier{Keys: keyMap{keyName(testDomain, selectorFor(alg)): other.Public()}, Now: func() time.Time { return baseTime }}
			_, err = verify(t, v, sign(t, alg, baseMessage))
			assert.ErrorIs(t, err, signature.ErrBadSignature)
		})
	}
}

func TestVerifyKeyLookupFailures(t *testing.T) {
	signed := sign(t, signature.ES256, baseMessage)
	now := func() time.Time { return baseTime }

	transient := errors.New("dns: i/o timeout")
	v := &signature.Verifier{Now: now, Keys: resolverFunc(func(context.Context, string, string) (crypto.PublicKey, error) {
		return nil, transient
	})}
	_, err := verify(t, v, signed)
	require.ErrorIs(t, err, signature.ErrKeyUnavailable)
	assert.ErrorIs(t, err, transient)
	assert.True(t, signature.Temporary(err))
	assert.Equal(t, signature.KindKeyUnavailable, signature.KindOf(err))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v = &signature.Verifier{Now: now, Keys: resolverFunc(func(ctx context.Context, _, _ string) (crypto.PublicKey, error) {
		return nil, ctx.Err()
	})}
	_, err = v.Verify(ctx, []byte(signed))
	assert.ErrorIs(t, err, signature.ErrKeyUnavailable)
	assert.ErrorIs(t, err, context.Canceled)

	// A resolver handing back something that is not a usable key is the
	// publisher's fault, not a reason to retry.
	for name, pub := range map[string]crypto.PublicKey{
		"nil":           nil,
		"Ed25519":       ed25519.PublicKey(make([]byte, 32)),
		"wrong type":    "key",
		"EC no point":   &ecdsa.PublicKey{Curve: elliptic.P256()},
		"EC P-384":      &ecdsa.PublicKey{Curve: elliptic.P384()},
		"nil RSA":       (*rsa.PublicKey)(nil),
		"nil EC":        (*ecdsa.PublicKey)(nil),
		"RSA too big":   &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), signature.MaxRSABits), E: 65537},
		"RSA too small": &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), signature.MinRSABits-2), E: 65537},
	} {
		v = &signature.Verifier{Now: now, Keys: resolverFunc(func(context.Context, string, string) (crypto.PublicKey, error) {
			return pub, nil
		})}
		_, err = verify(t, v, signed)
		assert.ErrorIs(t, err, signature.ErrKeyRecord, name)
		assert.Equal(t, signature.KindInvalid, signature.KindOf(err), name)
	}

	_, err = (&signature.Verifier{}).Verify(context.Background(), []byte(signed))
	assert.Error(t, err, "a verifier without keys must not pass anything")
}

func TestVerifyFreshness(t *testing.T) {
	signed := sign(t, signature.ES256, baseMessage)
	keys := vectorVerifier(t).Keys
	at := func(now time.Time) *signature.Verifier {
		return &signature.Verifier{Keys: keys, Now: func() time.Time { return now }}
	}
	tests := []struct {
		name string
		v    *signature.Verifier
		want error
	}{
		{name: "fresh", v: at(baseTime.Add(time.Hour))},
		{name: "a week old", v: at(baseTime.Add(signature.DefaultMaxAge))},
		{name: "older than a week", v: at(baseTime.Add(signature.DefaultMaxAge + time.Millisecond)), want: signature.ErrExpired},
		{name: "a year old", v: at(baseTime.AddDate(1, 0, 0)), want: signature.ErrExpired},
		{name: "slightly ahead", v: at(baseTime.Add(-4 * time.Minute))},
		{name: "more than five minutes ahead", v: at(baseTime.Add(-6 * time.Minute)), want: signature.ErrExpired},
		{name: "decades ahead", v: at(baseTime.AddDate(-24, 0, 0)), want: signature.ErrExpired},
		{name: "configured window", v: &signature.Verifier{Keys: keys, MaxAge: time.Hour, Now: func() time.Time { return baseTime.Add(61 * time.Minute) }}, want: signature.ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(t, tc.v, signed)
			if tc.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.want)
				assert.Equal(t, signature.KindInvalid, signature.KindOf(err))
			}
		})
	}

	_, err := vectorSigner(t, signature.ES256).Sign([]byte(strings.Replace(baseMessage, `2025-08-14T10:30:00.000Z`, `yesterday`, 1)))
	assert.ErrorIs(t, err, signature.ErrMalformed, "Sign refuses a timestamp no verifier can read")

	lower := sign(t, signature.ES256, strings.Replace(baseMessage, `2025-08-14T10:30:00.000Z`, `2025-08-14t12:30:00.000+02:00`, 1))
	_, err = verify(t, at(baseTime), lower)
	assert.NoError(t, err)
}

func TestVerifyMaxBytes(t *testing.T) {
	signed := sign(t, signature.ES256, baseMessage)
	keys := vectorVerifier(t).Keys
	now := func() time.Time { return baseTime }
	_, err := verify(t, &signature.Verifier{Keys: keys, Now: now, MaxBytes: int64(len(signed))}, signed)
	assert.NoError(t, err)
	_, err = verify(t, &signature.Verifier{Keys: keys, Now: now, MaxBytes: int64(len(signed) - 1)}, signed)
	assert.ErrorIs(t, err, signature.ErrMalformed)

	big := baseMessage[:len(baseMessage)-1] + `,"big":"` + strings.Repeat("x", int(signature.DefaultMaxBytes)) + `"}`
	_, err = verify(t, &signature.Verifier{Keys: keys}, big)
	assert.ErrorIs(t, err, signature.ErrMalformed)
	_, err = vectorSigner(t, signature.ES256).Sign([]byte(big))
	assert.ErrorIs(t, err, signature.ErrMalformed)
	s := vectorSigner(t, signature.ES256)
	s.MaxBytes = int64(len(big))
	_, err = s.Sign([]byte(big))
	assert.NoError(t, err)
}

func TestSignErrors(t *testing.T) {
	s := vectorSigner(t, signature.ES256)
	tests := map[string]struct {
		raw  string
		want error
	}{
		"no message_id":        {raw: strings.Replace(baseMessage, `"message_id":"01H8X9Z2K3M4N5P6Q7R8S9T0VW",`, "", 1), want: signature.ErrMalformed},
		"no timestamp":         {raw: strings.Replace(baseMessage, `"timestamp":"2025-08-14T10:30:00.000Z",`, "", 1), want: signature.ErrMalformed},
		"number not a double":  {raw: strings.Replace(baseMessage, `"qty":5`, `"qty":9007199254740993`, 1), want: signature.ErrMalformed},
		"other sender domain":  {raw: strings.Replace(baseMessage, "agent@example.com", "agent@partner.example", 1), want: signature.ErrKeyDomain},
		"subdomain sender":     {raw: strings.Replace(baseMessage, "agent@example.com", "agent@mail.example.com", 1), want: signature.ErrKeyDomain},
		"no sender":            {raw: `{"payload":1}`, want: signature.ErrMalformed},
		"not JSON":             {raw: `{"sender":"agent@example.com"`, want: signature.ErrMalformed},
		"array":                {raw: `["sender"]`, want: signature.ErrMalformed},
		"duplicate signature":  {raw: `{"sender":"agent@example.com","signature":null,"sign\u0061ture":null}`, want: signature.ErrMalformed},
		"number out of range":  {raw: `{"sender":"agent@example.com","payload":-1e400}`, want: signature.ErrMalformed},
		"trailing garbage":     {raw: `{"sender":"agent@example.com"}x`, want: signature.ErrMalformed},
		"signature not closed": {raw: `{"sender":"agent@example.com","signature":{]}`, want: signature.ErrMalformed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := s.Sign([]byte(tc.raw))
			assert.ErrorIs(t, err, tc.want)
		})
	}
}

func TestCanonicalInput(t *testing.T) {
	tests := map[string]struct{ raw, want string }{
		"no signature":        {raw: `{"b":1,"a":2}`, want: `{"a":2,"b":1}`},
		"signature first":     {raw: `{"signature":{"x":1},"b":1,"a":2}`, want: `{"a":2,"b":1}`},
		"signature last":      {raw: `{"b":1,"a":2, "signature" : null }`, want: `{"a":2,"b":1}`},
		"signature only":      {raw: ` { "signature":[1,{"a":"}"}] } `, want: `{}`},
		"escaped name":        {raw: `{"sign\u0061ture":1,"z":"signature"}`, want: `{"z":"signature"}`},
		"nested kept":         {raw: `{"p":{"signature":1},"signature":2}`, want: `{"p":{"signature":1}}`},
		"similar names kept":  {raw: `{"signatures":1,"Signature":2,"signature":3,"signaturf":4}`, want: `{"Signature":2,"signatures":1,"signaturf":4}`},
		"strings with braces": {raw: `{"a":"{\"signature\":1}","signature":"}]"}`, want: `{"a":"{\"signature\":1}"}`},
		"empty":               {raw: `{}`, want: `{}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := signature.CanonicalInput([]byte(tc.raw))
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
		})
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{"a":1,"a":2}`, `{"signature":1,"sign\u0061ture":2}`, `{"a":}`, `{"a":1}}`} {
		_, err := signature.CanonicalInput([]byte(bad))
		assert.ErrorIs(t, err, signature.ErrMalformed, bad)
	}
}

func TestConcurrentUse(t *testing.T) {
	v := vectorVerifier(t)
	var wg sync.WaitGroup
	for _, alg := range algorithms {
		s := vectorSigner(t, alg)
		for range 4 {
			wg.Go(func() {
				for range 10 {
					out, err := s.Sign([]byte(baseMessage))
					if !assert.NoError(t, err) {
						return
					}
					_, err = v.Verify(context.Background(), out)
					assert.NoError(t, err)
				}
			})
		}
	}
	wg.Wait()
}

type resolverFunc func(ctx context.Context, domain, selector string) (crypto.PublicKey, error)

func (f resolverFunc) PublicKey(ctx context.Context, domain, selector string) (crypto.PublicKey, error) {
	return f(ctx, domain, selector)
}

type countingKeys struct {
	signature.KeyResolver
	n atomic.Int32
}

func (c *countingKeys) PublicKey(ctx context.Context, domain, selector string) (crypto.PublicKey, error) {
	c.n.Add(1)
	return c.KeyResolver.PublicKey(ctx, domain, selector)
}

func indent(t testing.TB, raw string) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, json.Indent(&buf, []byte(raw), "", "\t"))
	return buf.String()
}

// reverseMembers writes the top-level members of raw in reverse order,
// keeping each value's bytes.
func reverseMembers(t testing.TB, raw string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(raw))
	_, err := dec.Token()
	require.NoError(t, err)
	var parts []string
	for dec.More() {
		name, err := dec.Token()
		require.NoError(t, err)
		var v json.RawMessage
		require.NoError(t, dec.Decode(&v))
		n, _ := json.Marshal(name)
		parts = append(parts, string(n)+":"+string(v))
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// withPlusSlash changes b until its standard base64 form has a + or /, so
// the encoding differs from base64url.
func withPlusSlash(b []byte) []byte {
	b = bytes.Clone(b)
	for i := 0; ; i++ {
		enc := base64.RawStdEncoding.EncodeToString(b)
		if strings.ContainsAny(enc, "+/") {
			return b
		}
		b[i%len(b)] ^= 0xff
	}
}

// flipLow changes the last character of a 64-byte value's encoding so that
// the bits it carries beyond the data become non-zero.
func flipLow(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i^1])
}

// glitchingSigner stands for a key outside the process (an HSM, a KMS
// key) whose signatures come back wrong.
type glitchingSigner struct{ crypto.Signer }

func (g glitchingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := g.Signer.Sign(r, digest, opts)
	if err == nil {
		sig[len(sig)-1] ^= 1 // the last byte: DER framing stays intact
	}
	return sig, err
}

// TestExternalSignerIsChecked: a signature from a key outside the process
// is verified before it leaves; the standard library's own keys are not
// re-verified, and their signatures verify at the recipient.
func TestExternalSignerIsChecked(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			bad, err := signature.NewSigner(testDomain, selectorFor(alg), glitchingSigner{vectorKey(t, alg)})
			require.NoError(t, err)
			_, err = bad.Sign([]byte(baseMessage))
			require.ErrorContains(t, err, "does not verify")

			// A sound external key passes its check, and its signature
			// verifies at the recipient.
			ext, err := signature.NewSigner(testDomain, selectorFor(alg), opaqueSigner{vectorKey(t, alg)})
			require.NoError(t, err)
			out, err := ext.Sign([]byte(baseMessage))
			require.NoError(t, err)
			_, err = vectorVerifier(t).Verify(context.Background(), out)
			require.NoError(t, err)

			signed := sign(t, alg, baseMessage)
			_, err = vectorVerifier(t).Verify(context.Background(), []byte(signed))
			require.NoError(t, err)
		})
	}
}

// fixedSigner stands for an external key that answers with sig (or err)
// whatever it is asked to sign.
type fixedSigner struct {
	crypto.Signer
	sig []byte
	err error
}

func (f fixedSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return f.sig, f.err }

// TestExternalSignerFailures: whatever an external key answers that is not
// a usable signature fails Sign, and no signed message comes out.
func TestExternalSignerFailures(t *testing.T) {
	der := func(r, s *big.Int) []byte {
		b, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		require.NoError(t, err)
		return b
	}
	one := big.NewInt(1)
	tooBig := new(big.Int).Lsh(one, 256)
	good := der(one, one)
	for _, tc := range []struct {
		name string
		alg  signature.Algorithm
		sig  []byte
		err  error
		want string
	}{
		{name: "key unavailable", alg: signature.ES256, err: errors.New("HSM offline"), want: "HSM offline"},
		{name: "not DER", alg: signature.ES256, sig: []byte("not DER"), want: "decoding ECDSA signature"},
		{name: "DER with trailing data", alg: signature.ES256, sig: append(good, 0), want: "trailing data"},
		{name: "r is zero", alg: signature.ES256, sig: der(big.NewInt(0), one), want: "out of range"},
		{name: "s is longer than 256 bits", alg: signature.ES256, sig: der(one, tooBig), want: "out of range"},
		{name: "in range but wrong", alg: signature.ES256, sig: good, want: "does not verify"},
		{name: "RS256 signature of the wrong length", alg: signature.RS256, sig: make([]byte, 100), want: "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := signature.NewSigner(testDomain, selectorFor(tc.alg), fixedSigner{Signer: vectorKey(t, tc.alg), sig: tc.sig, err: tc.err})
			require.NoError(t, err)
			out, err := s.Sign([]byte(baseMessage))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "signing as "+selectorFor(tc.alg))
			assert.Nil(t, out)
		})
	}
}
