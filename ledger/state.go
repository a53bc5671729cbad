package ledger

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"time"
)

// State is everything the rules need about one account: the account, its
// live buckets (remaining or held credits left) in burn-down order, and its
// pending holds. A committed State is immutable; the engine works on a
// Clone and installs it only after the batch that changed it committed.
type State struct {
	Account Account
	Grants  []*Grant         // live buckets, burn-down order
	Holds   map[string]*Hold // pending holds
	Jobs    map[string]*Job  // active (queued or running) jobs
}

// Changes collects what a batch of rule applications changed, for the store.
type Changes struct {
	Accounts map[string]bool
	Grants   map[string]*Grant
	Holds    map[string]*Hold
	Jobs     map[string]*Job
	Entries  []Entry
}

// NewChanges returns an empty change set.
func NewChanges() *Changes {
	return &Changes{Accounts: map[string]bool{}, Grants: map[string]*Grant{}, Holds: map[string]*Hold{}, Jobs: map[string]*Job{}}
}

// Clone returns a copy sharing unchanged grants and holds (copy-on-write).
func (s *State) Clone() *State {
	return &State{Account: s.Account, Grants: slices.Clone(s.Grants), Holds: maps.Clone(s.Holds), Jobs: maps.Clone(s.Jobs)}
}

// grant returns a writable copy of bucket i, recording it as changed.
func (s *State) grant(i int, ch *Changes) *Grant {
	g := s.Grants[i]
	if ch.Grants[g.ID] != g {
		c := *g
		g = &c
		s.Grants[i] = g
		ch.Grants[g.ID] = g
		s.touchAccount(ch)
	}
	return g
}

func (s *State) grantIndex(id string) int {
	for i, g := range s.Grants {
		if g.ID == id {
			return i
		}
	}
	return -1
}

// hold returns a writable copy of a pending hold, recording it as changed.
func (s *State) hold(id string, ch *Changes) *Hold {
	h := s.Holds[id]
	if ch.Holds[id] != h {
		c := *h
		h = &c
		s.Holds[id] = h
		ch.Holds[id] = h
		s.touchAccount(ch)
	}
	return h
}

// Prune drops exhausted buckets and resolved holds from the live state.
func (s *State) Prune() {
	s.Grants = slices.DeleteFunc(s.Grants, func(g *Grant) bool { return g.RemainingCredits == 0 && g.HeldCredits == 0 })
	for id, h := range s.Holds {
		if h.Status != HoldPending {
			delete(s.Holds, id)
		}
	}
	for id, j := range s.Jobs {
		if !j.Status.Active() {
			delete(s.Jobs, id)
		}
	}
}

func (s *State) touchAccount(ch *Changes) { ch.Accounts[s.Account.ID] = true }

func location(tz string) *time.Location {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		// Time zones are validated on input; a stored bad zone is a bug.
		panic(&InvariantError{Msg: "stored time zone " + tz + ": " + err.Error()})
	}
	return loc
}

// ValidTimezone reports whether tz is an IANA time zone name.
func ValidTimezone(tz string) bool {
	if tz == "" || tz == "Local" || len(tz) > TimezoneBytesMax {
		return false
	}
	_, err := time.LoadLocation(tz)
	return err == nil
}

// dayStart returns the first instant of the local day after date (YYYY-MM-DD)
// plus addDays. time.Date normalises the day and resolves a midnight that a
// DST change skips to the first existing instant.
func dayStart(date string, addDays int, loc *time.Location) time.Time {
	d, err := time.Parse(time.DateOnly, date) // the calendar date itself, no zone
	if err != nil {
		invariantf("bad stored date %q", date)
	}
	want := time.Date(d.Year(), d.Month(), d.Day()+addDays, 0, 0, 0, 0, time.UTC)
	t := time.Date(want.Year(), want.Month(), want.Day(), 0, 0, 0, 0, loc)
	if lt := t.In(loc); lt.Day() != want.Day() {
		// Local midnight does not exist (a DST change skips it, as in
		// America/Santiago): time.Date answered 23:00 of the day before.
		// The day starts at the zone transition.
		_, end := t.ZoneBounds()
		t = end
	}
	y, m, dd := t.In(loc).Date()
	if y != want.Year() || m != want.Month() || dd != want.Day() {
		invariantf("start of %s in %s is %s", want.Format(time.DateOnly), loc, t)
	}
	return t.UTC()
}

// NextDailyRefresh returns when the next daily allowance becomes due, or the
// zero time if the account is not on the free plan. It is the later of the
// current bucket's scheduled end and the start of the next local date in the
// account's (possibly changed) time zone, so neither a plan nor a time-zone
// change yields a second allowance on the same day.
func (s *State) NextDailyRefresh(cfg *Config) time.Time {
	a := &s.Account
	if a.Plan != PlanFree || cfg.DailyCredits == 0 {
		return time.Time{}
	}
	if a.DailyLastDate == "" {
		return a.DailyNotBefore
	}
	next := dayStart(a.DailyLastDate, 1, location(a.Timezone))
	if a.DailyNotBefore.After(next) {
		return a.DailyNotBefore
	}
	return next
}

// NeedsTouch reports whether lazy effects are due at now: an expired hold,
// an expired bucket with credits left, or a daily allowance.
func (s *State) NeedsTouch(cfg *Config, now time.Time) bool {
	if s.jobsDue(now) {
		return true
	}
	for _, h := range s.Holds {
		if !now.Before(h.ExpiresAt) {
			return true
		}
	}
	for _, g := range s.Grants {
		if g.Expired(now) && g.RemainingCredits > 0 {
			return true
		}
	}
	if s.Account.Plan == PlanFree && cfg.DailyCredits > 0 && !now.Before(s.NextDailyRefresh(cfg)) {
		return true
	}
	return false
}

// Touch applies the lazy effects due at now, in time order of kind: expired
// holds return their credits, expired buckets expire what is left, and a
// due daily allowance is issued.
func (s *State) Touch(cfg *Config, now time.Time, ch *Changes) {
	s.touchJobs(cfg, now, ch)
	var due []string
	for id, h := range s.Holds {
		if !now.Before(h.ExpiresAt) {
			due = append(due, id)
		}
	}
	slices.Sort(due)
	for _, id := range due {
		s.resolve(now, id, HoldExpired, 0, "ttl", ch)
	}
	if len(due) > 0 {
		s.touchOrphanJobs(now, ch)
	}
	for i := range s.Grants {
		if g := s.Grants[i]; g.Expired(now) && g.RemainingCredits > 0 {
			s.expireGrant(now, i, "expired", ch)
		}
	}
	if s.Account.Plan == PlanFree && cfg.DailyCredits > 0 && !now.Before(s.NextDailyRefresh(cfg)) {
		loc := location(s.Account.Timezone)
		date := now.In(loc).Format(time.DateOnly)
		expires := dayStart(date, 1, loc)
		g := &Grant{
			ID: NewID("grt"), AccountID: s.Account.ID, Source: SourceDaily, Reference: date,
			AmountCredits: cfg.DailyCredits, RemainingCredits: cfg.DailyCredits,
			ExpiresAt: expires, CreatedAt: now,
		}
		s.addGrant(cfg, g, ch)
		s.Account.DailyLastDate = date
		s.Account.DailyNotBefore = expires
		s.touchAccount(ch)
		ch.Entries = append(ch.Entries, Entry{
			AccountID: s.Account.ID, Type: EntryDailyRefresh, AmountCredits: g.AmountCredits,
			Source: SourceDaily, GrantID: g.ID, Reason: date, CreatedAt: now,
			Legs: []Leg{{GrantID: g.ID, From: PartExternal, To: PartRemaining, Credits: g.AmountCredits}},
		})
	}
}

func (s *State) expireGrant(now time.Time, i int, reason string, ch *Changes) {
	g := s.grant(i, ch)
	amt := g.RemainingCredits
	g.RemainingCredits = 0
	g.ExpiredCredits += amt
	g.check()
	s.touchAccount(ch)
	ch.Entries = append(ch.Entries, Entry{
		AccountID: s.Account.ID, Type: EntryExpiry, AmountCredits: amt, Source: g.Source,
		GrantID: g.ID, Reason: reason, CreatedAt: now,
		Legs: []Leg{{GrantID: g.ID, From: PartRemaining, To: PartExpired, Credits: amt}},
	})
}

// less orders buckets for burn-down: soonest expiry first (never-expiring
// last), then by source rank (promotional before paid), then oldest first.
func less(cfg *Config, a, b *Grant) int {
	switch {
	case a.ExpiresAt.IsZero() != b.ExpiresAt.IsZero():
		if a.ExpiresAt.IsZero() {
			return 1
		}
		return -1
	case !a.ExpiresAt.Equal(b.ExpiresAt):
		return a.ExpiresAt.Compare(b.ExpiresAt)
	}
	ra, _ := cfg.SourceRule(a.Source)
	rb, _ := cfg.SourceRule(b.Source)
	if ra.Rank != rb.Rank {
		return ra.Rank - rb.Rank
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	if a.ID < b.ID {
		return -1
	} else if a.ID > b.ID {
		return 1
	}
	return 0
}

func (s *State) addGrant(cfg *Config, g *Grant, ch *Changes) {
	g.check()
	i, _ := slices.BinarySearchFunc(s.Grants, g, func(a, b *Grant) int { return less(cfg, a, b) })
	s.Grants = slices.Insert(s.Grants, i, g)
	ch.Grants[g.ID] = g
	s.touchAccount(ch)
}

// SortGrants restores burn-down order (after loading from a store).
func (s *State) SortGrants(cfg *Config) {
	slices.SortFunc(s.Grants, func(a, b *Grant) int { return less(cfg, a, b) })
}

// totals returns live credits (remaining+held) over all buckets.
func (s *State) totalCredits() int64 {
	var t int64
	for _, g := range s.Grants {
		t += g.RemainingCredits + g.HeldCredits
	}
	return t
}

// Available returns the credits that can pay for cat at now.
func (s *State) Available(cfg *Config, now time.Time, cat Category) int64 {
	var t int64
	for _, g := range s.Grants {
		if !g.Expired(now) && cfg.Pays(g.Source, cat) {
			t += g.RemainingCredits
		}
	}
	return t
}

// NewAccount creates an account's state with its signup grant.
func NewAccount(cfg *Config, now time.Time, id string, plan Plan, tz string, ch *Changes) *State {
	s := &State{Account: Account{ID: id, Plan: plan, Timezone: tz, CreatedAt: now, UpdatedAt: now,
		LowBalanceThreshold: cfg.Alerts.LowBalanceThreshold}, Holds: map[string]*Hold{}, Jobs: map[string]*Job{}}
	s.touchAccount(ch)
	if cfg.SignupCredits > 0 {
		g := &Grant{
			ID: NewID("grt"), AccountID: id, Source: SourceSignup, Reference: "signup",
			AmountCredits: cfg.SignupCredits, RemainingCredits: cfg.SignupCredits, CreatedAt: now,
		}
		s.addGrant(cfg, g, ch)
		ch.Entries = append(ch.Entries, Entry{
			AccountID: id, Type: EntryGrant, AmountCredits: g.AmountCredits, Source: SourceSignup,
			GrantID: g.ID, Reason: "signup", CreatedAt: now,
			Legs: []Leg{{GrantID: g.ID, From: PartExternal, To: PartRemaining, Credits: g.AmountCredits}},
		})
	}
	s.Touch(cfg, now, ch)
	s.InitAlerts(cfg, now)
	return s
}

// UpdateAccount changes plan and/or time zone. Leaving the free plan ends
// the current daily credits at once; a time-zone change takes effect from
// the next refresh. Returns whether anything changed.
func (s *State) UpdateAccount(cfg *Config, now time.Time, plan Plan, tz string, ch *Changes) bool {
	changed := false
	if tz != "" && tz != s.Account.Timezone {
		s.Account.Timezone = tz
		changed = true
	}
	if plan != "" && plan != s.Account.Plan {
		old := s.Account.Plan
		s.Account.Plan = plan
		changed = true
		if old == PlanFree {
			for i := range s.Grants {
				if s.Grants[i].Source == SourceDaily && !s.Grants[i].Expired(now) {
					g := s.grant(i, ch)
					g.ExpiresAt = now
					if g.RemainingCredits > 0 {
						s.expireGrant(now, i, "plan_change", ch)
					}
				}
			}
			s.SortGrants(cfg)
		}
	}
	if changed {
		s.Account.UpdatedAt = now
		s.touchAccount(ch)
		s.Touch(cfg, now, ch)
	}
	return changed
}

// ReserveParams asks for a hold.
type ReserveParams struct {
	Action     string
	Quantity   int64
	TTLSeconds int64 // 0: default
}

func mulChecked(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || (a != 0 && b > math.MaxInt64/a) {
		return 0, false
	}
	return a * b, true
}

// ValidateReserve checks a reserve request without any state.
func ValidateReserve(cfg *Config, p ReserveParams) (Price, error) {
	price, ok := cfg.Price(p.Action)
	if !ok {
		return price, Errorf(EInvalid, "unknown action %q", p.Action)
	}
	if p.Quantity < 1 || p.Quantity > cfg.Limits.HoldQuantityMax {
		return price, Errorf(EInvalid, "quantity must be between 1 and %d", cfg.Limits.HoldQuantityMax)
	}
	if p.TTLSeconds < 0 || p.TTLSeconds > cfg.Limits.HoldTTLSecondsMax {
		return price, Errorf(EInvalid, "ttl_seconds must be between 1 and %d", cfg.Limits.HoldTTLSecondsMax)
	}
	if _, ok := mulChecked(price.UnitCredits, p.Quantity); !ok {
		return price, Errorf(EInvalid, "amount overflows")
	}
	return price, nil
}

// Reserve takes price × quantity from the buckets that may pay, in
// burn-down order, into a pending hold. It changes nothing on failure.
func (s *State) Reserve(cfg *Config, now time.Time, p ReserveParams, ch *Changes) (*Hold, error) {
	price, err := ValidateReserve(cfg, p)
	if err != nil {
		return nil, err
	}
	amount, _ := mulChecked(price.UnitCredits, p.Quantity)
	if len(s.Holds) >= cfg.Limits.PendingHoldsPerAccountMax {
		return nil, Errorf(EConflict, "account has %d pending holds, the limit", len(s.Holds))
	}
	avail := s.Available(cfg, now, price.Category)
	if avail < amount {
		e := Errorf(EInsufficient, "%s × %d costs %d credits; %d available for %s actions",
			p.Action, p.Quantity, amount, avail, price.Category)
		e.Details = map[string]any{"required": amount, "available": avail}
		return nil, e
	}
	ttl := p.TTLSeconds
	if ttl == 0 {
		ttl = cfg.Limits.HoldTTLSecondsDefault
	}
	h := &Hold{
		ID: NewHoldID(s.Account.ID), AccountID: s.Account.ID, Action: p.Action, Category: price.Category,
		Quantity: p.Quantity, UnitPriceCredits: price.UnitCredits, AmountCredits: amount,
		Status: HoldPending, CreatedAt: now, ExpiresAt: now.Add(time.Duration(ttl) * time.Second),
	}
	legs := make([]Leg, 0, 2)
	need := amount
	for i := 0; i < len(s.Grants) && need > 0; i++ {
		g := s.Grants[i]
		if g.Expired(now) || g.RemainingCredits == 0 || !cfg.Pays(g.Source, price.Category) {
			continue
		}
		take := min(need, g.RemainingCredits)
		g = s.grant(i, ch)
		g.RemainingCredits -= take
		g.HeldCredits += take
		g.check()
		need -= take
		h.Portions = append(h.Portions, Portion{GrantID: g.ID, Credits: take})
		legs = append(legs, Leg{GrantID: g.ID, From: PartRemaining, To: PartHeld, Credits: take})
	}
	if need != 0 {
		invariantf("reserve of %d left %d unfunded with %d available", amount, need, avail)
	}
	if s.Holds == nil {
		s.Holds = make(map[string]*Hold, 1)
	}
	s.Holds[h.ID] = h
	ch.Holds[h.ID] = h
	s.touchAccount(ch)
	ch.Entries = append(ch.Entries, Entry{
		AccountID: s.Account.ID, Type: EntryHold, AmountCredits: amount, HoldID: h.ID,
		Action: p.Action, Quantity: p.Quantity, Legs: legs, CreatedAt: now,
	})
	return h, nil
}

// resolve ends a pending hold: it charges unit price × quantity from the
// portions in order and returns the rest to their buckets, expiring what
// goes back to a bucket whose expiry has passed.
func (s *State) resolve(now time.Time, id string, status HoldStatus, quantity int64, reason string, ch *Changes) *Hold {
	h := s.hold(id, ch)
	if h.Status != HoldPending {
		invariantf("resolve of %s hold %s", h.Status, id)
	}
	charge := h.UnitPriceCredits * quantity
	if charge < 0 || charge > h.AmountCredits {
		invariantf("charge %d outside hold amount %d", charge, h.AmountCredits)
	}
	legs := make([]Leg, 0, len(h.Portions)+1)
	var returned int64
	for _, p := range h.Portions {
		i := s.grantIndex(p.GrantID)
		if i < 0 {
			invariantf("hold %s portion from unknown bucket %s", id, p.GrantID)
		}
		g := s.grant(i, ch)
		c := min(charge, p.Credits)
		charge -= c
		back := p.Credits - c
		g.HeldCredits -= p.Credits
		g.ChargedCredits += c
		if c > 0 {
			legs = append(legs, Leg{GrantID: g.ID, From: PartHeld, To: PartCharged, Credits: c})
		}
		if back > 0 {
			returned += back
			if g.Expired(now) {
				g.ExpiredCredits += back
				legs = append(legs, Leg{GrantID: g.ID, From: PartHeld, To: PartExpired, Credits: back})
			} else {
				g.RemainingCredits += back
				legs = append(legs, Leg{GrantID: g.ID, From: PartHeld, To: PartRemaining, Credits: back})
			}
		}
		g.check()
	}
	h.Status = status
	delete(s.Holds, id) // only pending holds are live; ch.Holds keeps the resolved one
	h.ResolvedAt = now
	h.CapturedQuantity = quantity
	h.CapturedCredits = h.UnitPriceCredits * quantity
	h.ReleaseReason = reason
	if status == HoldCaptured {
		h.ReleaseReason = ""
	}
	s.touchAccount(ch)
	e := Entry{AccountID: s.Account.ID, HoldID: id, Action: h.Action, Legs: legs, CreatedAt: now, Reason: reason}
	switch status {
	case HoldCaptured:
		e.Type, e.AmountCredits, e.Quantity, e.Reason = EntryCapture, h.CapturedCredits, quantity, ""
	case HoldReleased:
		e.Type, e.AmountCredits, e.Quantity = EntryRelease, returned, h.Quantity
	case HoldExpired:
		e.Type, e.AmountCredits, e.Quantity = EntryExpiry, returned, h.Quantity
	}
	ch.Entries = append(ch.Entries, e)
	return h
}

// Pending returns the pending hold id, or nil.
func (s *State) Pending(id string) *Hold { return s.Holds[id] }

// Capture charges delivered outputs of a pending hold. Call Touch first so
// an expired hold is expired, and use Repeat for holds no longer pending.
func (s *State) Capture(cfg *Config, now time.Time, id string, quantity int64, ch *Changes) (*Hold, error) {
	h := s.Holds[id]
	if h == nil {
		return nil, Errorf(ENotFound, "no pending hold %s", id)
	}
	if err := s.jobOwned(id); err != nil {
		return nil, err
	}
	if quantity < 0 || quantity > h.Quantity {
		return nil, Errorf(EInvalid, "quantity must be between 0 and the %d reserved", h.Quantity)
	}
	return s.resolve(now, id, HoldCaptured, quantity, "", ch), nil
}

// Release returns all of a pending hold's credits.
func (s *State) Release(cfg *Config, now time.Time, id, reason string, ch *Changes) (*Hold, error) {
	if s.Holds[id] == nil {
		return nil, Errorf(ENotFound, "no pending hold %s", id)
	}
	if err := s.jobOwned(id); err != nil {
		return nil, err
	}
	if !slices.Contains(ReleaseReasons, reason) {
		return nil, Errorf(EInvalid, "reason must be one of failed, cancelled, error, interrupted")
	}
	return s.resolve(now, id, HoldReleased, 0, reason, ch), nil
}

// Extend sets a pending hold's expiry to now + ttl.
func (s *State) Extend(cfg *Config, now time.Time, id string, ttlSeconds int64, ch *Changes) (*Hold, error) {
	if s.Holds[id] == nil {
		return nil, Errorf(ENotFound, "no pending hold %s", id)
	}
	if err := s.jobOwned(id); err != nil {
		return nil, err
	}
	if ttlSeconds < 1 || ttlSeconds > cfg.Limits.HoldTTLSecondsMax {
		return nil, Errorf(EInvalid, "ttl_seconds must be between 1 and %d", cfg.Limits.HoldTTLSecondsMax)
	}
	h := s.hold(id, ch)
	h.ExpiresAt = now.Add(time.Duration(ttlSeconds) * time.Second)
	s.touchAccount(ch)
	return h, nil
}

// jobOwned refuses direct resolution of a hold that belongs to an active
// job: the job resolves it.
func (s *State) jobOwned(holdID string) error {
	for _, j := range s.Jobs {
		if j.HoldID == holdID {
			return Errorf(EConflict, "hold %s belongs to job %s; use the jobs API", holdID, j.ID)
		}
	}
	return nil
}

// Resolution is what a caller asked to do with a hold.
type Resolution struct {
	Capture  bool
	Quantity int64
	Reason   string
}

// Repeat answers a capture or release of a hold that is no longer pending:
// the same resolution returns the first outcome, anything else is a
// conflict that shows the hold's state. A release of an expired hold
// returns it too (its credits were already returned).
func Repeat(h *Hold, r Resolution) (*Hold, error) {
	switch {
	case r.Capture && h.Status == HoldCaptured && h.CapturedQuantity == r.Quantity:
		return h, nil
	case !r.Capture && (h.Status == HoldReleased || h.Status == HoldExpired):
		return h, nil
	}
	what := "release"
	if r.Capture {
		what = "capture"
	}
	e := Errorf(EConflict, "hold %s is already %s; cannot %s it", h.ID, h.Status, what)
	if r.Capture && h.Status == HoldCaptured {
		e.Message = "hold " + h.ID + " was already captured with a different quantity"
	}
	e.Details = map[string]any{"hold": h}
	return nil, e
}

// GrantParams asks for a grant through the API.
type GrantParams struct {
	Source        Source
	AmountCredits int64
	ExpiresAt     time.Time
	Reference     string
}

// ValidateGrant checks a grant request without any state.
func ValidateGrant(cfg *Config, now time.Time, p GrantParams) error {
	rule, ok := cfg.SourceRule(p.Source)
	if !ok {
		return Errorf(EInvalid, "unknown source %q", p.Source)
	}
	if !rule.Grantable {
		return Errorf(EInvalid, "source %q is issued by the rules and cannot be granted", p.Source)
	}
	if p.AmountCredits < 1 || p.AmountCredits > cfg.Limits.GrantCreditsMax {
		return Errorf(EInvalid, "amount must be between 1 and %d", cfg.Limits.GrantCreditsMax)
	}
	if !p.ExpiresAt.IsZero() && !p.ExpiresAt.After(now) {
		return Errorf(EInvalid, "expires_at must be in the future")
	}
	return nil
}

// Grant adds a bucket. Reference uniqueness is checked by the caller.
func (s *State) Grant(cfg *Config, now time.Time, p GrantParams, ch *Changes) (*Grant, error) {
	if err := ValidateGrant(cfg, now, p); err != nil {
		return nil, err
	}
	if s.totalCredits()+p.AmountCredits > cfg.Limits.AccountCreditsMax {
		return nil, Errorf(EInvalid, "the account would hold more than %d credits", cfg.Limits.AccountCreditsMax)
	}
	g := &Grant{
		ID: NewID("grt"), AccountID: s.Account.ID, Source: p.Source, Reference: p.Reference,
		AmountCredits: p.AmountCredits, RemainingCredits: p.AmountCredits, ExpiresAt: p.ExpiresAt, CreatedAt: now,
	}
	s.addGrant(cfg, g, ch)
	ch.Entries = append(ch.Entries, Entry{
		AccountID: s.Account.ID, Type: EntryGrant, AmountCredits: g.AmountCredits, Source: g.Source,
		GrantID: g.ID, Reason: p.Reference, CreatedAt: now,
		Legs: []Leg{{GrantID: g.ID, From: PartExternal, To: PartRemaining, Credits: g.AmountCredits}},
	})
	return g, nil
}

// Balance is what an account can spend.
type Balance struct {
	AccountID           string             `json:"account_id"`
	Plan                Plan               `json:"plan"`
	Timezone            string             `json:"timezone"`
	AvailableCredits    int64              `json:"available"`
	AvailableByCategory map[Category]int64 `json:"available_by_category"`
	HeldCredits         int64              `json:"held"`
	Buckets             []BucketView       `json:"buckets"`
	NextDailyRefreshAt  *time.Time         `json:"next_daily_refresh_at"`
	AsOf                time.Time          `json:"as_of"`
}

// BucketView is one bucket in a balance.
type BucketView struct {
	GrantID          string     `json:"grant_id"`
	Source           Source     `json:"source"`
	RemainingCredits int64      `json:"remaining"`
	HeldCredits      int64      `json:"held"`
	ExpiresAt        *time.Time `json:"expires_at"`
	Categories       []Category `json:"categories"`
}

// View computes the balance at now. Call it on a touched state.
func (s *State) View(cfg *Config, now time.Time) Balance {
	b := Balance{
		AccountID: s.Account.ID, Plan: s.Account.Plan, Timezone: s.Account.Timezone,
		AvailableByCategory: map[Category]int64{}, Buckets: []BucketView{}, AsOf: now,
	}
	for _, cat := range []Category{CategoryImage, CategoryVideo} {
		b.AvailableByCategory[cat] = s.Available(cfg, now, cat)
	}
	for _, g := range s.Grants {
		b.HeldCredits += g.HeldCredits
		if g.Expired(now) {
			continue
		}
		b.AvailableCredits += g.RemainingCredits
		rule, _ := cfg.SourceRule(g.Source)
		b.Buckets = append(b.Buckets, BucketView{
			GrantID: g.ID, Source: g.Source, RemainingCredits: g.RemainingCredits, HeldCredits: g.HeldCredits,
			ExpiresAt: timePtr(g.ExpiresAt), Categories: rule.Categories,
		})
	}
	var held int64
	for _, h := range s.Holds {
		held += h.AmountCredits
	}
	if held != b.HeldCredits {
		invariantf("account %s: holds %d != held in buckets %d", s.Account.ID, held, b.HeldCredits)
	}
	if b.AvailableCredits < 0 {
		invariantf("account %s: negative available", s.Account.ID)
	}
	b.NextDailyRefreshAt = timePtr(s.NextDailyRefresh(cfg))
	return b
}

// Quote says what an action costs and whether the account can afford it.
type Quote struct {
	AccountID        string   `json:"account_id"`
	Action           string   `json:"action"`
	Category         Category `json:"category"`
	Quantity         int64    `json:"quantity"`
	UnitPriceCredits int64    `json:"unit_price"`
	CostCredits      int64    `json:"cost"`
	AvailableCredits int64    `json:"available"`
	Affordable       bool     `json:"affordable"`
}

// Quote prices quantity outputs of action against the balance at now.
func (s *State) Quote(cfg *Config, now time.Time, action string, quantity int64) (Quote, error) {
	price, err := ValidateReserve(cfg, ReserveParams{Action: action, Quantity: quantity})
	if err != nil {
		return Quote{}, err
	}
	cost := price.UnitCredits * quantity
	avail := s.Available(cfg, now, price.Category)
	return Quote{
		AccountID: s.Account.ID, Action: action, Category: price.Category, Quantity: quantity,
		UnitPriceCredits: price.UnitCredits, CostCredits: cost, AvailableCredits: avail, Affordable: avail >= cost,
	}, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// MarshalJSON renders a never-expiring bucket's expires_at as null.
func (g Grant) MarshalJSON() ([]byte, error) {
	type plain Grant
	return json.Marshal(struct {
		plain
		ExpiresAt *time.Time `json:"expires_at"`
	}{plain(g), timePtr(g.ExpiresAt)})
}

// MarshalJSON adds resolved_at (null while pending).
func (h Hold) MarshalJSON() ([]byte, error) {
	type plain Hold
	return json.Marshal(struct {
		plain
		ResolvedAt *time.Time `json:"resolved_at"`
	}{plain(h), timePtr(h.ResolvedAt)})
}

// RefundGrant takes back what is left of a grant whose payment was
// refunded: its remaining credits are expired (never below zero: credits
// already charged stay charged), and the grant ends now, so credits held by
// running work that later come back are expired too. Refunding twice takes
// nothing more. It returns the credits taken back.
func (s *State) RefundGrant(cfg *Config, now time.Time, grantID, reason string, ch *Changes) int64 {
	i := s.grantIndex(grantID)
	if i < 0 {
		return 0 // exhausted: nothing left to take back
	}
	g := s.grant(i, ch)
	if g.ExpiresAt.IsZero() || g.ExpiresAt.After(now) {
		g.ExpiresAt = now
	}
	amt := g.RemainingCredits
	if amt > 0 {
		g.RemainingCredits = 0
		g.ExpiredCredits += amt
		g.check()
		ch.Entries = append(ch.Entries, Entry{
			AccountID: s.Account.ID, Type: EntryRefund, AmountCredits: amt, Source: g.Source,
			GrantID: g.ID, Reason: reason, CreatedAt: now,
			Legs: []Leg{{GrantID: g.ID, From: PartRemaining, To: PartExpired, Credits: amt}},
		})
	}
	s.SortGrants(cfg)
	return amt
}
