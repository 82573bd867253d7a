package httpapi

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// TestEveryCodeHasAStatus: a code added to amtp without a status here
// would answer 500.
func TestEveryCodeHasAStatus(t *testing.T) {
	codes := amtp.Codes()
	for _, c := range codes {
		s, ok := codeStatus[c]
		assert.True(t, ok, "%s has no HTTP status", c)
		assert.NotEqual(t, http.StatusInternalServerError, s, string(c))
		assert.Equal(t, s, statusOf(c), string(c))
	}
	assert.Len(t, codeStatus, len(codes), "a status for a code amtp does not declare")
}

func TestCodeStatuses(t *testing.T) {
	// The statuses PROTOCOL.md and the draft name explicitly, and the ones
	// other packages' tests relied on when amtp decided them.
	want := map[amtp.Code]int{
		amtp.CodeInvalidMessageFormat:    400,
		amtp.CodeUnsupportedVersion:      400,
		amtp.CodeSchemaValidationFailed:  400,
		amtp.CodeInvalidRecipient:        400,
		amtp.CodeMessageTooLarge:         413,
		amtp.CodeAuthenticationRequired:  401,
		amtp.CodeAuthenticationFailed:    401,
		amtp.CodeForbidden:               403,
		amtp.CodePolicyDenied:            403,
		amtp.CodeSignatureInvalid:        403,
		amtp.CodeSignatureRequired:       403,
		amtp.CodeIdempotencyConflict:     409,
		amtp.CodeAgentUnknown:            400,
		amtp.CodeRateLimitExceeded:       429,
		amtp.CodeTemporaryFailure:        503,
		amtp.CodeSignatureKeyUnavailable: 503,
		amtp.CodeNotFound:                404,
		amtp.CodeMethodNotAllowed:        405,
	}
	for c, s := range want {
		assert.Equal(t, s, statusOf(c), string(c))
	}
}

func TestUnknownCodeIs500(t *testing.T) {
	assert.Equal(t, http.StatusInternalServerError, statusOf("SOMETHING_NEW"))
	assert.Equal(t, http.StatusInternalServerError, statusOf(""))
}

func TestAcceptStatus(t *testing.T) {
	tests := []struct {
		name    string
		outcome gateway.AcceptOutcome
		want    int
	}{
		{"queued is 202", gateway.OutcomeQueued, http.StatusAccepted},
		{"zero value is queued", gateway.AcceptOutcome(0), http.StatusAccepted},
		{"synchronous reply is 200", gateway.OutcomeReplied, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, acceptStatus(tc.outcome))
		})
	}
}
