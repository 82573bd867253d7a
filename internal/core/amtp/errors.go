// Package amtp is the Agent Message Transfer Protocol as Agentry speaks it:
// the message model, addresses, identifiers, validation, canonical JSON and
// the error vocabulary. It imports nothing else of Agentry's and does no I/O.
package amtp

import (
	"errors"
	"fmt"
	"slices"
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

// codes is every code above, for those that must answer each one (the
// HTTP handler maps each to a status; a code added without its status is
// a test failure there, not a silent 500).
var codes = []Code{
	CodeInvalidMessageFormat, CodeUnsupportedVersion, CodeSchemaValidationFailed,
	CodeMessageTooLarge, CodeInvalidRecipient,
	CodeRecipientUnavailable, CodeRecipientNotFound, CodeAuthenticationFailed,
	CodeRateLimitExceeded, CodeTemporaryFailure,
	CodeWorkflowTimeout, CodeRequiredResponseMissing, CodeCoordinationFailed,
	CodeSignatureInvalid, CodeLocalSenderAuthRequired, CodeSenderCredentialMismatch,
	CodeSignatureRequired, CodeSignatureKeyUnavailable,
	CodeAgentUnknown, CodeIdempotencyConflict, CodeAuthenticationRequired,
	CodeForbidden, CodeNotFound, CodeMethodNotAllowed, CodePolicyDenied,
}

// Codes returns every code this package declares, in declaration order.
func Codes() []Code { return slices.Clone(codes) }

// Known reports whether c is one of the declared codes.
func (c Code) Known() bool { return slices.Contains(codes, c) }

// Error is an AMTP error: a code, a human message and optional structured
// details. How a code is answered (an HTTP status, say) is the transport's
// decision, not the protocol's.
type Error struct {
	Code    Code
	Message string
	Details map[string]any
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds an Error.
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
