package app

import (
	"net/http"

	"github.com/creditd/creditd/ledger"
)

// Error codes of the edges' own refusals (the ledger's are in package
// ledger).
const (
	// ETooMany is a rate limit or a cap refusing a request (429).
	ETooMany = "too_many_requests"
	// ETooLarge is a request body over its limit (413).
	ETooLarge = "request_too_large"
	// EMethodNotAllowed is a known path with another method (405).
	EMethodNotAllowed = "method_not_allowed"
)

// statusOf is the one table mapping error codes to HTTP statuses; every
// edge (httpapi, web, billing) answers through Status.
var statusOf = map[string]int{
	ledger.EInvalid:             http.StatusBadRequest,
	ledger.EUnauthenticated:     http.StatusUnauthorized,
	ledger.EInsufficient:        http.StatusPaymentRequired,
	ledger.EForbidden:           http.StatusForbidden,
	ledger.ENotFound:            http.StatusNotFound,
	ledger.EConflict:            http.StatusConflict,
	ledger.EIdempotencyMismatch: http.StatusUnprocessableEntity,
	ledger.EQuotaExceeded:       http.StatusForbidden,
	EMethodNotAllowed:           http.StatusMethodNotAllowed,
	ETooLarge:                   http.StatusRequestEntityTooLarge,
	ETooMany:                    http.StatusTooManyRequests,
	ledger.EInternal:            http.StatusInternalServerError,
	ledger.EUnavailable:         http.StatusServiceUnavailable,
}

// Status returns the HTTP status for an error code (500 for an unknown
// one).
func Status(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}
