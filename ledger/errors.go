package ledger

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to exactly one HTTP status, in the one table of
// package app (app.Status).
const (
	EInvalid             = "invalid_request"
	EUnauthenticated     = "unauthenticated"
	EForbidden           = "forbidden"
	ENotFound            = "not_found"
	EInsufficient        = "insufficient_credits"
	EConflict            = "conflict"
	EIdempotencyMismatch = "idempotency_mismatch"
	EQuotaExceeded       = "quota_exceeded"
	EUnavailable         = "unavailable"
	EInternal            = "internal"
	// ETooLarge: a request body or an upload over its limit.
	ETooLarge = "request_too_large"
	// EMethodNotAllowed: a known path asked with another method.
	EMethodNotAllowed = "method_not_allowed"
	// ETooMany: a rate limit or a bound on open streams refused the
	// request; Details may carry retry_after_seconds.
	ETooMany = "too_many_requests"
)

// Error is the one error type users see. Details are extra fields merged
// into the JSON error object (for example required and available credits).
type Error struct {
	Code    string
	Message string
	Details map[string]any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of an *Error in err's chain, or EInternal.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the user-facing message; internal errors are hidden.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrNotFound is returned by stores for missing rows; callers wrap it.
var ErrNotFound = &Error{Code: ENotFound, Message: "not found"}

// ErrBadData marks a store error that the data written caused, not the
// store itself: a value or a constraint the store refused (on PostgreSQL,
// SQLSTATE classes 22 and 23, such as text holding a NUL byte or invalid
// UTF-8). A store wraps it next to the *Error that tells the caller what
// was wrong; the engine then answers only the operation whose data it is
// and commits the rest of its batch. Any other store error is a failure of
// the store.
var ErrBadData = errors.New("the store refused the data written")

// InvariantError is a broken invariant: a bug, never a user error.
type InvariantError struct{ Msg string }

func (e *InvariantError) Error() string { return "invariant violated: " + e.Msg }

// invariantf panics with an InvariantError. Invariants are checked before
// writes; a violation must stop loudly rather than persist bad money state.
// Callers test the invariant themselves and call invariantf only when it
// is broken, so that its arguments are built (and allocated) only then:
// the checks run on every operation.
func invariantf(format string, args ...any) {
	panic(&InvariantError{Msg: fmt.Sprintf(format, args...)})
}
