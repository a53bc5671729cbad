package app

import (
	"net/http"

	"github.com/creditd/creditd/ledger"
)

// statusOf is the one table mapping error codes to HTTP statuses; every
// edge (httpapi, web, billing) answers through Status.
var statusOf = map[string]int{
	ledger.EInvalid:             http.StatusBadRequest,
	ledger.EUnauthenticated:     http.StatusUnauthorized,
	ledger.EInsufficient:        http.StatusPaymentRequired,
	ledger.EForbidden:           http.StatusForbidden,
	ledger.ENotFound:            http.StatusNotFound,
	ledger.EMethodNotAllowed:    http.StatusMethodNotAllowed,
	ledger.EConflict:            http.StatusConflict,
	ledger.ETooLarge:            http.StatusRequestEntityTooLarge,
	ledger.EIdempotencyMismatch: http.StatusUnprocessableEntity,
	ledger.EQuotaExceeded:       http.StatusForbidden,
	ledger.ETooMany:             http.StatusTooManyRequests,
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
