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
			name: "ed25519",
			txt:  "v=amtp1;k=ed25519;p=AAECAwQ=",
			want: KeyRecord{Algorithm: KeyEd25519, PublicKey: []byte{0, 1, 2, 3, 4}},
		},
		{
			name: "case and whitespace, folded base64",
			txt:  " V=AMTP1 ; K=RSA ; P= AAEC AwQ= ;",
			want: KeyRecord{Algorithm: KeyRSA, PublicKey: []byte{0, 1, 2, 3, 4}},
		},
		{
			name: "ec with unknown tag",
			txt:  "v=amtp1;k=ec;t=y;p=/w==",
			want: KeyRecord{Algorithm: KeyEC, PublicKey: []byte{0xff}},
		},
		{name: "revoked", txt: "v=amtp1;k=ed25519;p=", wantErr: ErrKeyRevoked},
		{name: "missing v", txt: "k=ed25519;p=AAAA", wantErr: ErrInvalidRecord},
		{name: "wrong v", txt: "v=DKIM1;k=rsa;p=AAAA", wantErr: ErrInvalidRecord},
		{name: "missing k", txt: "v=amtp1;p=AAAA", wantErr: ErrInvalidRecord},
		{name: "unknown algorithm", txt: "v=amtp1;k=dsa;p=AAAA", wantErr: ErrInvalidRecord},
		{name: "missing p", txt: "v=amtp1;k=rsa", wantErr: ErrInvalidRecord},
		{name: "bad base64", txt: "v=amtp1;k=rsa;p=!!!!", wantErr: ErrInvalidRecord},
		{name: "unpadded base64", txt: "v=amtp1;k=rsa;p=AAECAwQ", wantErr: ErrInvalidRecord},
		{name: "duplicate p", txt: "v=amtp1;k=rsa;p=AAAA;p=BBBB", wantErr: ErrInvalidRecord},
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
