package amtp

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIsReservedLocalPart(t *testing.T) {
	for _, tc := range []struct {
		local string
		want  bool
	}{
		{"postmaster", true},
		{"PostMaster", true},
		{"MAILER-DAEMON", true},
		{"amtp-bridge", true},
		{"postmaster2", false},
		{"post.master", false},
		{"postmaster+x", false},
		{"bridge", false},
		{"", false},
	} {
		assert.Equal(t, tc.want, IsReservedLocalPart(tc.local), tc.local)
	}
	assert.Equal(t, []string{"postmaster", "mailer-daemon", "amtp-bridge"}, ReservedLocalParts())
}
