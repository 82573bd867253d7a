package gateway

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCertNameMatches(t *testing.T) {
	for _, tc := range []struct {
		name, domain string
		want         bool
	}{
		{"a.test", "a.test", true},
		{"*.a.test", "gw.a.test", true},
		{"*.a.test", "a.test", false},      // a wildcard needs its label
		{"*.a.test", "x.gw.a.test", false}, // and covers exactly one
		{"*.test", "a.test", true},
		{"evil-a.test", "a.test", false},
		{"a.test.evil", "a.test", false},
		{"*", "a.test", false},
		{"", "a.test", false},
	} {
		assert.Equalf(t, tc.want, certNameMatches(tc.name, tc.domain), "%q vs %q", tc.name, tc.domain)
	}
}
