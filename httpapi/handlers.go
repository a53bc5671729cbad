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
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var in accountBody
	if err := decode(body, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	idem, done := s.idempotency(w, r, p, body, renderAccount)
	if done {
		return
	}
	v, err := s.Engine.PutAccount(r.Context(), engine.PutAccountParams{ID: r.PathValue("id"), Plan: in.Plan, Timezone: in.Timezone, Idem: idem})
	s.respond(w, r, v, err, renderAccount)
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
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var in grantBody
	if err := decode(body, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if in.Source == "" {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "source is required (purchase, promo or admin)"))
		return
	}
	if in.Reference != "" && !ledger.ValidID(in.Reference, 255) {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "reference must be 1-255 characters of letters, digits, '_', '-', '.', ':'"))
		return
	}
	gp := ledger.GrantParams{Source: in.Source, AmountCredits: in.Amount, Reference: in.Reference}
	if in.ExpiresAt != nil {
		gp.ExpiresAt = in.ExpiresAt.UTC().Truncate(time.Microsecond)
	}
	idem, done := s.idempotency(w, r, p, body, renderGrant)
	if done {
		return
	}
	v, err := s.Engine.Grant(r.Context(), engine.GrantParams{AccountID: r.PathValue("id"), GrantParams: gp, Idem: idem})
	s.respond(w, r, v, err, renderGrant)
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
	return func(v any) (int, []byte) { return status, mustJSON(v.(*ledger.Hold)) }
}

func (s *Server) postHold(w http.ResponseWriter, r *http.Request, p Principal) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var in holdBody
	if err := decode(body, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if in.AccountID == "" || in.Action == "" {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "account_id and action are required"))
		return
	}
	rp := ledger.ReserveParams{Action: in.Action, Quantity: 1}
	if in.Quantity != nil {
		rp.Quantity = *in.Quantity
	}
	if in.TTLSeconds != nil {
		if *in.TTLSeconds < 1 {
			s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "ttl_seconds must be between 1 and %d", s.cfg.Limits.HoldTTLSecondsMax))
			return
		}
		rp.TTLSeconds = *in.TTLSeconds
	}
	render := renderHold(http.StatusCreated)
	idem, done := s.idempotency(w, r, p, body, render)
	if done {
		return
	}
	v, err := s.Engine.Reserve(r.Context(), engine.ReserveParams{AccountID: in.AccountID, ReserveParams: rp, Idem: idem})
	s.respond(w, r, v, err, render)
}

func (s *Server) getHold(w http.ResponseWriter, r *http.Request, p Principal) {
	h, err := s.Engine.GetHold(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
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

func (s *Server) holdAction(w http.ResponseWriter, r *http.Request, p Principal, in any, params func() (engine.HoldParams, error),
	call func(*engine.Engine) func(ctx contextT, p engine.HoldParams) (any, error)) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := decode(body, in); err != nil {
		s.writeError(w, r, err)
		return
	}
	hp, err := params()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hp.HoldID = r.PathValue("id")
	render := renderHold(http.StatusOK)
	idem, done := s.idempotency(w, r, p, body, render)
	if done {
		return
	}
	hp.Idem = idem
	v, err := call(s.Engine)(r.Context(), hp)
	s.respond(w, r, v, err, render)
}

func (s *Server) captureHold(w http.ResponseWriter, r *http.Request, p Principal) {
	var in captureBody
	s.holdAction(w, r, p, &in, func() (engine.HoldParams, error) {
		if in.Quantity == nil {
			return engine.HoldParams{}, ledger.Errorf(ledger.EInvalid, "quantity (the number of outputs delivered) is required")
		}
		return engine.HoldParams{Quantity: *in.Quantity}, nil
	}, func(e *engine.Engine) func(contextT, engine.HoldParams) (any, error) { return e.Capture })
}

func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request, p Principal) {
	var in releaseBody
	s.holdAction(w, r, p, &in, func() (engine.HoldParams, error) {
		if in.Reason == "" {
			return engine.HoldParams{}, ledger.Errorf(ledger.EInvalid, "reason is required: failed, cancelled, error or interrupted")
		}
		return engine.HoldParams{Reason: in.Reason}, nil
	}, func(e *engine.Engine) func(contextT, engine.HoldParams) (any, error) { return e.Release })
}

func (s *Server) extendHold(w http.ResponseWriter, r *http.Request, p Principal) {
	var in extendBody
	s.holdAction(w, r, p, &in, func() (engine.HoldParams, error) {
		if in.TTLSeconds == nil {
			return engine.HoldParams{}, ledger.Errorf(ledger.EInvalid, "ttl_seconds is required")
		}
		return engine.HoldParams{TTLSeconds: *in.TTLSeconds}, nil
	}, func(e *engine.Engine) func(contextT, engine.HoldParams) (any, error) { return e.Extend })
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
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": s.cfg.Prices, "sources": sources})
}

type testClockBody struct {
	AdvanceSeconds *int64     `json:"advance_seconds"`
	Now            *time.Time `json:"now"`
}

func (s *Server) getTestClock(w http.ResponseWriter, r *http.Request, p Principal) {
	writeJSON(w, http.StatusOK, map[string]any{"now": s.TestClock.Now()})
}

func (s *Server) postTestClock(w http.ResponseWriter, r *http.Request, p Principal) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var in testClockBody
	if err := decode(body, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
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
	writeJSON(w, http.StatusOK, map[string]any{"now": now})
}

type contextT = context.Context
