package jwtauth_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVerificationIsTheLibraries pins the house rule that JWT and JWK
// handling come from well-kept libraries rather than code of our own:
// golang-jwt parses and checks the token (algorithm, signature, exp, nbf,
// iat, iss, aud) and jwkset turns the issuer's published keys into
// crypto keys.
func TestVerificationIsTheLibraries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	for _, lib := range []string{"github.com/golang-jwt/jwt/v5", "github.com/MicahParks/jwkset"} {
		assert.True(t, slices.Contains(deps, lib), "jwtauth does not use %s", lib)
	}
}
