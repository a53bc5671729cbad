package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

type accountBody struct {
	Plan     ledger.Plan `json:"plan"`
	Timezone string      `json:"timezone"`
}

func renderAccount(v any) (int, []byte) {
	res := v.(*engine.AccountResult)
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	return status, mustJSON(res.Account)
}

func (s *Server) putAccount(w http.ResponseWriter, r *http.Request, p Principal) {
	var in accountBody
	s.serveWrite(w, r, p, &in, func() (write, error) {
		return write{render: renderAccount, call: func(ctx context.Context, idem *engine.Idempotency) (any, error) {
			return s.Engine.PutAccount(ctx, engine.PutAccountParams{ID: r.PathValue("id"), Plan: in.Plan, Timezone: in.Timezone, Idem: idem})
		}}, nil
	})
}

// write is one validated mutating operation: the engine call, given the
// operation's idempotency (nil without a key), and how its result renders.
// The single-operation routes and POST /v1/batch build the same writes
// from the same bodies (see batch.go).
type write struct {
	render func(any) (int, []byte)
	call   func(ctx context.Context, idem *engine.Idempotency) (any, error)
}

// serveWrite runs one write from a request: it reads and decodes the body
// into in, builds the write (build sees the decoded in), applies the
// Idempotency-Key header and answers with the outcome.
func (s *Server) serveWrite(w http.ResponseWriter, r *http.Request, p Principal, in any, build func() (write, error)) {
	body, ok := s.readJSON(w, r, in)
	if !ok {
		return
	}
	wr, err := build()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	idem, done := s.idempotency(w, r, p, body, wr.render)
	if done {
		return
	}
	v, err := wr.call(r.Context(), idem)
	s.respond(w, r, v, err, wr.render)
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request, p Principal) {
	a, err := s.Engine.GetAccount(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) getBalance(w http.ResponseWriter, r *http.Request, p Principal) {
	b, err := s.Engine.Balance(r.Context(), r.PathValue("id"))
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

func (s *Server) pageParams(r *http.Request) (cursor int64, limit int, err error) {
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > s.cfg.Limits.PageSizeMax {
			return 0, 0, ledger.Errorf(ledger.EInvalid, "limit must be an integer between 1 and %d", s.cfg.Limits.PageSizeMax)
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 1 {
			return 0, 0, ledger.Errorf(ledger.EInvalid, "cursor is not valid; pass next_cursor from the previous page")
		}
		cursor = n
	}
	return cursor, limit, nil
}

func (s *Server) listEntries(w http.ResponseWriter, r *http.Request, p Principal) {
	cursor, limit, err := s.pageParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	es, next, err := s.Engine.ListEntries(r.Context(), r.PathValue("id"), cursor, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := listResponse{Object: "list", Data: es, HasMore: next != 0}
	if next != 0 {
		resp.NextCursor = strconv.FormatInt(next, 10)
	}
	writeJSON(w, http.StatusOK, resp)
}

type grantBody struct {
	Amount    int64         `json:"amount"`
	Source    ledger.Source `json:"source"`
	ExpiresAt *time.Time    `json:"expires_at"`
	Reference string        `json:"reference"`
}

func renderGrant(v any) (int, []byte) {
	res := v.(*engine.GrantResult)
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	return status, mustJSON(res.Grant)
}

func (s *Server) postGrant(w http.ResponseWriter, r *http.Request, p Principal) {
	var in grantBody
	s.serveWrite(w, r, p, &in, func() (write, error) { return s.grantWrite(r.PathValue("id"), in) })
}

// grantWrite validates a grant body for an account.
func (s *Server) grantWrite(accountID string, in grantBody) (write, error) {
	if accountID == "" {
		return write{}, ledger.Errorf(ledger.EInvalid, "account_id is required")
	}
	if in.Source == "" {
		return write{}, ledger.Errorf(ledger.EInvalid, "source is required (purchase, promo or admin)")
	}
	if in.Reference != "" {
		if err := ledger.CheckReference(in.Reference); err != nil {
			return write{}, err
		}
	}
	gp := ledger.GrantParams{Source: in.Source, AmountCredits: in.Amount, Reference: in.Reference}
	if in.ExpiresAt != nil {
		gp.ExpiresAt = in.ExpiresAt.UTC().Truncate(time.Microsecond)
	}
	return write{render: renderGrant, call: func(ctx context.Context, idem *engine.Idempotency) (any, error) {
		return s.Engine.Grant(ctx, engine.GrantParams{AccountID: accountID, GrantParams: gp, Idem: idem})
	}}, nil
}

func (s *Server) getQuote(w http.ResponseWriter, r *http.Request, p Principal) {
	q := r.URL.Query()
	action := q.Get("action")
	if action == "" {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "action is required"))
		return
	}
	qty := int64(1)
	if v := q.Get("quantity"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "quantity must be an integer"))
			return
		}
		qty = n
	}
	quote, err := s.Engine.Quote(r.Context(), r.PathValue("id"), action, qty)
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

func renderHold(status int) func(any) (int, []byte) {
	return func(v any) (int, []byte) { return status, mustHoldJSON(v.(*ledger.Hold)) }
}

func (s *Server) postHold(w http.ResponseWriter, r *http.Request, p Principal) {
	var in holdBody
	s.serveWrite(w, r, p, &in, func() (write, error) { return s.reserveWrite(in) })
}

// reserveWrite validates a hold body.
func (s *Server) reserveWrite(in holdBody) (write, error) {
	if in.AccountID == "" || in.Action == "" {
		return write{}, ledger.Errorf(ledger.EInvalid, "account_id and action are required")
	}
	rp := ledger.ReserveParams{Action: in.Action, Quantity: 1}
	if in.Quantity != nil {
		rp.Quantity = *in.Quantity
	}
	if in.TTLSeconds != nil {
		if *in.TTLSeconds < 1 {
			return write{}, ledger.Errorf(ledger.EInvalid, "ttl_seconds must be between 1 and %d", s.cfg.Limits.HoldTTLSecondsMax)
		}
		rp.TTLSeconds = *in.TTLSeconds
	}
	return write{render: renderHold(http.StatusCreated), call: func(ctx context.Context, idem *engine.Idempotency) (any, error) {
		return s.Engine.Reserve(ctx, engine.ReserveParams{AccountID: in.AccountID, ReserveParams: rp, Idem: idem})
	}}, nil
}

func (s *Server) getHold(w http.ResponseWriter, r *http.Request, p Principal) {
	h, err := s.Engine.GetHold(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b, err := holdJSON(&h)
	if err != nil {
		writeJSON(w, http.StatusOK, h) // answers as encoding/json fails: 500
		return
	}
	writeRaw(w, http.StatusOK, b)
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

// holdWrite is a write on an existing hold: call is the engine method
// (Capture, Release or Extend).
func (s *Server) holdWrite(hp engine.HoldParams, call func(context.Context, engine.HoldParams) (any, error)) (write, error) {
	if hp.HoldID == "" {
		return write{}, ledger.Errorf(ledger.EInvalid, "hold_id is required")
	}
	return write{render: renderHold(http.StatusOK), call: func(ctx context.Context, idem *engine.Idempotency) (any, error) {
		hp.Idem = idem
		return call(ctx, hp)
	}}, nil
}

// captureWrite validates a capture body for a hold.
func (s *Server) captureWrite(holdID string, in captureBody) (write, error) {
	if in.Quantity == nil {
		return write{}, ledger.Errorf(ledger.EInvalid, "quantity (the number of outputs delivered) is required")
	}
	return s.holdWrite(engine.HoldParams{HoldID: holdID, Quantity: *in.Quantity}, s.Engine.Capture)
}

// releaseWrite validates a release body for a hold.
func (s *Server) releaseWrite(holdID string, in releaseBody) (write, error) {
	if in.Reason == "" {
		return write{}, ledger.Errorf(ledger.EInvalid, "reason is required: failed, cancelled, error or interrupted")
	}
	return s.holdWrite(engine.HoldParams{HoldID: holdID, Reason: in.Reason}, s.Engine.Release)
}

// extendWrite validates an extend body for a hold.
func (s *Server) extendWrite(holdID string, in extendBody) (write, error) {
	if in.TTLSeconds == nil {
		return write{}, ledger.Errorf(ledger.EInvalid, "ttl_seconds is required")
	}
	return s.holdWrite(engine.HoldParams{HoldID: holdID, TTLSeconds: *in.TTLSeconds}, s.Engine.Extend)
}

func (s *Server) captureHold(w http.ResponseWriter, r *http.Request, p Principal) {
	var in captureBody
	s.serveWrite(w, r, p, &in, func() (write, error) { return s.captureWrite(r.PathValue("id"), in) })
}

func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request, p Principal) {
	var in releaseBody
	s.serveWrite(w, r, p, &in, func() (write, error) { return s.releaseWrite(r.PathValue("id"), in) })
}

func (s *Server) extendHold(w http.ResponseWriter, r *http.Request, p Principal) {
	var in extendBody
	s.serveWrite(w, r, p, &in, func() (write, error) { return s.extendWrite(r.PathValue("id"), in) })
}

func (s *Server) getPrices(w http.ResponseWriter, r *http.Request, p Principal) {
	type source struct {
		Source     ledger.Source     `json:"source"`
		Categories []ledger.Category `json:"pays_for"`
	}
	var sources []source
	for _, sr := range s.cfg.Sources {
		sources = append(sources, source{sr.Source, sr.Categories})
	}
	// available: whether a worker serves the action now (engine.LiveActions).
	type price struct {
		ledger.Price
		Available bool `json:"available"`
	}
	live := s.Engine.LiveActions(r.Context())
	prices := make([]price, 0, len(s.cfg.Prices))
	for _, p := range s.cfg.Prices {
		prices = append(prices, price{p, live[p.Action]})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": prices, "sources": sources})
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
	s.Engine.SweepHolds(r.Context(), now)
	s.Engine.SweepUnservedJobs(r.Context(), now)
	if _, err := s.Engine.SweepStagedOutputs(r.Context()); err != nil {
		// The clock moved; the sweeper tries again on its own.
		s.log.Warn("staged output sweep failed", "err", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"now": now})
}
