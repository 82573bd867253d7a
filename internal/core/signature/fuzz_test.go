package signature_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/core/signature"
)

// FuzzVerify feeds arbitrary bodies and signature values to Verify. Nothing
// may panic, and nothing may verify that the vector keys did not sign: a
// body verifies only if it is JCS-equivalent to a message signed below, and
// a spliced value only if it is the genuine one.
func FuzzVerify(f *testing.F) {
	v := vectorVerifier(f)
	msg := readVector(f, "message.json")
	signedCanon := map[string]bool{}
	genuine := map[signature.Algorithm]string{}
	vectors := map[signature.Algorithm]string{}
	for _, alg := range algorithms {
		for _, raw := range [][]byte{msg, []byte(baseMessage)} {
			out, err := vectorSigner(f, alg).Sign(raw)
			require.NoError(f, err)
			canon, err := signature.CanonicalInput(raw)
			require.NoError(f, err)
			signedCanon[string(canon)] = true
			f.Add(out, "")
		}
		// From the committed vectors: ES256 is randomised, and every fuzz
		// worker process runs this setup again.
		signed := string(readVector(f, selectorFor(alg)+".signed.json"))
		genuine[alg] = signatureValueOf(f, signed)
		vectors[alg] = signed
		f.Add([]byte(baseMessage), genuine[alg])
	}
	f.Add([]byte(`{"signature":{"algorithm":"ES256","keyid":"es256","value":"AA"},"sender":"a@example.com"}`), "A-_")
	f.Add([]byte(`{"sender":"a@example.com","signature":null}`), "====")
	f.Add([]byte(`[{"signature":{}}]`), "\n")

	f.Fuzz(func(t *testing.T, raw []byte, value string) {
		if _, err := v.Verify(context.Background(), raw); err == nil {
			canon, err := signature.CanonicalInput(raw)
			require.NoError(t, err, "verified input must canonicalise")
			require.True(t, signedCanon[string(canon)], "verified a message nobody signed: %q", raw)
		}
		for _, alg := range algorithms {
			spliced := strings.Replace(vectors[alg], genuine[alg], value, 1)
			if _, err := v.Verify(context.Background(), []byte(spliced)); err == nil {
				require.Equal(t, genuine[alg], value, "%s accepted a value it did not produce", alg)
			}
		}
	})
}

// FuzzSign checks that whatever Sign accepts comes out verifying, with the
// signed content unchanged.
func FuzzSign(f *testing.F) {
	v := vectorVerifier(f)
	// Any timestamp Sign takes must verify: the window is not under test.
	v.MaxAge, v.ClockSkew = 1<<62, 1<<62
	s := vectorSigner(f, signature.ES256)
	const required = `"version":"1.0","message_id":"m","idempotency_key":"k","timestamp":"2025-08-14T10:30:00Z",`
	f.Add(readVector(f, "message.json"))
	f.Add([]byte(baseMessage))
	f.Add([]byte(`{` + required + `"signature":1,"sender":"a@example.com"}`))
	f.Add([]byte(` {` + required + `"sender" : "a@example.com" , "sign\u0061ture" : [ "}" ] } `))
	f.Add([]byte(`{` + required + `"sender":"a@example.com","p":{"signature":{"a":"\"}"}}}`))

	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := s.Sign(raw)
		if err != nil {
			return
		}
		_, err = v.Verify(context.Background(), out)
		require.NoError(t, err, "signed output does not verify: %q", out)
		before, err := signature.CanonicalInput(raw)
		require.NoError(t, err)
		after, err := signature.CanonicalInput(out)
		require.NoError(t, err)
		require.Equal(t, string(before), string(after))
	})
}
