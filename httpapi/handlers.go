package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/ledger"
)

type accountBody struct {
	Plan                ledger.Plan `json:"plan"`
	Timezone            string      `json:"timezone"`
	LowBalanceThreshold *int64      `json:"low_balance_threshold"`
}

func (s *Server) putAccount(w http.ResponseWriter, r *http.Request, p Principal) {
	var in accountBody
	body, ok := s.readJSON(w, r, &in)
	if !ok {
		return
	}
	out, err := s.App.PutAccount(r.Context(), app.PutAccountRequest{ID: r.PathValue("id"), Plan: in.Plan, Timezone: in.Timezone,
		LowBalanceThreshold: in.LowBalanceThreshold, Idem: idemKey(r, p, body)})
	respond(s, w, r, out, err)
}

// idemKey is the Idempotency-Key of a mutating request (nil without
// one): the principal's key for this method, path and body.
func idemKey(r *http.Request, p Principal, body []byte) *app.Idempotency {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return nil
	}
	return &app.Idempotency{Principal: p.Kind + ":" + p.ID, Key: key,
		Fingerprint: r.Method + " " + r.URL.Path + " " + sha256Hex(body), Field: "Idempotency-Key"}
}

// respond writes the outcome of a write: its response, which an
// idempotency key stored (Idempotent-Replayed when it was replayed).
func respond[T any](s *Server, w http.ResponseWriter, r *http.Request, out app.Outcome[T], err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if out.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeRaw(w, out.Status, out.Body)
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request, p Principal) {
	a, err := s.App.Account(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) getBalance(w http.ResponseWriter, r *http.Request, p Principal) {
	b, err := s.App.Balance(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// listResponse is a page of a list, Stripe style.
type listResponse struct {
	Object     string `json:"object"`
	Data       any    `json:"data"`
	HasMore    bool   `json:"has_more"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// writePage answers with a page of a list.
func writePage[T any](s *Server, w http.ResponseWriter, r *http.Request, pg app.Page[T], err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := listResponse{Object: "list", Data: pg.Items, HasMore: pg.Next != 0}
	if pg.Next != 0 {
		resp.NextCursor = strconv.FormatInt(pg.Next, 10)
	}
	writeJSON(w, http.StatusOK, resp)
}

// pageRequest reads ?limit= and ?cursor= for the list of the account in
// the path.
func (s *Server) pageRequest(r *http.Request) (app.PageRequest, error) {
	q := r.URL.Query()
	pr := app.PageRequest{AccountID: r.PathValue("id")}
	if v := q.Get("limit"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > s.cfg.Limits.PageSizeMax {
			return pr, ledger.Errorf(ledger.EInvalid, "limit must be an integer between 1 and %d", s.cfg.Limits.PageSizeMax)
		}
		pr.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 1 {
			return pr, ledger.Errorf(ledger.EInvalid, "cursor is not valid; pass next_cursor from the previous page")
		}
		pr.Cursor = n
	}
	return pr, nil
}

func (s *Server) listEntries(w http.ResponseWriter, r *http.Request, p Principal) {
	pr, err := s.pageRequest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pg, err := s.App.Entries(r.Context(), pr)
	writePage(s, w, r, pg, err)
}

type grantBody struct {
	Amount    int64         `json:"amount"`
	Source    ledger.Source `json:"source"`
	ExpiresAt *time.Time    `json:"expires_at"`
	Reference string        `json:"reference"`
}

func (in grantBody) request(accountID string, idem *app.Idempotency) app.GrantRequest {
	return app.GrantRequest{AccountID: accountID, Amount: in.Amount, Source: in.Source, ExpiresAt: in.ExpiresAt, Reference: in.Reference, Idem: idem}
}

func (s *Server) postGrant(w http.ResponseWriter, r *http.Request, p Principal) {
	var in grantBody
	body, ok := s.readJSON(w, r, &in)
	if !ok {
		return
	}
	out, err := s.App.Grant(r.Context(), in.request(r.PathValue("id"), idemKey(r, p, body)))
	respond(s, w, r, out, err)
}

func (s *Server) getQuote(w http.ResponseWriter, r *http.Request, p Principal) {
	q := r.URL.Query()
	qr := app.QuoteRequest{AccountID: r.PathValue("id"), Action: q.Get("action"), Quantity: 1}
	if qr.Action == "" {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "action is required"))
		return
	}
	if v := q.Get("quantity"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "quantity must be an integer"))
			return
		}
		qr.Quantity = n
	}
	quote, err := s.App.Quote(r.Context(), qr)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, quote)
}

type holdBody struct {
	AccountID  string `json:"account_id"`
	Action     string `json:"action"`
	Quantity   *int64 `json:"quantity"`
	TTLSeconds *int64 `json:"ttl_seconds"`
}

func (in *holdBody) request(idem *app.Idempotency) app.ReserveRequest {
	return app.ReserveRequest{AccountID: in.AccountID, Action: in.Action, Quantity: in.Quantity, TTLSeconds: in.TTLSeconds, Idem: idem}
}

func (s *Server) postHold(w http.ResponseWriter, r *http.Request, p Principal) {
	var in holdBody
	body, ok := s.readJSON(w, r, &in)
	if !ok {
		return
	}
	out, err := s.App.Reserve(r.Context(), in.request(idemKey(r, p, body)))
	respond(s, w, r, out, err)
}

func (s *Server) getHold(w http.ResponseWriter, r *http.Request, p Principal) {
	h, err := s.App.Hold(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &h)
}

type captureBody struct {
	Quantity *int64 `json:"quantity"`
}

type releaseBody struct {
	Reason string `json:"reason"`
}

type extendBody struct {
	TTLSeconds *int64 `json:"ttl_seconds"`
}

func (s *Server) captureHold(w http.ResponseWriter, r *http.Request, p Principal) {
	var in captureBody
	body, ok := s.readJSON(w, r, &in)
	if !ok {
		return
	}
	out, err := s.App.Capture(r.Context(), app.CaptureRequest{HoldID: r.PathValue("id"), Quantity: in.Quantity, Idem: idemKey(r, p, body)})
	respond(s, w, r, out, err)
}

func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request, p Principal) {
	var in releaseBody
	body, ok := s.readJSON(w, r, &in)
	if !ok {
		return
	}
	out, err := s.App.Release(r.Context(), app.ReleaseRequest{HoldID: r.PathValue("id"), Reason: in.Reason, Idem: idemKey(r, p, body)})
	respond(s, w, r, out, err)
}

func (s *Server) extendHold(w http.ResponseWriter, r *http.Request, p Principal) {
	var in extendBody
	body, ok := s.readJSON(w, r, &in)
	if !ok {
		return
	}
	out, err := s.App.Extend(r.Context(), app.ExtendRequest{HoldID: r.PathValue("id"), TTLSeconds: in.TTLSeconds, Idem: idemKey(r, p, body)})
	respond(s, w, r, out, err)
}

func (s *Server) getPrices(w http.ResponseWriter, r *http.Request, p Principal) {
	pl := s.App.Prices(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": pl.Prices, "sources": pl.Sources})
}

type testClockBody struct {
	AdvanceSeconds *int64     `json:"advance_seconds"`
	Now            *time.Time `json:"now"`
}

func (s *Server) getTestClock(w http.ResponseWriter, r *http.Request, p Principal) {
	writeJSON(w, http.StatusOK, map[string]any{"now": s.TestClock.Now()})
}

func (s *Server) postTestClock(w http.ResponseWriter, r *http.Request, p Principal) {
	var in testClockBody
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	var err error
	switch {
	case (in.AdvanceSeconds == nil) == (in.Now == nil):
		err = ledger.Errorf(ledger.EInvalid, "give exactly one of advance_seconds or now")
	case in.AdvanceSeconds != nil:
		if *in.AdvanceSeconds < 0 || *in.AdvanceSeconds > 10*365*86400 {
			err = ledger.Errorf(ledger.EInvalid, "advance_seconds must be between 0 and %d", 10*365*86400)
		} else {
			err = s.TestClock.Advance(time.Duration(*in.AdvanceSeconds) * time.Second)
		}
	default:
		err = s.TestClock.Set(*in.Now)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.TestClock.Now()
	s.App.Sweep(r.Context(), now)
	writeJSON(w, http.StatusOK, map[string]any{"now": now})
}
