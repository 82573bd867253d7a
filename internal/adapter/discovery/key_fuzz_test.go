package discovery

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// es256Record is a real published key record (the signature package's
// ES256 test vector).
const es256Record = "v=amtpkey1;alg=ES256;p=MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEugLdZU6Qk9/rYlrh7q5RwwDh5Uy8KxMXh2EcGuzDCrCN7bXp04Ssy5TaGHnHqoL98cAbckWhvtFD23xg9NKqfQ=="

// FuzzParseKeyTXT feeds arbitrary TXT text to ParseKeyTXT. A refusal is a
// permanent record problem or "not ours", with nothing returned; an
// accepted record has a profile algorithm and key bytes, reads back the
// same from its canonical rendering, and is the one selectKey picks.
func FuzzParseKeyTXT(f *testing.F) {
	_, p, _ := strings.Cut(es256Record, ";p=")
	for _, s := range []string{
		es256Record,
		strings.Replace(es256Record, "ES256", "RS256", 1),
		"v=amtpkey1;alg=ES256;p=AAECAwQ=",
		" P= AAEC AwQ= ; ALG=rs256 ; V=AMTPKEY1 ;",
		"v=amtpkey1;alg=ES256;t=y;future=1;p=/w==",
		"v=amtpkey1;alg=ES256;p=_-8",
		"",
		";;;",
		"v=amtpkey1;alg=ES256;p=",
		"v=amtpkey1;alg=ES256;p=" + p[:17], // truncated
		"v=amtpkey1;alg=ES256;p=" + strings.Repeat("A", 9000),   // huge
		"v=amtpkey1;alg=ES256;p=" + p[:20] + "\t\r\n " + p[20:], // folded
		"v=amtpkey1;v=amtpkey1;alg=ES256;p=" + p,                // duplicate keys
		"v=amtpkey1;alg=ES256;alg=RS256;p=" + p,
		"v=amtpkey1;alg=ＥＳ256;p=" + p, // full-width letters
		"v=amtpkey1;alg=ES256;p=AAAA\u00a0BBBB",
		"v=amtpkey1;alg=es256;p=====",
		"v=amtpkey1;alg=ES256;p=A\x00A=",
		"v=DKIM1;k=rsa;p=" + p,
		"v=amtp1;gateway=https://gw.example.com",
		"alg=ES256;p=" + p,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		kr, err := ParseKeyTXT(txt)
		if err != nil {
			require.Zero(t, kr, "a refused record returns nothing")
			require.True(t, errors.Is(err, ErrInvalidRecord) || errors.Is(err, errNotKeyRecord), "%v", err)
			require.False(t, IsTransient(err), "a record problem is never worth a retry")
			return
		}
		require.Contains(t, []string{KeyES256, KeyRS256}, kr.Algorithm)
		require.NotEmpty(t, kr.PublicKey)

		canonical := "v=" + KeyVersion + ";alg=" + kr.Algorithm + ";p=" + base64.StdEncoding.EncodeToString(kr.PublicKey)
		again, err := ParseKeyTXT(canonical)
		require.NoError(t, err, "canonical form %q", canonical)
		require.Equal(t, kr, again)

		picked, err := selectKey([]string{"v=spf1 -all", txt})
		require.NoError(t, err)
		require.Equal(t, kr, picked)
		_, err = selectKey([]string{txt, canonical})
		require.ErrorIs(t, err, ErrKeyAmbiguous, "two valid records under one name")
	})
}
