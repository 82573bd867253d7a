package discovery

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseKeyTXT(t *testing.T) {
	tests := []struct {
		name    string
		txt     string
		want    KeyRecord
		wantErr error
	}{
		{
			name: "es256",
			txt:  "v=amtpkey1;alg=ES256;p=AAECAwQ=",
			want: KeyRecord{Algorithm: KeyES256, PublicKey: []byte{0, 1, 2, 3, 4}},
		},
		{
			name: "case and whitespace, folded base64, any order",
			txt:  " P= AAEC AwQ= ; ALG=rs256 ; V=AMTPKEY1 ;",
			want: KeyRecord{Algorithm: KeyRS256, PublicKey: []byte{0, 1, 2, 3, 4}},
		},
		{
			name: "unknown parameter ignored",
			txt:  "v=amtpkey1;alg=ES256;t=y;future=1;p=/w==",
			want: KeyRecord{Algorithm: KeyES256, PublicKey: []byte{0xff}},
		},
		{
			name: "unpadded and URL alphabet accepted",
			txt:  "v=amtpkey1;alg=ES256;p=_-8",
			want: KeyRecord{Algorithm: KeyES256, PublicKey: []byte{0xff, 0xef}},
		},
		{name: "revoked", txt: "v=amtpkey1;alg=ES256;p=", wantErr: ErrInvalidRecord},
		{name: "missing v", txt: "alg=ES256;p=AAAA", wantErr: errNotKeyRecord},
		{name: "old format", txt: "v=amtp1;k=ec;p=AAAA", wantErr: errNotKeyRecord},
		{name: "wrong v", txt: "v=DKIM1;k=rsa;p=AAAA", wantErr: errNotKeyRecord},
		{name: "missing alg", txt: "v=amtpkey1;p=AAAA", wantErr: ErrInvalidRecord},
		{name: "EdDSA is not in the profile", txt: "v=amtpkey1;alg=EdDSA;p=AAAA", wantErr: ErrInvalidRecord},
		{name: "missing p", txt: "v=amtpkey1;alg=RS256", wantErr: ErrInvalidRecord},
		{name: "bad base64", txt: "v=amtpkey1;alg=RS256;p=!!!!", wantErr: ErrInvalidRecord},
		{name: "duplicate p", txt: "v=amtpkey1;alg=RS256;p=AAAA;p=BBBB", wantErr: ErrInvalidRecord},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKeyTXT(tc.txt)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				assert.False(t, IsTransient(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSelectKey(t *testing.T) {
	good := "v=amtpkey1;alg=ES256;p=AAAA"
	tests := []struct {
		name    string
		txts    []string
		wantErr error
	}{
		{name: "one valid", txts: []string{good}},
		{name: "one valid among other TXT", txts: []string{"google-site-verification=x", good, "v=amtp1;k=ec;p=AAAA"}},
		{name: "one valid and one broken", txts: []string{"v=amtpkey1;alg=ES256;p=", good}},
		{name: "none", txts: nil, wantErr: ErrKeyNotFound},
		{name: "only other TXT", txts: []string{"v=spf1 -all"}, wantErr: ErrKeyNotFound},
		{name: "only broken", txts: []string{"v=amtpkey1;alg=EdDSA;p=AAAA"}, wantErr: ErrKeyNotFound},
		{name: "two valid", txts: []string{good, "v=amtpkey1;alg=RS256;p=BBBB"}, wantErr: ErrKeyAmbiguous},
		{name: "the same record twice", txts: []string{good, good}, wantErr: ErrKeyAmbiguous},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := selectKey(tc.txts)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, KeyES256, kr.Algorithm)
		})
	}
}
