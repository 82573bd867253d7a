package httpapi

import (
	"net/http"

	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// codeStatus is the HTTP status each AMTP error code is answered with
// (draft §13 and shared/PROTOCOL.md "Errors"). The handler is the only
// place that speaks HTTP statuses: the core and the use cases say what
// happened in codes and outcomes.
var codeStatus = map[amtp.Code]int{
	amtp.CodeInvalidMessageFormat:     http.StatusBadRequest,
	amtp.CodeUnsupportedVersion:       http.StatusBadRequest,
	amtp.CodeSchemaValidationFailed:   http.StatusBadRequest,
	amtp.CodeMessageTooLarge:          http.StatusRequestEntityTooLarge,
	amtp.CodeInvalidRecipient:         http.StatusBadRequest,
	amtp.CodeRecipientUnavailable:     http.StatusServiceUnavailable,
	amtp.CodeRecipientNotFound:        http.StatusNotFound,
	amtp.CodeAuthenticationFailed:     http.StatusUnauthorized,
	amtp.CodeRateLimitExceeded:        http.StatusTooManyRequests,
	amtp.CodeTemporaryFailure:         http.StatusServiceUnavailable,
	amtp.CodeWorkflowTimeout:          http.StatusGatewayTimeout,
	amtp.CodeRequiredResponseMissing:  http.StatusBadRequest,
	amtp.CodeCoordinationFailed:       http.StatusBadRequest,
	amtp.CodeAgentUnknown:             http.StatusBadRequest,
	amtp.CodeIdempotencyConflict:      http.StatusConflict,
	amtp.CodeAuthenticationRequired:   http.StatusUnauthorized,
	amtp.CodeForbidden:                http.StatusForbidden,
	amtp.CodeNotFound:                 http.StatusNotFound,
	amtp.CodeMethodNotAllowed:         http.StatusMethodNotAllowed,
	amtp.CodeSignatureInvalid:         http.StatusForbidden,
	amtp.CodeLocalSenderAuthRequired:  http.StatusUnauthorized,
	amtp.CodeSenderCredentialMismatch: http.StatusForbidden,
	amtp.CodeSignatureRequired:        http.StatusForbidden,
	amtp.CodeSignatureKeyUnavailable:  http.StatusServiceUnavailable,
	amtp.CodePolicyDenied:             http.StatusForbidden,
}

// statusOf is the status an AMTP error code is answered with; a code
// without one (a peer's, say) is an internal error.
func statusOf(c amtp.Code) int {
	if s, ok := codeStatus[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// acceptStatus: a submission the recipient answered synchronously is
// 200 with its reply; anything else accepted is 202.
func acceptStatus(o gateway.AcceptOutcome) int {
	if o == gateway.OutcomeReplied {
		return http.StatusOK
	}
	return http.StatusAccepted
}
