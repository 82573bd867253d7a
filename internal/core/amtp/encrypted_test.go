package amtp

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEncryptedPayload(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    bool
	}{
		{`{"encrypted":true,"algorithm":"AES-256-GCM","encrypted_data":"eA==","recipients":[]}`, true},
		{` {"encrypted": true}`, true},
		{`{"encrypted":false,"data":1}`, false},
		{`{"encrypted":"true"}`, false},
		{`{"order_id":"o1"}`, false},
		{`[{"encrypted":true}]`, false},
		{`"encrypted"`, false},
		{``, false},
	} {
		assert.Equal(t, tc.want, EncryptedPayload(json.RawMessage(tc.payload)), tc.payload)
	}
}
