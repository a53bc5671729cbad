package engine_test

// Model-based property test of the engine on a real SQLite store.
//
// Every rapid run starts a fresh engine on a fresh SQLite file with a test
// clock at a random instant (often just before a DST change) and drives it
// with 50-200 random steps: create accounts, change plan and time zone,
// grant, reserve, capture, release, extend, read (balance, quote, hold,
// entries), move the clock (seconds to days, or exactly to the next expiry
// or refresh, ±1µs), restart the engine, and run jobs: create, lease,
// heartbeat, change params, complete, fail, cancel, read, with lease loss
// and queue timeouts as the clock passes them (model_jobs_test.go). Next to
// it runs a small, independent reference model of the product rules (plain
// structs; it uses nothing of ledger.State). After every step the test
// compares
//   - the engine's answer (error code, hold, grant, job) with the model's,
//   - the stored state of every account the step touched (Store.LoadState,
//     which touches nothing) with the model's buckets, pending holds and
//     active jobs,
//   - the balance of the account the step used (available, by category,
//     held, next daily refresh) with the model's,
// and every few steps the whole stored history of every account
// (Store.LoadHistory: all buckets and holds) and ledger.VerifyStore.
//
// Buckets are compared in classes of (source, expiry, created_at): the
// engine breaks remaining ties by random grant id, and buckets of one class
// are interchangeable for every rule.
//
// The clock handed to the engine wraps a *ledger.TestClock so that the
// engine's background sweeper is not woken by clock moves (it would touch
// accounts at a nondeterministic moment). The test calls SweepHolds itself
// after each clock move, exactly as the sweeper would, and the model mirrors
// which accounts that sweep touches (lazy rules apply only on touch).
//
// Failures print the steps so far; -rapid.seed reproduces a run.

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
)

// modelChecks is the number of rapid runs of TestModel unless -rapid.checks
// (or RAPID_CHECKS) says otherwise: rapid's default of 100 (about 15 s), or
// 20 with the race detector, which slows the SQLite driver down a lot
// (about 35 s). Each run is 50-200 steps.
var modelChecks = map[bool]int{false: 100, true: 20}[raceEnabled]

// verifyEvery runs ledger.VerifyStore, and compares every account's stored
// state (not only those the step touched), after every n-th step and after
// the last one.
const verifyEvery = 4

// modelZones are the time zones accounts get.
var modelZones = []string{
	"UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe",
}

// midnightDSTZones skip local midnight when DST starts (see
// TestDailyRefreshSkippedMidnight).
var midnightDSTZones = []string{"America/Santiago", "America/Havana"}

// Interesting instants to start near: DST changes of the zones above.
var modelAnchors = []string{
	"2025-03-09T07:00:00Z", // America/New_York spring forward
	"2025-11-02T06:00:00Z", // America/New_York fall back
	"2025-03-30T01:00:00Z", // Europe/Berlin spring forward
	"2025-10-26T01:00:00Z", // Europe/Berlin fall back
	"2025-04-05T15:00:00Z", // Australia/Lord_Howe -30 min
	"2025-10-04T15:30:00Z", // Australia/Lord_Howe +30 min
	"2025-09-07T04:00:00Z", // America/Santiago, midnight skipped
	"2025-03-09T05:00:00Z", // America/Havana, midnight skipped
	"2024-02-29T12:00:00Z", // leap day
	"2026-12-31T20:00:00Z", // new year
}

// ---------------------------------------------------------------------------
// Reference model.

var mRank = map[ledger.Source]int{
	ledger.SourceDaily: 0, ledger.SourcePromo: 1, ledger.SourceSignup: 2, ledger.SourceAdmin: 3, ledger.SourcePurchase: 4,
}

const (
	mSignup      = 30
	mDaily       = 15
	mDefaultTTL  = 600
	mMaxTTL      = 86400
	mMaxQuantity = 100
	mMaxGrant    = 1_000_000_000
)

var mPrices = map[string]int64{"generate": 5, "edit": 5, "crop": 5, "upscale": 5, "inpaint": 5, "video": 60}

func mCategory(action string) ledger.Category {
	if action == "video" {
		return ledger.CategoryVideo
	}
	return ledger.CategoryImage
}

func mPays(s ledger.Source, c ledger.Category) bool {
	return c == ledger.CategoryImage || s == ledger.SourcePurchase || s == ledger.SourceAdmin
}

var mReasons = []string{"failed", "cancelled", "error", "interrupted"}

type mBucket struct {
	seq                                       int
	engineID                                  string // known for API grants only
	source                                    ledger.Source
	amount, remaining, held, charged, expired int64
	expiresAt                                 time.Time // zero: never
	createdAt                                 time.Time
}

func (b *mBucket) expiredAt(now time.Time) bool {
	return !b.expiresAt.IsZero() && !now.Before(b.expiresAt)
}

type mPortion struct {
	b       *mBucket
	credits int64
}

type mHold struct {
	id, account, action          string
	category                     ledger.Category
	quantity, unit, amount       int64
	status                       ledger.HoldStatus
	portions                     []mPortion
	createdAt, expiresAt         time.Time
	capturedQty, capturedCredits int64
	reason                       string
	resolvedAt                   time.Time
}

type mAccount struct {
	id        string
	plan      ledger.Plan
	tz        string
	buckets   []*mBucket
	lastDate  string    // local date of the last daily allowance, "" if none
	notBefore time.Time // scheduled end of the last daily allowance
}

type mRef struct {
	account   string
	source    ledger.Source
	reference string
}

type mSweep struct {
	hold *mHold
	at   time.Time
}

type model struct {
	now      time.Time
	seq      int
	accounts map[string]*mAccount
	order    []string // account ids in creation order
	holds    map[string]*mHold
	holdIDs  []string // hold ids in creation order
	refs     map[mRef]*mBucket
	sweeps   []mSweep        // the engine's expiry heap: (hold, expiry) pushed on reserve and extend
	dirty    map[string]bool // accounts touched since the last check
	jm       jobModel        // jobs (model_jobs_test.go)
}

func newModel(now time.Time) *model {
	return &model{now: now, accounts: map[string]*mAccount{}, holds: map[string]*mHold{}, refs: map[mRef]*mBucket{}, dirty: map[string]bool{}}
}

var locCache sync.Map

func mLoc(tz string) *time.Location {
	if l, ok := locCache.Load(tz); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(tz)
	if err != nil {
		panic(err)
	}
	locCache.Store(tz, l)
	return l
}

func mLocalDate(t time.Time, tz string) string { return t.In(mLoc(tz)).Format(time.DateOnly) }

// mFirstInstant returns the first instant whose local date in tz is date or
// later, by bisection over whole seconds (independent of time.Date's
// handling of skipped midnights).
func mFirstInstant(date, tz string) time.Time {
	d, err := time.Parse(time.DateOnly, date)
	if err != nil {
		panic(err)
	}
	loc := mLoc(tz)
	lo, hi := d.Add(-16*time.Hour).Unix(), d.Add(16*time.Hour).Unix()
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if time.Unix(mid, 0).In(loc).Format(time.DateOnly) >= date {
			hi = mid
		} else {
			lo = mid
		}
	}
	return time.Unix(hi, 0).UTC()
}

func mNextDate(date string) string {
	d, err := time.Parse(time.DateOnly, date)
	if err != nil {
		panic(err)
	}
	return d.AddDate(0, 0, 1).Format(time.DateOnly)
}

func (m *model) newBucket(a *mAccount, src ledger.Source, amount int64, exp time.Time) *mBucket {
	m.seq++
	b := &mBucket{seq: m.seq, source: src, amount: amount, remaining: amount, expiresAt: exp, createdAt: m.now}
	a.buckets = append(a.buckets, b)
	return b
}

// dailyDue: on the free plan, the scheduled end of the last allowance has
// passed and the local date is a later one than the last allowance's.
func (m *model) dailyDue(a *mAccount) bool {
	if a.plan != ledger.PlanFree {
		return false
	}
	if a.lastDate == "" {
		return true
	}
	return !m.now.Before(a.notBefore) && mLocalDate(m.now, a.tz) > a.lastDate
}

// nextRefresh is the first instant at which dailyDue becomes true (zero if
// not on the free plan).
func (m *model) nextRefresh(a *mAccount) time.Time {
	if a.plan != ledger.PlanFree || a.lastDate == "" {
		return time.Time{}
	}
	t := mFirstInstant(mNextDate(a.lastDate), a.tz)
	if a.notBefore.After(t) {
		return a.notBefore
	}
	return t
}

// touch applies the lazy time rules at m.now.
func (m *model) touch(a *mAccount) {
	m.dirty[a.id] = true
	m.touchJobs(a)
	for _, id := range m.holdIDs {
		h := m.holds[id]
		if h.account == a.id && h.status == ledger.HoldPending && !m.now.Before(h.expiresAt) {
			m.resolve(h, ledger.HoldExpired, 0, "ttl")
			modelStats.add("model:hold_expired")
		}
	}
	m.touchOrphanJobs(a)
	for _, b := range a.buckets {
		if b.expiredAt(m.now) && b.remaining > 0 {
			modelStats.add("model:bucket_expired")
			b.expired += b.remaining
			b.remaining = 0
		}
	}
	if m.dailyDue(a) {
		date := mLocalDate(m.now, a.tz)
		exp := mFirstInstant(mNextDate(date), a.tz)
		m.newBucket(a, ledger.SourceDaily, mDaily, exp)
		modelStats.add("model:daily_issued")
		a.lastDate = date
		a.notBefore = exp
	}
}

func (m *model) resolve(h *mHold, st ledger.HoldStatus, qty int64, reason string) {
	charge := h.unit * qty
	for _, p := range h.portions {
		c := min(charge, p.credits)
		charge -= c
		back := p.credits - c
		p.b.held -= p.credits
		p.b.charged += c
		if p.b.expiredAt(m.now) {
			if back > 0 {
				modelStats.add("model:returned_to_expired_bucket")
			}
			p.b.expired += back
		} else {
			p.b.remaining += back
		}
	}
	h.status = st
	h.resolvedAt = m.now
	h.capturedQty = qty
	h.capturedCredits = h.unit * qty
	h.reason = reason
}

func (m *model) available(a *mAccount, cat ledger.Category) int64 {
	var t int64
	for _, b := range a.buckets {
		if !b.expiredAt(m.now) && (cat == "" || mPays(b.source, cat)) {
			t += b.remaining
		}
	}
	return t
}

func (m *model) held(a *mAccount) int64 {
	var t int64
	for _, b := range a.buckets {
		t += b.held
	}
	return t
}

// burnOrder: soonest expiry first (never last), then source rank, then oldest.
func (m *model) burnOrder(a *mAccount) []*mBucket {
	bs := slices.Clone(a.buckets)
	slices.SortFunc(bs, func(x, y *mBucket) int {
		if x.expiresAt.IsZero() != y.expiresAt.IsZero() {
			if x.expiresAt.IsZero() {
				return 1
			}
			return -1
		}
		if c := x.expiresAt.Compare(y.expiresAt); c != 0 {
			return c
		}
		if c := cmp.Compare(mRank[x.source], mRank[y.source]); c != 0 {
			return c
		}
		if c := x.createdAt.Compare(y.createdAt); c != 0 {
			return c
		}
		return cmp.Compare(x.seq, y.seq)
	})
	return bs
}

// outcome is what the model expects of an operation.
type outcome struct {
	code string // "" for success
	hold *mHold
	// grant
	bucket  *mBucket
	created bool
}

func fail(code string) outcome { return outcome{code: code} }

func (m *model) putAccount(id string, plan ledger.Plan, tz string) outcome {
	if plan != "" && plan != ledger.PlanFree && plan != ledger.PlanPaid {
		return fail(ledger.EInvalid)
	}
	if tz != "" && !slices.Contains(modelZones, tz) && !slices.Contains(midnightDSTZones, tz) {
		return fail(ledger.EInvalid)
	}
	a := m.accounts[id]
	if a == nil {
		if plan == "" {
			plan = ledger.PlanFree
		}
		if tz == "" {
			tz = "UTC"
		}
		a = &mAccount{id: id, plan: plan, tz: tz}
		m.accounts[id] = a
		m.order = append(m.order, id)
		m.newBucket(a, ledger.SourceSignup, mSignup, time.Time{})
		m.touch(a)
		return outcome{created: true}
	}
	m.touch(a)
	changed := false
	if tz != "" && tz != a.tz {
		a.tz = tz
		changed = true
	}
	if plan != "" && plan != a.plan {
		old := a.plan
		a.plan = plan
		changed = true
		if old == ledger.PlanFree {
			// Leaving the free plan ends today's daily credits at once.
			for _, b := range a.buckets {
				// (An exhausted bucket is history; its expiry no longer matters.)
				if b.source == ledger.SourceDaily && !b.expiredAt(m.now) && b.remaining+b.held > 0 {
					b.expiresAt = m.now
					b.expired += b.remaining
					b.remaining = 0
				}
			}
		}
	}
	if changed {
		m.touch(a)
	}
	return outcome{}
}

func (m *model) grant(id string, src ledger.Source, amount int64, exp time.Time, ref string) outcome {
	if src != ledger.SourcePromo && src != ledger.SourcePurchase && src != ledger.SourceAdmin {
		return fail(ledger.EInvalid)
	}
	if amount < 1 || amount > mMaxGrant || (!exp.IsZero() && !exp.After(m.now)) {
		return fail(ledger.EInvalid)
	}
	a := m.accounts[id]
	if a == nil {
		return fail(ledger.ENotFound)
	}
	m.touch(a)
	key := mRef{id, src, ref}
	if ref != "" {
		if prev := m.refs[key]; prev != nil {
			if prev.amount != amount || !prev.expiresAt.Equal(exp) {
				return fail(ledger.EConflict)
			}
			return outcome{bucket: prev}
		}
	}
	b := m.newBucket(a, src, amount, exp)
	if ref != "" {
		m.refs[key] = b
	}
	return outcome{bucket: b, created: true}
}

func (m *model) reserve(id, action string, qty, ttl int64) outcome {
	unit, ok := mPrices[action]
	if !ok || qty < 1 || qty > mMaxQuantity || ttl < 0 || ttl > mMaxTTL {
		return fail(ledger.EInvalid)
	}
	a := m.accounts[id]
	if a == nil {
		return fail(ledger.ENotFound)
	}
	m.touch(a)
	cat := mCategory(action)
	amount := unit * qty
	if m.available(a, cat) < amount {
		return fail(ledger.EInsufficient)
	}
	if ttl == 0 {
		ttl = mDefaultTTL
	}
	h := &mHold{
		account: id, action: action, category: cat, quantity: qty, unit: unit, amount: amount,
		status: ledger.HoldPending, createdAt: m.now, expiresAt: m.now.Add(time.Duration(ttl) * time.Second),
	}
	need := amount
	for _, b := range m.burnOrder(a) {
		if need == 0 {
			break
		}
		if b.expiredAt(m.now) || b.remaining == 0 || !mPays(b.source, cat) {
			continue
		}
		take := min(need, b.remaining)
		b.remaining -= take
		b.held += take
		need -= take
		h.portions = append(h.portions, mPortion{b, take})
	}
	if need != 0 {
		panic("model: reserve underfunded")
	}
	return outcome{hold: h}
}

// addHold records a hold created by reserve under the engine's id.
func (m *model) addHold(h *mHold, id string) {
	h.id = id
	m.holds[id] = h
	m.holdIDs = append(m.holdIDs, id)
	m.sweeps = append(m.sweeps, mSweep{h, h.expiresAt})
}

func (m *model) capture(id string, qty int64) outcome {
	h := m.holds[id]
	if h == nil {
		return fail(ledger.ENotFound)
	}
	m.touch(m.accounts[h.account])
	if h.status == ledger.HoldPending && m.jobOwned(h) {
		return fail(ledger.EConflict)
	}
	if h.status == ledger.HoldPending {
		if qty < 0 || qty > h.quantity {
			return fail(ledger.EInvalid)
		}
		m.resolve(h, ledger.HoldCaptured, qty, "")
		return outcome{hold: h}
	}
	if h.status == ledger.HoldCaptured && h.capturedQty == qty {
		return outcome{hold: h}
	}
	return fail(ledger.EConflict)
}

func (m *model) release(id, reason string) outcome {
	h := m.holds[id]
	if h == nil {
		return fail(ledger.ENotFound)
	}
	m.touch(m.accounts[h.account])
	if h.status == ledger.HoldPending && m.jobOwned(h) {
		return fail(ledger.EConflict)
	}
	if h.status == ledger.HoldPending {
		if !slices.Contains(mReasons, reason) {
			return fail(ledger.EInvalid)
		}
		m.resolve(h, ledger.HoldReleased, 0, reason)
		return outcome{hold: h}
	}
	if h.status == ledger.HoldReleased || h.status == ledger.HoldExpired {
		// The first outcome, whatever the reason given this time (the
		// engine validates the reason only while the hold is pending).
		return outcome{hold: h}
	}
	return fail(ledger.EConflict)
}

func (m *model) extend(id string, ttl int64) outcome {
	h := m.holds[id]
	if h == nil {
		return fail(ledger.ENotFound)
	}
	m.touch(m.accounts[h.account])
	if h.status != ledger.HoldPending || m.jobOwned(h) {
		return fail(ledger.EConflict)
	}
	if ttl < 1 || ttl > mMaxTTL {
		return fail(ledger.EInvalid)
	}
	h.expiresAt = m.now.Add(time.Duration(ttl) * time.Second)
	m.sweeps = append(m.sweeps, mSweep{h, h.expiresAt})
	return outcome{hold: h}
}

// sweep mirrors Engine.SweepHolds: every heap entry due at now is popped;
// the accounts of those whose hold is still pending are touched.
func (m *model) sweep() {
	due := map[string]bool{}
	keep := m.sweeps[:0]
	for _, s := range m.sweeps {
		if !s.at.After(m.now) {
			if s.hold.status == ledger.HoldPending {
				due[s.hold.account] = true
			}
		} else {
			keep = append(keep, s)
		}
	}
	m.sweeps = keep
	for _, id := range m.order {
		if due[id] {
			m.touch(m.accounts[id])
		}
	}
}

// ---------------------------------------------------------------------------
// Harness.

// manualClock hides the *ledger.TestClock from the engine's sweeper (which
// subscribes to a TestClock's moves); the test sweeps explicitly.
type manualClock struct{ tc *ledger.TestClock }

func (c manualClock) Now() time.Time { return c.tc.Now() }

type harness struct {
	t     *rapid.T
	ctx   context.Context
	cfg   *ledger.Config
	store *sqlite.Store
	clock *ledger.TestClock
	eng   *engine.Engine
	m     *model
	zones []string
	dir   string
	step  int
	trace []string
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// rapidDefaults makes modelChecks the default number of rapid checks and
// turns off rapid's fail files (they would land in testdata/) unless the
// user chose otherwise by flag or environment; the flags are restored after
// the test.
func rapidDefaults(t *testing.T) {
	set := map[string]bool{}
	flag.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for name, val := range map[string]string{"rapid.checks": strconv.Itoa(modelChecks), "rapid.nofailfile": "true"} {
		f := flag.Lookup(name)
		env := "RAPID_" + strings.ToUpper(strings.TrimPrefix(name, "rapid."))
		if _, ok := os.LookupEnv(env); f == nil || ok || set[name] {
			continue
		}
		old := f.Value.String()
		if err := f.Value.Set(val); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Value.Set(old) })
	}
}

// stats counts steps by kind and outcome over all runs (logged with -v).
type stats struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *stats) add(k string) {
	s.mu.Lock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[k]++
	s.mu.Unlock()
}

func (s *stats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.n))
	for k := range s.n {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s=%d ", k, s.n[k])
	}
	return sb.String()
}

var modelStats stats

func TestModel(t *testing.T) {
	rapidDefaults(t)
	zones := append(slices.Clone(modelZones), midnightDSTZones...)
	base := t.TempDir()
	var run int
	rapid.Check(t, func(rt *rapid.T) {
		run++
		dir := filepath.Join(base, strconv.Itoa(run))
		if err := os.Mkdir(dir, 0o755); err != nil {
			rt.Fatal(err)
		}
		h := newHarness(rt, dir, zones)
		defer h.close()
		h.runSteps()
	})
	if testing.Verbose() {
		t.Logf("steps by outcome: %s", &modelStats)
	}
}

func newHarness(t *rapid.T, dir string, zones []string) *harness {
	ctx := context.Background()
	var start time.Time
	if rapid.Bool().Draw(t, "start_near_anchor") {
		a, err := time.Parse(time.RFC3339, pick(t, "anchor", modelAnchors))
		if err != nil {
			t.Fatal(err)
		}
		start = a.Add(-time.Duration(rapid.Int64Range(0, 3*86400).Draw(t, "before_anchor_s")) * time.Second)
	} else {
		lo := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
		hi := time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
		start = time.UnixMicro(rapid.Int64Range(lo, hi).Draw(t, "start_us"))
	}
	clock := ledger.NewTestClock(start)
	cfg := ledger.DefaultConfig()
	// Half the runs keep every account cached; the others cache one to
	// three, so accounts are evicted and reloaded from the store between
	// (and within) steps.
	if !rapid.Bool().Draw(t, "default_cache") {
		cfg.Limits.CachedAccountsMax = rapid.IntRange(1, 3).Draw(t, "cached_accounts_max")
	}
	drawJobLimits(t, cfg)
	h := &harness{t: t, ctx: ctx, cfg: cfg, clock: clock, m: newModel(clock.Now()), zones: zones, dir: dir}
	h.m.jm = newJobModel(cfg)
	h.open()
	return h
}

func (h *harness) open() {
	st, err := sqlite.Open(h.ctx, filepath.Join(h.dir, "creditd.db"))
	if err != nil {
		h.t.Fatalf("open store: %v", err)
	}
	eng, err := engine.New(h.ctx, engine.Options{
		Config: h.cfg, Store: st, Clock: manualClock{h.clock}, Logger: discardLogger(), SweepInterval: 24 * time.Hour,
	})
	if err != nil {
		_ = st.Close()
		h.t.Fatalf("engine: %v", err)
	}
	h.store, h.eng = st, eng
}

func (h *harness) close() {
	if h.eng != nil {
		h.eng.Close()
		_ = h.store.Close()
		h.eng, h.store = nil, nil
	}
}

// doRestart closes the engine and the store and opens them again: all
// state must come back from the store, and the sweeper's queue is rebuilt
// from the pending holds.
func (h *harness) doRestart() {
	modelStats.add("restart")
	h.note("restart")
	h.close()
	h.open()
	h.m.sweeps = nil
	for _, id := range h.m.holdIDs {
		if hd := h.m.holds[id]; hd.status == ledger.HoldPending {
			h.m.sweeps = append(h.m.sweeps, mSweep{hd, hd.expiresAt})
		}
	}
	h.m.restartSweeps()
}

// note records a step for the failure report.
func (h *harness) note(format string, args ...any) {
	h.trace = append(h.trace, fmt.Sprintf("step %d at %s: ", h.step, h.m.now.Format(time.RFC3339Nano))+fmt.Sprintf(format, args...))
}

func (h *harness) fatalf(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("step %d at %s: %s\nsteps so far:\n  %s", h.step, h.m.now.Format(time.RFC3339Nano), fmt.Sprintf(format, args...),
		strings.Join(h.trace, "\n  "))
}

func (h *harness) runSteps() {
	t := h.t
	n := 50 + uniformGen(151).Draw(t, "steps")
	// Start with one account so that most steps have something to act on.
	h.doCreate()
	for h.step = 1; h.step <= n; h.step++ {
		touched := ""
		switch k := uniformGen(125).Draw(t, "op"); {
		case k >= 100:
			touched = h.doJobStep(k - 100)
		case k < 6:
			touched = h.doCreate()
		case k < 11:
			touched = h.doPlan()
		case k < 15:
			touched = h.doTimezone()
		case k < 27:
			touched = h.doGrant()
		case k < 47:
			touched = h.doReserve()
		case k < 59:
			touched = h.doCapture()
		case k < 66:
			touched = h.doRelease()
		case k < 71:
			touched = h.doExtend()
		case k < 86:
			h.doAdvance()
		case k < 92:
			touched = h.doBalance()
		case k < 96:
			touched = h.doGetHold()
		case k < 99:
			touched = h.doListEntries()
		default:
			h.doRestart()
		}
		// What the step stored, before anything else touches the accounts.
		var dirty []string
		for _, id := range h.m.order {
			if h.m.dirty[id] {
				dirty = append(dirty, id)
			}
		}
		clear(h.m.dirty)
		h.checkStored(dirty, false)
		if touched != "" {
			// The account was touched at now by the step: its balance is
			// observable without changing anything.
			h.checkBalance(touched)
		}
		if h.step%verifyEvery == 0 || h.step == n {
			h.checkStored(h.m.order, true)
			h.verify()
		}
		clear(h.m.dirty)
	}
}

// ---------------------------------------------------------------------------
// Draw helpers.

func (h *harness) drawAccount(label string) string {
	ids := h.m.order
	if len(ids) == 0 || uniformGen(20).Draw(h.t, label+"_ghost") == 0 {
		return "ghost"
	}
	return pick(h.t, label, ids)
}

func (h *harness) existingAccount(label string) string {
	if len(h.m.order) == 0 {
		return ""
	}
	return pick(h.t, label, h.m.order)
}

func (h *harness) drawHold(label string) string {
	ids := h.m.holdIDs
	if len(ids) == 0 || uniformGen(25).Draw(h.t, label+"_bogus") == 0 {
		return "hold_bogus"
	}
	if uniformGen(4).Draw(h.t, label+"_pending_pref") > 0 {
		var pending []string
		for _, id := range ids {
			if h.m.holds[id].status == ledger.HoldPending {
				pending = append(pending, id)
			}
		}
		if len(pending) > 0 {
			return pick(h.t, label+"_pending", pending)
		}
	}
	return pick(h.t, label, ids)
}

func (h *harness) drawZone(label string) string {
	if uniformGen(30).Draw(h.t, label+"_bad") == 0 {
		return "Mars/Olympus_Mons"
	}
	return pick(h.t, label, h.zones)
}

// uniformGen draws an integer in [0, n) from fair bits. rapid's own integer
// generators favour small values, which would skew the mix of operations;
// this one is uniform and still shrinks towards 0.
func uniformGen(n int) *rapid.Generator[int] {
	return rapid.Custom(func(t *rapid.T) int {
		v := 0
		for range 12 {
			v <<= 1
			if rapid.Bool().Draw(t, "bit") {
				v |= 1
			}
		}
		return v % n
	})
}

// pick draws an element of xs uniformly.
func pick[E any](t *rapid.T, label string, xs []E) E {
	return xs[uniformGen(len(xs)).Draw(t, label)]
}

func errCode(err error) string {
	if err == nil {
		return ""
	}
	return ledger.ErrorCode(err)
}

func (h *harness) expectCode(what string, want outcome, err error) bool {
	h.t.Helper()
	kind, _, _ := strings.Cut(what, " ")
	c := want.code
	if c == "" {
		c = "ok"
	}
	modelStats.add(kind + ":" + c)
	h.note("%s -> %s (engine: %v)", what, c, err)
	if got := errCode(err); got != want.code {
		h.fatalf("%s: engine says %q (err %v), model says %q", what, got, err, want.code)
	}
	return err == nil
}

// ---------------------------------------------------------------------------
// Steps. Each returns the id of the account it touched at now ("" if none).

func (h *harness) doCreate() string {
	if len(h.m.order) >= 4 && rapid.Bool().Draw(h.t, "create_existing") {
		return h.doPlan()
	}
	if len(h.m.order) >= 4 {
		return h.doTimezone()
	}
	id := fmt.Sprintf("acct%d", len(h.m.order))
	plan := pick(h.t, "create_plan", []ledger.Plan{"", ledger.PlanFree, ledger.PlanFree, ledger.PlanPaid})
	tz := ""
	if uniformGen(5).Draw(h.t, "create_default_tz") > 0 {
		tz = h.drawZone("create_tz")
	}
	want := h.m.putAccount(id, plan, tz)
	res, err := h.eng.PutAccount(h.ctx, engine.PutAccountParams{ID: id, Plan: plan, Timezone: tz})
	what := fmt.Sprintf("create %s plan=%q tz=%q", id, plan, tz)
	if !h.expectCode(what, want, err) {
		return ""
	}
	h.checkAccountResult(what, res, id, true)
	return id
}

func (h *harness) checkAccountResult(what string, res engine.Outcome[*engine.AccountResult], id string, created bool) {
	ar := res.Value
	if ar == nil {
		h.fatalf("%s: result %T", what, res)
	}
	a := h.m.accounts[id]
	if ar.Created != created || ar.Account.ID != id || ar.Account.Plan != a.plan || ar.Account.Timezone != a.tz {
		h.fatalf("%s: engine returned %+v created=%v, model plan=%s tz=%s created=%v", what, ar.Account, ar.Created, a.plan, a.tz, created)
	}
}

func (h *harness) doPlan() string {
	if len(h.m.order) == 0 {
		return h.doCreate()
	}
	id := h.existingAccount("plan_account")
	plan := pick(h.t, "plan", []ledger.Plan{ledger.PlanFree, ledger.PlanPaid, "gold"})
	want := h.m.putAccount(id, plan, "")
	res, err := h.eng.PutAccount(h.ctx, engine.PutAccountParams{ID: id, Plan: plan})
	what := fmt.Sprintf("set plan of %s to %q", id, plan)
	if !h.expectCode(what, want, err) {
		return ""
	}
	h.checkAccountResult(what, res, id, false)
	return id
}

func (h *harness) doTimezone() string {
	if len(h.m.order) == 0 {
		return h.doCreate()
	}
	id := h.existingAccount("tz_account")
	tz := h.drawZone("tz")
	want := h.m.putAccount(id, "", tz)
	res, err := h.eng.PutAccount(h.ctx, engine.PutAccountParams{ID: id, Timezone: tz})
	what := fmt.Sprintf("set time zone of %s to %q", id, tz)
	if !h.expectCode(what, want, err) {
		return ""
	}
	h.checkAccountResult(what, res, id, false)
	return id
}

func (h *harness) doGrant() string {
	t := h.t
	id := h.drawAccount("grant_account")
	src := pick(t, "grant_source", []ledger.Source{ledger.SourcePromo, ledger.SourcePurchase, ledger.SourceAdmin})
	if uniformGen(16).Draw(t, "grant_source_bad") == 0 {
		src = pick(t, "grant_source_bad_value", []ledger.Source{ledger.SourceSignup, ledger.SourceDaily, "bogus"})
	}
	var amount int64
	switch uniformGen(10).Draw(t, "grant_amount_kind") {
	case 0:
		amount = rapid.Int64Range(-5, 0).Draw(t, "grant_amount_bad")
	case 1, 2, 3:
		amount = rapid.Int64Range(1, 20).Draw(t, "grant_amount_small")
	default:
		amount = rapid.Int64Range(1, 600).Draw(t, "grant_amount")
	}
	var exp time.Time
	switch uniformGen(10).Draw(t, "grant_expiry_kind") {
	case 0:
		exp = h.m.now.Add(-time.Duration(rapid.Int64Range(0, 3600).Draw(t, "grant_expiry_past_s")) * time.Second)
	case 1, 2, 3:
		exp = h.m.now.Add(time.Duration(rapid.Int64Range(1, 10*86400).Draw(t, "grant_expiry_s")) * time.Second)
	case 4:
		// The same expiry as a live bucket (daily credits, usually), so
		// that burn-down falls to source rank and age.
		var exps []time.Time
		if a := h.m.accounts[id]; a != nil {
			for _, b := range a.buckets {
				if b.expiresAt.After(h.m.now) {
					exps = append(exps, b.expiresAt)
				}
			}
		}
		if len(exps) > 0 {
			exp = pick(t, "grant_expiry_same", exps)
		}
	}
	ref := ""
	if uniformGen(4).Draw(t, "grant_has_ref") == 0 {
		ref = pick(t, "grant_ref", []string{"r1", "r2", "r3"})
	}
	want := h.m.grant(id, src, amount, exp, ref)
	res, err := h.eng.Grant(h.ctx, engine.GrantParams{AccountID: id, GrantParams: ledger.GrantParams{
		Source: src, AmountCredits: amount, ExpiresAt: exp, Reference: ref,
	}})
	what := fmt.Sprintf("grant %s %d %s expiring %s ref %q", id, amount, src, exp.Format(time.RFC3339Nano), ref)
	touched := ""
	if want.code == "" || want.code == ledger.EConflict {
		touched = id
	}
	if !h.expectCode(what, want, err) {
		return touched
	}
	gr := res.Value
	if gr == nil {
		h.fatalf("%s: result %T", what, res)
	}
	b := want.bucket
	if want.created {
		b.engineID = gr.Grant.ID
	}
	if gr.Created != want.created || gr.Grant.ID != b.engineID || gr.Grant.AmountCredits != b.amount ||
		gr.Grant.Source != b.source || !gr.Grant.ExpiresAt.Equal(b.expiresAt) || gr.Grant.AccountID != id {
		h.fatalf("%s: engine returned %+v created=%v; model %+v created=%v", what, gr.Grant, gr.Created, *b, want.created)
	}
	return id
}

func (h *harness) doReserve() string {
	t := h.t
	id := h.drawAccount("reserve_account")
	action := pick(t, "reserve_action", []string{"generate", "edit", "crop", "upscale", "inpaint", "video", "video"})
	if uniformGen(25).Draw(t, "reserve_action_bad") == 0 {
		action = "teleport"
	}
	qty := rapid.Int64Range(1, 4).Draw(t, "reserve_quantity")
	if uniformGen(30).Draw(t, "reserve_quantity_bad") == 0 {
		qty = pick(t, "reserve_quantity_bad_value", []int64{0, -1, 101})
	}
	var ttl int64
	switch uniformGen(20).Draw(t, "reserve_ttl_kind") {
	case 0:
		ttl = pick(t, "reserve_ttl_bad", []int64{-1, 86401})
	case 1:
		ttl = 86400
	case 2, 3, 4, 5, 6, 7, 8:
		ttl = rapid.Int64Range(1, 7200).Draw(t, "reserve_ttl")
	}
	want := h.m.reserve(id, action, qty, ttl)
	res, err := h.eng.Reserve(h.ctx, engine.ReserveParams{AccountID: id, ReserveParams: ledger.ReserveParams{
		Action: action, Quantity: qty, TTLSeconds: ttl,
	}})
	what := fmt.Sprintf("reserve %s %d×%s ttl %d", id, qty, action, ttl)
	touched := ""
	if want.code == "" || want.code == ledger.EInsufficient {
		touched = id
	}
	if !h.expectCode(what, want, err) {
		return touched
	}
	hd := res.Value
	if hd == nil {
		h.fatalf("%s: result %T", what, res)
	}
	if _, dup := h.m.holds[hd.ID]; dup || hd.ID == "" {
		h.fatalf("%s: hold id %q reused", what, hd.ID)
	}
	h.m.addHold(want.hold, hd.ID)
	h.compareHold(what, hd, want.hold)
	return id
}

func (h *harness) doCapture() string {
	t := h.t
	id := h.drawHold("capture_hold")
	qty := rapid.Int64Range(0, 4).Draw(t, "capture_quantity")
	if uniformGen(15).Draw(t, "capture_quantity_bad") == 0 {
		qty = pick(t, "capture_quantity_bad_value", []int64{-1, 5, 101})
	}
	want := h.m.capture(id, qty)
	res, err := h.eng.Capture(h.ctx, engine.HoldParams{HoldID: id, Quantity: qty})
	return h.holdOutcome(fmt.Sprintf("capture %s quantity %d", id, qty), id, want, res, err)
}

func (h *harness) doRelease() string {
	t := h.t
	id := h.drawHold("release_hold")
	reason := pick(t, "release_reason", mReasons)
	if uniformGen(20).Draw(t, "release_reason_bad") == 0 {
		reason = "bored"
	}
	want := h.m.release(id, reason)
	res, err := h.eng.Release(h.ctx, engine.HoldParams{HoldID: id, Reason: reason})
	return h.holdOutcome(fmt.Sprintf("release %s reason %q", id, reason), id, want, res, err)
}

func (h *harness) doExtend() string {
	t := h.t
	id := h.drawHold("extend_hold")
	ttl := rapid.Int64Range(1, 7200).Draw(t, "extend_ttl")
	if uniformGen(15).Draw(t, "extend_ttl_bad") == 0 {
		ttl = pick(t, "extend_ttl_bad_value", []int64{0, -5, 86401})
	}
	want := h.m.extend(id, ttl)
	res, err := h.eng.Extend(h.ctx, engine.HoldParams{HoldID: id, TTLSeconds: ttl})
	return h.holdOutcome(fmt.Sprintf("extend %s ttl %d", id, ttl), id, want, res, err)
}

func (h *harness) holdOutcome(what, id string, want outcome, res engine.Outcome[*ledger.Hold], err error) string {
	touched := ""
	if mh := h.m.holds[id]; mh != nil {
		touched = mh.account
	}
	if !h.expectCode(what, want, err) {
		return touched
	}
	hd := res.Value
	if hd == nil {
		h.fatalf("%s: result %T", what, res)
	}
	h.compareHold(what, hd, want.hold)
	return touched
}

func (h *harness) doGetHold() string {
	id := h.drawHold("get_hold")
	mh := h.m.holds[id]
	hd, err := h.eng.GetHold(h.ctx, id)
	what := "get hold " + id
	if mh == nil {
		h.expectCode(what, fail(ledger.ENotFound), err)
		return ""
	}
	h.m.touch(h.m.accounts[mh.account])
	h.expectCode(what, outcome{}, err)
	h.compareHold(what, &hd, mh)
	return mh.account
}

func (h *harness) doBalance() string {
	id := h.drawAccount("balance_account")
	if h.m.accounts[id] == nil {
		_, err := h.eng.Balance(h.ctx, id)
		h.expectCode("balance "+id, fail(ledger.ENotFound), err)
		return ""
	}
	// A quote reads the same (touched) state; an invalid one touches nothing.
	a := h.m.accounts[id]
	action := pick(h.t, "quote_action", []string{"generate", "video", "crop"})
	qty := rapid.Int64Range(0, 5).Draw(h.t, "quote_quantity")
	q, err := h.eng.Quote(h.ctx, id, action, qty)
	what := fmt.Sprintf("quote %s %d×%s", id, qty, action)
	if qty < 1 {
		h.expectCode(what, fail(ledger.EInvalid), err)
		return id
	}
	h.m.touch(a)
	h.expectCode(what, outcome{}, err)
	cat := mCategory(action)
	cost := mPrices[action] * qty
	avail := h.m.available(a, cat)
	if q.CostCredits != cost || q.UnitPriceCredits != mPrices[action] || q.Category != cat || q.AvailableCredits != avail || q.Affordable != (avail >= cost) {
		h.fatalf("%s: engine %+v; model cost %d available %d", what, q, cost, avail)
	}
	return id // checkBalance compares the balance
}

func (h *harness) doListEntries() string {
	id := h.drawAccount("list_account")
	limit := rapid.IntRange(1, 7).Draw(h.t, "list_limit")
	a := h.m.accounts[id]
	_, _, err := h.eng.ListEntries(h.ctx, id, 0, limit)
	what := "list entries of " + id
	if a == nil {
		h.expectCode(what, fail(ledger.ENotFound), err)
		return ""
	}
	h.m.touch(a)
	h.expectCode(what, outcome{}, err)
	// Page through everything and compare with the stored history.
	hist, err := h.store.LoadHistory(h.ctx, id)
	if err != nil {
		h.fatalf("load history: %v", err)
	}
	var got []int64
	var before int64
	for pages := 0; ; pages++ {
		es, next, err := h.eng.ListEntries(h.ctx, id, before, limit)
		if err != nil {
			h.fatalf("%s: %v", what, err)
		}
		for _, e := range es {
			got = append(got, e.ID)
		}
		if next == 0 {
			break
		}
		if pages > 10000 {
			h.fatalf("%s: pagination does not end", what)
		}
		before = next
	}
	var want []int64
	for i := len(hist.Entries) - 1; i >= 0; i-- {
		want = append(want, hist.Entries[i].ID)
	}
	if !slices.Equal(got, want) {
		h.fatalf("%s (limit %d): paged ids %v, history (newest first) %v", what, limit, got, want)
	}
	return id
}

func (h *harness) doAdvance() {
	t := h.t
	var d time.Duration
	kind := uniformGen(6).Draw(t, "advance_kind")
	modelStats.add(fmt.Sprintf("advance:%d", kind))
	switch kind {
	case 0:
		d = time.Duration(rapid.Int64Range(1, 120).Draw(t, "advance_s")) * time.Second
	case 1:
		d = time.Duration(rapid.Int64Range(1, 180).Draw(t, "advance_min")) * time.Minute
	case 2:
		d = time.Duration(rapid.Int64Range(1, 30*60).Draw(t, "advance_min_long")) * time.Minute
	case 3:
		d = time.Duration(rapid.Int64Range(1, 3*86400).Draw(t, "advance_s_days")) * time.Second
	default:
		// To (just before, at, just after) an instant where a rule changes.
		var targets []time.Time
		for _, id := range h.m.order {
			a := h.m.accounts[id]
			if nr := h.m.nextRefresh(a); nr.After(h.m.now) {
				targets = append(targets, nr)
			}
			for _, b := range a.buckets {
				if b.expiresAt.After(h.m.now) {
					targets = append(targets, b.expiresAt)
				}
			}
		}
		for _, id := range h.m.holdIDs {
			if hd := h.m.holds[id]; hd.status == ledger.HoldPending && hd.expiresAt.After(h.m.now) {
				targets = append(targets, hd.expiresAt)
			}
		}
		targets = append(targets, h.m.jobTargets()...)
		if len(targets) == 0 {
			d = time.Hour
			break
		}
		slices.SortFunc(targets, time.Time.Compare)
		target := pick(t, "advance_target", targets)
		target = target.Add(time.Duration(rapid.IntRange(-1, 1).Draw(t, "advance_target_offset_us")) * time.Microsecond)
		d = max(target.Sub(h.m.now), 0)
	}
	if err := h.clock.Advance(d); err != nil {
		h.fatalf("advance: %v", err)
	}
	h.m.now = h.clock.Now()
	h.note("advanced by %v", d)
	// What the sweeper does on a clock move.
	h.m.sweep()
	h.eng.SweepHolds(h.ctx, h.clock.Now())
}

// ---------------------------------------------------------------------------
// Checks.

func (h *harness) checkBalance(id string) {
	a := h.m.accounts[id]
	if a == nil {
		return
	}
	h.m.touch(a)
	b, err := h.eng.Balance(h.ctx, id)
	if err != nil {
		h.fatalf("balance %s: %v", id, err)
	}
	m := h.m
	wantNext := m.nextRefresh(a)
	var gotNext time.Time
	if b.NextDailyRefreshAt != nil {
		gotNext = *b.NextDailyRefreshAt
	}
	wantImage, wantVideo := m.available(a, ledger.CategoryImage), m.available(a, ledger.CategoryVideo)
	if b.AvailableCredits != m.available(a, "") || b.AvailableByCategory[ledger.CategoryImage] != wantImage ||
		b.AvailableByCategory[ledger.CategoryVideo] != wantVideo || b.HeldCredits != m.held(a) ||
		b.Plan != a.plan || b.Timezone != a.tz || !gotNext.Equal(wantNext) || (b.NextDailyRefreshAt != nil) != !wantNext.IsZero() {
		h.fatalf("balance of %s: engine available %d %v held %d plan %s tz %s next %v;\nmodel available %d image %d video %d held %d plan %s tz %s next %v\nmodel buckets:\n%s",
			id, b.AvailableCredits, b.AvailableByCategory, b.HeldCredits, b.Plan, b.Timezone, b.NextDailyRefreshAt,
			m.available(a, ""), wantImage, wantVideo, m.held(a), a.plan, a.tz, wantNext, h.dumpModel(a))
	}
	if b.AvailableCredits < 0 || b.HeldCredits < 0 {
		h.fatalf("balance of %s negative: %+v", id, b)
	}
}

type classKey struct {
	source           ledger.Source
	expires, created int64 // unix µs; 0 for a zero time
}

func micro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func (k classKey) String() string {
	exp := "never"
	if k.expires != 0 {
		exp = time.UnixMicro(k.expires).UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%s exp=%s created=%s", k.source, exp, time.UnixMicro(k.created).UTC().Format(time.RFC3339Nano))
}

type classSums struct{ n, amount, remaining, held, charged, expired int64 }

func modelKey(b *mBucket) classKey { return classKey{b.source, micro(b.expiresAt), micro(b.createdAt)} }

func storedKey(g *ledger.Grant) classKey {
	return classKey{g.Source, micro(g.ExpiresAt), micro(g.CreatedAt)}
}

func (h *harness) dumpModel(a *mAccount) string {
	var sb strings.Builder
	for _, b := range h.m.burnOrder(a) {
		fmt.Fprintf(&sb, "  %v: amount %d remaining %d held %d charged %d expired %d\n", modelKey(b), b.amount, b.remaining, b.held, b.charged, b.expired)
	}
	fmt.Fprintf(&sb, "  plan %s tz %s lastDate %s notBefore %s\n", a.plan, a.tz, a.lastDate, a.notBefore.Format(time.RFC3339Nano))
	return sb.String()
}

// checkStored compares the accounts' stored buckets and holds with the
// model, reading the store directly (which touches nothing), so this also
// checks that nothing happened that the model did not expect. A full check
// reads each account's whole history (every bucket and hold); a light one
// only its live state (remaining and held credits per class, pending holds).
func (h *harness) checkStored(ids []string, full bool) {
	for _, id := range ids {
		a := h.m.accounts[id]
		var acct ledger.Account
		var grants []*ledger.Grant
		var holds []*ledger.Hold
		var activeJobs map[string]*ledger.Job
		if full {
			hist, err := h.store.LoadHistory(h.ctx, id)
			if err != nil {
				h.fatalf("load history of %s: %v", id, err)
			}
			acct, grants, holds = hist.Account, hist.Grants, hist.Holds
		} else {
			st, err := h.store.LoadState(h.ctx, id)
			if err != nil {
				h.fatalf("load state of %s: %v", id, err)
			}
			acct, grants, activeJobs = st.Account, st.Grants, st.Jobs
			for _, hd := range st.Holds {
				holds = append(holds, hd)
			}
		}
		if acct.Plan != a.plan || acct.Timezone != a.tz {
			h.fatalf("stored account %s: plan %s tz %s; model plan %s tz %s", id, acct.Plan, acct.Timezone, a.plan, a.tz)
		}
		got, want := map[classKey]classSums{}, map[classKey]classSums{}
		add := func(m map[classKey]classSums, k classKey, amount, remaining, held, charged, expired int64) {
			if !full {
				// Buckets of a class are interchangeable, so which of them
				// are exhausted (not live) is not observable: compare only
				// the live parts.
				if remaining == 0 && held == 0 {
					return
				}
				amount, charged, expired = 0, 0, 0
			}
			s := m[k]
			if full {
				s.n++
			}
			s.amount += amount
			s.remaining += remaining
			s.held += held
			s.charged += charged
			s.expired += expired
			m[k] = s
		}
		keyOf := map[string]classKey{}
		for _, g := range grants {
			k := storedKey(g)
			keyOf[g.ID] = k
			add(got, k, g.AmountCredits, g.RemainingCredits, g.HeldCredits, g.ChargedCredits, g.ExpiredCredits)
		}
		for _, b := range a.buckets {
			add(want, modelKey(b), b.amount, b.remaining, b.held, b.charged, b.expired)
		}
		if !mapsEqual(got, want) {
			h.fatalf("stored buckets of %s differ from the model (full=%v)\n%s\nmodel:\n%s", id, full, diffClasses(got, want), h.dumpModel(a))
		}
		n := 0
		for _, sh := range holds {
			mh := h.m.holds[sh.ID]
			if mh == nil || mh.account != id {
				h.fatalf("stored hold %s of %s unknown to the model: %+v", sh.ID, id, *sh)
			}
			n++
			h.compareHold("stored hold of "+id, sh, mh)
			// Portions in burn-down order, by bucket class.
			var gotP, wantP []string
			for _, p := range sh.Portions {
				gotP = append(gotP, fmt.Sprintf("%v:%d", keyOf[p.GrantID], p.Credits))
			}
			for _, p := range mh.portions {
				wantP = append(wantP, fmt.Sprintf("%v:%d", modelKey(p.b), p.credits))
			}
			if !slices.Equal(mergeRuns(gotP), mergeRuns(wantP)) {
				h.fatalf("hold %s portions\nengine: %v\nmodel:  %v", sh.ID, gotP, wantP)
			}
		}
		wantN := 0
		for _, hid := range h.m.holdIDs {
			if mh := h.m.holds[hid]; mh.account == id && (full || mh.status == ledger.HoldPending) {
				wantN++
			}
		}
		if n != wantN {
			h.fatalf("account %s: %d stored holds, model has %d (full=%v)", id, n, wantN, full)
		}
		h.checkStoredJobs(id, activeJobs, full)
	}
}

// mergeRuns merges consecutive portions of the same bucket class (buckets of
// one class are interchangeable, so their split is not observable).
func mergeRuns(ps []string) []string {
	var out []string
	var lastKey string
	var lastN int64
	flush := func() {
		if lastKey != "" {
			out = append(out, fmt.Sprintf("%s:%d", lastKey, lastN))
		}
	}
	for _, p := range ps {
		i := strings.LastIndexByte(p, ':')
		k := p[:i]
		n, _ := strconv.ParseInt(p[i+1:], 10, 64)
		if k == lastKey {
			lastN += n
			continue
		}
		flush()
		lastKey, lastN = k, n
	}
	flush()
	return out
}

func mapsEqual(a, b map[classKey]classSums) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func diffClasses(got, want map[classKey]classSums) string {
	keys := map[classKey]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var lines []string
	for k := range keys {
		g, w := got[k], want[k]
		mark := " "
		if g != w {
			mark = "!"
		}
		lines = append(lines, fmt.Sprintf("%s %v\n     engine %+v\n     model  %+v", mark, k, g, w))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func (h *harness) compareHold(what string, got *ledger.Hold, want *mHold) {
	h.t.Helper()
	if got.ID != want.id || got.AccountID != want.account || got.Action != want.action || got.Category != want.category ||
		got.Quantity != want.quantity || got.UnitPriceCredits != want.unit || got.AmountCredits != want.amount ||
		got.Status != want.status || !got.ExpiresAt.Equal(want.expiresAt) || !got.CreatedAt.Equal(want.createdAt) ||
		!got.ResolvedAt.Equal(want.resolvedAt) ||
		got.CapturedQuantity != want.capturedQty || got.CapturedCredits != want.capturedCredits ||
		got.ReleaseReason != want.reason {
		h.fatalf("%s: engine hold %+v\nmodel hold id=%s account=%s action=%s qty=%d unit=%d amount=%d status=%s expires=%s resolved=%s captured=%d/%d reason=%q",
			what, *got, want.id, want.account, want.action, want.quantity, want.unit, want.amount, want.status,
			want.expiresAt.Format(time.RFC3339Nano), want.resolvedAt.Format(time.RFC3339Nano), want.capturedQty, want.capturedCredits, want.reason)
	}
	var sum int64
	for _, p := range got.Portions {
		sum += p.Credits
	}
	if sum != got.AmountCredits {
		h.fatalf("%s: hold %s portions sum %d != amount %d", what, got.ID, sum, got.AmountCredits)
	}
}

func (h *harness) verify() {
	rep, err := ledger.VerifyStore(h.ctx, h.cfg, h.store)
	if err != nil {
		h.fatalf("verify: %v", err)
	}
	if len(rep.Problems) > 0 {
		h.fatalf("verify found problems: %v", rep.Problems)
	}
	if rep.Accounts != len(h.m.order) {
		h.fatalf("verify saw %d accounts, model has %d", rep.Accounts, len(h.m.order))
	}
}
