// Package amtp is the Agent Message Transfer Protocol as Agentry speaks it:
// the message model, addresses, identifiers, validation, canonical JSON and
// the error vocabulary. It imports nothing else of Agentry's and does no I/O.
package amtp

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is an AMTP error code (draft §13.1 plus Agentry's additions).
type Code string

// Protocol errors (draft §13.1.1).
const (
	CodeInvalidMessageFormat   Code = "INVALID_MESSAGE_FORMAT"
	CodeUnsupportedVersion     Code = "UNSUPPORTED_VERSION"
	CodeSchemaValidationFailed Code = "SCHEMA_VALIDATION_FAILED"
	CodeMessageTooLarge        Code = "MESSAGE_TOO_LARGE"
	CodeInvalidRecipient       Code = "INVALID_RECIPIENT"
)

// Delivery errors (draft §13.1.2).
const (
	CodeRecipientUnavailable Code = "RECIPIENT_UNAVAILABLE"
	CodeRecipientNotFound    Code = "RECIPIENT_NOT_FOUND"
	CodeAuthenticationFailed Code = "AUTHENTICATION_FAILED"
	CodeRateLimitExceeded    Code = "RATE_LIMIT_EXCEEDED"
	CodeTemporaryFailure     Code = "TEMPORARY_FAILURE"
)

// Coordination errors (draft §13.1.3).
const (
	CodeWorkflowTimeout         Code = "WORKFLOW_TIMEOUT"
	CodeRequiredResponseMissing Code = "REQUIRED_RESPONSE_MISSING"
	CodeCoordinationFailed      Code = "COORDINATION_FAILED"
)

// Sender verification errors (draft §13.1.4).
const (
	CodeSignatureInvalid         Code = "SIGNATURE_INVALID"
	CodeLocalSenderAuthRequired  Code = "LOCAL_SENDER_AUTH_REQUIRED"
	CodeSenderCredentialMismatch Code = "SENDER_CREDENTIAL_MISMATCH"
	CodeSignatureRequired        Code = "SIGNATURE_REQUIRED"
	CodeSignatureKeyUnavailable  Code = "SIGNATURE_KEY_UNAVAILABLE"
)

// Agentry's additions (shared/PROTOCOL.md "Errors").
const (
	CodeAgentUnknown           Code = "AGENT_UNKNOWN"
	CodeIdempotencyConflict    Code = "IDEMPOTENCY_CONFLICT"
	CodeAuthenticationRequired Code = "AUTHENTICATION_REQUIRED"
	CodeForbidden              Code = "FORBIDDEN"
	CodeNotFound               Code = "NOT_FOUND"
	CodeMethodNotAllowed       Code = "METHOD_NOT_ALLOWED"
	CodePolicyDenied           Code = "POLICY_DENIED"
)

// defaultStatus is the HTTP status an error code answers with unless the
// Error overrides it (an internal error is TEMPORARY_FAILURE with 500).
var defaultStatus = map[Code]int{
	CodeInvalidMessageFormat:     http.StatusBadRequest,
	CodeUnsupportedVersion:       http.StatusBadRequest,
	CodeSchemaValidationFailed:   http.StatusBadRequest,
	CodeMessageTooLarge:          http.StatusRequestEntityTooLarge,
	CodeInvalidRecipient:         http.StatusBadRequest,
	CodeRecipientUnavailable:     http.StatusServiceUnavailable,
	CodeRecipientNotFound:        http.StatusNotFound,
	CodeAuthenticationFailed:     http.StatusUnauthorized,
	CodeRateLimitExceeded:        http.StatusTooManyRequests,
	CodeTemporaryFailure:         http.StatusServiceUnavailable,
	CodeWorkflowTimeout:          http.StatusGatewayTimeout,
	CodeRequiredResponseMissing:  http.StatusBadRequest,
	CodeCoordinationFailed:       http.StatusBadRequest,
	CodeAgentUnknown:             http.StatusBadRequest,
	CodeIdempotencyConflict:      http.StatusConflict,
	CodeAuthenticationRequired:   http.StatusUnauthorized,
	CodeForbidden:                http.StatusForbidden,
	CodeNotFound:                 http.StatusNotFound,
	CodeMethodNotAllowed:         http.StatusMethodNotAllowed,
	CodeSignatureInvalid:         http.StatusForbidden,
	CodeLocalSenderAuthRequired:  http.StatusUnauthorized,
	CodeSenderCredentialMismatch: http.StatusForbidden,
	CodeSignatureRequired:        http.StatusForbidden,
	CodeSignatureKeyUnavailable:  http.StatusServiceUnavailable,
	CodePolicyDenied:             http.StatusForbidden,
}

// Error is an AMTP error: a code, a human message, optional structured
// details and the HTTP status it is answered with.
type Error struct {
	Code    Code
	Message string
	Details map[string]any
	Status  int
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// HTTPStatus is the status code to answer with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	if s, ok := defaultStatus[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Errorf builds an Error with the code's default status.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithDetail returns e with one more detail set. It mutates e, which is
// always freshly built by Errorf at the call site.
func (e *Error) WithDetail(key string, value any) *Error {
	if e.Details == nil {
		e.Details = make(map[string]any, 2)
	}
	e.Details[key] = value
	return e
}

// WithStatus overrides the HTTP status.
func (e *Error) WithStatus(status int) *Error {
	e.Status = status
	return e
}

// FieldError is the usual INVALID_MESSAGE_FORMAT with details.field.
func FieldError(field, format string, args ...any) *Error {
	return Errorf(CodeInvalidMessageFormat, format, args...).WithDetail("field", field)
}

// AsError extracts an *Error from err's chain. errors.AsType rather than
// errors.As: the target of As escapes, which cost an allocation per call,
// and IsCode runs for every member of every message parsed.
func AsError(err error) (*Error, bool) {
	return errors.AsType[*Error](err)
}

// IsCode reports whether err carries the given AMTP code.
func IsCode(err error, code Code) bool {
	e, ok := AsError(err)
	return ok && e.Code == code
}
