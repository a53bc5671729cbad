// Package httpx holds the HTTP helpers the edges (httpapi, web, billing)
// share: a ServeMux that lists its routes, routes an edge hands to the
// server that mounts it, JSON and error writing through the application
// layer's one code→status table (app.Status), Retry-After, the client's
// address behind trusted proxies, and the Server-Sent Events writer of an
// app.Subscription.
package httpx

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/ledger"
)

// RouteMux is a ServeMux that remembers the patterns registered on it, so
// that a server can list its routes (the authorization matrix test checks
// that each has a row).
type RouteMux struct {
	*http.ServeMux
	patterns []string
}

// NewRouteMux returns an empty RouteMux.
func NewRouteMux() *RouteMux { return &RouteMux{ServeMux: http.NewServeMux()} }

// Handle registers h for pattern, as http.ServeMux.Handle does.
func (m *RouteMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

// HandleFunc registers h for pattern, as http.ServeMux.HandleFunc does.
func (m *RouteMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// Patterns lists the registered patterns in order.
func (m *RouteMux) Patterns() []string { return slices.Clone(m.patterns) }

// Who may call a Route.
const (
	// AuthPublic: no credentials (the handler checks its own, e.g. a
	// webhook's signature).
	AuthPublic = "public"
	// AuthUser: the admin key or any user token.
	AuthUser = "user"
	// AuthOwn: the admin key, or the user token of the account named by
	// the path's {id}.
	AuthOwn = "own"
)

// Route is one HTTP route an edge offers for the API server to mount with
// its authentication, e.g. billing's.
type Route struct {
	Pattern string // net/http ServeMux pattern
	Auth    string // AuthPublic, AuthUser or AuthOwn
	Handler http.HandlerFunc
}

// RouteProvider is an edge whose routes the API server mounts.
type RouteProvider interface {
	Routes() []Route
}

// IsHTTPS reports whether the client reached us over TLS (directly or
// through a proxy that says so): session cookies are Secure then.
func IsHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// SetRetryAfter sets the Retry-After header of an error that says when to
// retry (Details["retry_after_seconds"]): too_many_requests, or
// unavailable for a job refused because the lease queue is full.
func SetRetryAfter(w http.ResponseWriter, err error) {
	var e *ledger.Error
	if errors.As(err, &e) {
		if secs, ok := e.Details["retry_after_seconds"].(int64); ok {
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		}
	}
}

// StatusOf is the HTTP status of an error (app.Status of its code).
func StatusOf(err error) int { return app.Status(ledger.ErrorCode(err)) }

// WriteJSON writes v as a JSON body with a status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":"internal","message":"internal error"}}`, http.StatusInternalServerError)
		return
	}
	WriteRaw(w, status, b)
}

// newline ends every JSON body; a variable, as []byte("\n") passed to
// Write would allocate on every response.
var newline = []byte("\n")

// WriteRaw writes an encoded JSON body with a status.
func WriteRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write(newline)
}

// ErrorBody renders an error as {"error": {"code", "message", ...details}}
// with its status.
func ErrorBody(err error) (int, map[string]any) {
	code := ledger.ErrorCode(err)
	obj := map[string]any{"code": code, "message": ledger.ErrorMessage(err)}
	var e *ledger.Error
	if errors.As(err, &e) {
		for k, v := range e.Details {
			if k != "code" && k != "message" {
				obj[k] = v
			}
		}
	}
	return app.Status(code), map[string]any{"error": obj}
}

// WriteError answers with an error as JSON (ErrorBody); a 5xx is logged.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, body := ErrorBody(err)
	SetRetryAfter(w, err)
	if status >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	WriteJSON(w, status, body)
}

// ServeAsset streams an asset's bytes (as an attachment with ?download=1).
// Downloads never depend on the balance: existing results stay
// accessible at zero credits. The caller must have checked access.
func ServeAsset(w http.ResponseWriter, r *http.Request, svc *app.Service, log *slog.Logger, a *ledger.Asset) {
	f, err := svc.OpenAsset(a)
	if err != nil {
		WriteError(w, r, log, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", a.ContentType)
	w.Header().Set("ETag", `"`+a.SHA256+`"`)
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("download") != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+a.ID+extFor(a.ContentType)+`"`)
	}
	http.ServeContent(w, r, "", a.CreatedAt, f)
}

func extFor(ct string) string {
	switch ct {
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "image/webp":
		return ".webp"
	}
	return ""
}
