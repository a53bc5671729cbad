// Package engine runs the credit rules of package ledger against a store.
//
// It owns three things:
//
//   - Group commit. Every write is an operation on a queue. A committer
//     goroutine takes up to Limits.BatchOpsMax queued operations at a time,
//     applies them in arrival order to working copies of the accounts'
//     states, writes everything in one store transaction, commits (one fsync
//     for the whole batch), and only then answers each caller. An operation
//     is acknowledged only once durable; a failed commit answers every
//     operation of the batch with "unavailable" and nothing of it is visible,
//     unless the store refused the data of some operations
//     (ledger.ErrBadData): then those are found by bisecting the batch and
//     answered alone with an error, and the others commit
//     (commitIsolating).
//     There is one committer on an exclusive store; on a shared one
//     (PostgreSQL) Options.Committers of them each own the accounts that
//     hash to them and commit concurrently, as several nodes would.
//   - Per-account state in memory. Committed states are immutable
//     snapshots; reads compute balances from them without touching the
//     store, and a hot account costs no lock convoy: its operations are
//     applied one after another inside a batch. At most
//     Limits.CachedAccountsMax accounts are cached (CLOCK eviction, see
//     stateCache); the committer reloads an evicted account from the store
//     when an operation needs it, and a read of one goes through the
//     committer. On a non-exclusive store (several nodes on PostgreSQL) the
//     committer locks the batch's account rows and reloads any state whose
//     version moved.
//   - Lazy time rules. Daily allowances, bucket expiry and hold expiry are
//     applied when an account is next touched (reads included), and a
//     sweeper touches accounts whose holds expire so their credits come back
//     even if nobody looks.
//
// The clock is read once per batch: every operation in it sees the same now.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Engine is the Go API of creditd's ledger.
type Engine struct {
	cfg   *ledger.Config
	store ledger.Store
	coord coordination // chosen once, from store.Exclusive
	clock ledger.Clock
	log   *slog.Logger
	m     *Metrics

	ops  []chan *op // one queue per committer; an account's operations all go to one
	quit chan struct{}
	done sync.WaitGroup // the committers

	cache *stateCache // committed snapshots, never mutated; at most Limits.CachedAccountsMax
	// reload is set when the store failed a batch: the next batch it takes
	// clears cache first.
	reload atomic.Bool

	// idemFlight counts, with several committers, the operations queued
	// or committing per idempotency key, and the committer they went to.
	idemMu     sync.Mutex
	idemFlight map[[2]string]flight

	// sweepMu is held for a whole SweepHolds, so that one that finds the
	// due entries already taken waits for the sweep that took them.
	sweepMu sync.Mutex

	holdMu   sync.Mutex
	holdAcct map[string]string // pending hold id → account id
	jobAcct  map[string]string // active job id → account id
	expiries expiryHeap
	// deadlines orders the buckets' next time-driven changes
	// (deadlines.go); deadlineAt is each bucket's current one, so that a
	// bucket rewritten by every charge is pushed once per deadline.
	deadlines  expiryHeap
	deadlineAt map[string]time.Time
	// lastDeadlineScan is when scanShared last read the deadlines (the
	// sweeper's goroutine only).
	lastDeadlineScan time.Time
	queue            *jobQueue
	polls            *workerPolls
	// expiriesCompactAt is the heap size at which compactExpiries next runs.
	expiriesCompactAt int

	drain     chan struct{}
	drainOnce sync.Once
	closeOnce sync.Once
	wg        sync.WaitGroup

	bus         Bus
	unsubscribe func()

	blobs BlobDeleter // nil: staged outputs are not swept
}

// Options configure an Engine.
type Options struct {
	Config  *ledger.Config
	Store   ledger.Store
	Clock   ledger.Clock
	Logger  *slog.Logger
	Metrics *Metrics // nil: a private, unregistered set
	// Bus carries committed events (default: a LocalBus).
	Bus Bus
	// Committers is the number of committer goroutines (default: 1 on an
	// exclusive store, DefaultSharedCommitters on a shared one). Each owns
	// the accounts that hash to it (FNV-1a), so an account's operations keep
	// their order. On an exclusive store (SQLite) batches are written one at
	// a time anyway; on PostgreSQL several transactions on disjoint accounts
	// run at once, as they would from several nodes.
	Committers int
	// SweepInterval is how often the hold-expiry sweeper runs on the
	// system clock (default 1s). A *ledger.TestClock also wakes it on moves.
	SweepInterval time.Duration
	// Blobs holds the assets' bytes; the sweeper deletes the staged
	// outputs of ended jobs from it (SweepStagedOutputs). Nil: it does not.
	Blobs BlobDeleter
}

// New starts an engine: it loads pending holds for the sweeper and starts
// the committer. Close stops it.
func New(ctx context.Context, o Options) (*Engine, error) {
	if o.Config == nil {
		o.Config = ledger.DefaultConfig()
	}
	if o.Clock == nil {
		o.Clock = ledger.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Bus == nil {
		o.Bus = NewLocalBus()
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Second
	}
	coord := coordinationOf(o.Store)
	if o.Committers <= 0 {
		o.Committers = coord.committers()
	}
	e := &Engine{
		cfg: o.Config, store: o.Store, coord: coord, clock: o.Clock, log: o.Logger, m: o.Metrics,
		quit:     make(chan struct{}),
		drain:    make(chan struct{}),
		cache:    newStateCache(o.Config.Limits.CachedAccountsMax),
		bus:      o.Bus,
		holdAcct: map[string]string{},
		jobAcct:  map[string]string{},
		queue:    newJobQueue(),
		polls:    newWorkerPolls(),

		idemFlight: map[[2]string]flight{},

		expiriesCompactAt: expiriesCompactMin,
		blobs:             o.Blobs,
	}
	pending, err := o.Store.ListPendingHolds(ctx)
	if err != nil {
		return nil, fmt.Errorf("load pending holds: %w", err)
	}
	for _, p := range pending {
		e.holdAcct[p.HoldID] = p.AccountID
		e.expiries.push(p)
	}
	active, err := o.Store.ListActiveJobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("load active jobs: %w", err)
	}
	jobs := make(map[string]*ledger.Job, len(active))
	for i := range active {
		jobs[active[i].ID] = &active[i]
	}
	e.indexJobs(jobs)
	e.deadlineAt = map[string]time.Time{}
	if err := e.loadDeadlines(ctx); err != nil {
		return nil, fmt.Errorf("load grant deadlines: %w", err)
	}
	e.unsubscribe = coord.start(e)
	// The queue limit is shared out: OpQueueMax operations in all.
	perQueue := max(1, o.Config.Limits.OpQueueMax/o.Committers)
	for range o.Committers {
		ch := make(chan *op, perQueue)
		e.ops = append(e.ops, ch)
		e.done.Add(1)
		go e.run(ch)
	}
	e.wg.Add(1)
	go e.sweep(o.SweepInterval)
	return e, nil
}

// Config returns the engine's configuration.
func (e *Engine) Config() *ledger.Config { return e.cfg }

// Clock returns the engine's clock.
func (e *Engine) Clock() ledger.Clock { return e.clock }

// Drain ends pending and future lease long-polls at once (answering "no
// job"), so a graceful shutdown does not wait for them.
func (e *Engine) Drain() { e.drainOnce.Do(func() { close(e.drain) }) }

// Close stops the sweeper, commits what is queued and stops the committer.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		e.Drain()
		if e.unsubscribe != nil {
			e.unsubscribe()
		}
		close(e.quit)
		e.wg.Wait()
		e.done.Wait()
	})
}

type result struct {
	v   any
	err error
	// With an idempotency key: the response stored under it, rendered
	// now or (replayed) stored by an earlier operation.
	replayed bool
	status   int
	body     []byte
}

// op is one queued operation on one account.
type op struct {
	kind    string
	account string
	apply   func(b *batch, st *ledger.State) (any, error)
	idem    *IdempotencyKey
	// render turns apply's result into the response stored under idem.
	render func(v any) (status int, body []byte)
	// done is signalled once res is set. (A channel of result would cost
	// a second allocation per operation: its buffer holds pointers.)
	done chan struct{}
	res  result
}

func (e *Engine) submit(ctx context.Context, o *op) (any, error) {
	r := e.submitResult(ctx, o)
	return r.v, r.err
}

// submitResult queues an operation and waits for its result.
func (e *Engine) submitResult(ctx context.Context, o *op) result {
	o.done = make(chan struct{}, 1)
	select {
	case <-e.quit:
		return result{err: ledger.Errorf(ledger.EUnavailable, "the service is shutting down")}
	default:
	}
	q := e.ops[0]
	if len(e.ops) > 1 {
		n := shard(o.account, len(e.ops))
		q = e.ops[n]
		if o.idem != nil {
			if err := e.claimKey(o.idem, n); err != nil {
				return result{err: err}
			}
		}
	}
	select {
	case q <- o:
	default:
		e.releaseKeys([]*op{o})
		e.m.rejected.Inc()
		return result{err: ledger.Errorf(ledger.EUnavailable, "too many operations queued (limit %d); retry shortly", cap(q)*len(e.ops))}
	}
	select {
	case <-o.done:
		r := o.res
		e.m.ops.WithLabelValues(o.kind, outcome(r.err)).Inc()
		return r
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
}

// flight is an idempotency key's operations in flight: how many, and the
// committer they went to.
type flight struct{ committer, ops int }

// claimKey records an operation with an idempotency key on its way to
// committer n. Operations on one account go to one committer, which sees an
// earlier one's record (a retry gets its replay); an operation with a key
// in flight on another committer is another account's, so another request:
// like Stripe, it is refused (409, retry) instead of racing the first to
// the key's record.
func (e *Engine) claimKey(idem *IdempotencyKey, n int) error {
	k := [2]string{idem.Principal, idem.Key}
	e.idemMu.Lock()
	defer e.idemMu.Unlock()
	f, ok := e.idemFlight[k]
	if ok && f.committer != n {
		return ledger.Errorf(ledger.EConflict,
			"Idempotency-Key %q is in use by a concurrent request; retry once it has completed", idem.Key)
	}
	e.idemFlight[k] = flight{committer: n, ops: f.ops + 1}
	return nil
}

// releaseKeys forgets the keys of answered operations (claimKey).
func (e *Engine) releaseKeys(ops []*op) {
	if len(e.ops) == 1 {
		return
	}
	e.idemMu.Lock()
	defer e.idemMu.Unlock()
	for _, o := range ops {
		if o.idem == nil {
			continue
		}
		k := [2]string{o.idem.Principal, o.idem.Key}
		if f := e.idemFlight[k]; f.ops > 1 {
			f.ops--
			e.idemFlight[k] = f
		} else {
			delete(e.idemFlight, k)
		}
	}
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return ledger.ErrorCode(err)
}

func (e *Engine) cached(id string) *ledger.State { return e.cache.get(id) }

// state returns a committed, touched snapshot of an account.
func (e *Engine) state(ctx context.Context, id string) (*ledger.State, error) {
	if st, err := e.coord.read(ctx, e, id); st != nil || err != nil {
		return st, err
	}
	// The op answers with the batch's working state of the account, which
	// is the committed snapshot once the caller hears back; it is not read
	// from the cache, which may have evicted it by then.
	v, err := e.submit(ctx, &op{kind: "touch", account: id, apply: func(b *batch, st *ledger.State) (any, error) {
		if st == nil {
			return nil, accountNotFound(id)
		}
		return st, nil
	}})
	if err != nil {
		return nil, err
	}
	return v.(*ledger.State), nil
}

func accountNotFound(id string) error {
	return ledger.Errorf(ledger.ENotFound, "no account %q", id)
}

// batchYieldsMax bounds the times a committer yields its core
// (runtime.Gosched) while gathering a batch; it stops as soon as a yield
// brought no operation. Without them, a committer took what was queued the
// moment its last commit returned, before the callers it had just answered
// could queue again: batches were smaller and throughput lower (measured
// in docs/performance.md, Tuning constants). With nothing else to run a
// yield returns at once, so an idle engine's latency does not move.
const batchYieldsMax = 3

// DefaultSharedCommitters is the default number of committers on a shared
// store (Options.Committers), chosen with creditd bench on PostgreSQL
// (docs/performance.md, Tuning constants).
const DefaultSharedCommitters = 2

// shard returns the committer of an account: FNV-1a of its id, modulo n.
func shard(account string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(account); i++ {
		h ^= uint32(account[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// run is a committer loop: it takes batches from its queue.
func (e *Engine) run(ops chan *op) {
	defer e.done.Done()
	batch := make([]*op, 0, e.cfg.Limits.BatchOpsMax)
	for {
		var first *op
		select {
		case first = <-ops:
		case <-e.quit:
			// Commit whatever is still queued, then stop.
			for {
				batch = batch[:0]
				for len(batch) < cap(batch) {
					select {
					case o := <-ops:
						batch = append(batch, o)
						continue
					default:
					}
					break
				}
				if len(batch) == 0 {
					return
				}
				e.commit(batch)
			}
		}
		batch = append(batch[:0], first)
		// Gather the batch, yielding the core while it grows: callers
		// answered by the last commit are about to queue their next
		// operations, and a batch that waits for them pays one commit
		// for all (see batchYieldsMax).
		for y := 0; ; y++ {
			n := len(batch)
		fill:
			for len(batch) < cap(batch) {
				select {
				case o := <-ops:
					batch = append(batch, o)
				default:
					break fill
				}
			}
			if y == batchYieldsMax || y > 0 && len(batch) == n || len(batch) == cap(batch) {
				break
			}
			runtime.Gosched()
		}
		e.commit(batch)
	}
}

// batch is the working context of one commit.
type batch struct {
	e       *Engine
	ctx     context.Context
	tx      ledger.Batch
	now     time.Time
	ch      *ledger.Changes
	states  map[string]*ledger.State   // working copies; nil value: account absent
	stored  map[string]*ledger.Account // each working copy's account as stored before the batch (in its read-only snapshot)
	touched map[string]bool
	refs    map[ledger.GrantReferenceParams]*ledger.Grant
	idem    map[[2]string]*ledger.IdempotencyRecord
	records []*ledger.IdempotencyRecord
	// The batch's webhook events (outbox.go): raised by operations, then
	// all of them, written with the batch.
	pending pendingEvents
	events  []ledger.WebhookEvent
	// bumped: the store incremented the version of every account it
	// locked (Batch.LockAndBumpAccounts); the working copies carry the
	// new versions.
	bumped bool
}

func (e *Engine) commit(ops []*op) {
	start := time.Now()
	results := make([]result, len(ops))
	e.commitIsolating(context.Background(), ops, results)
	// The batch's records are committed (or nothing is): later
	// operations with its keys find them.
	e.releaseKeys(ops)
	for i, o := range ops {
		o.res = results[i]
		o.done <- struct{}{}
	}
	e.m.batchOps.Observe(float64(len(ops)))
	e.m.commitSeconds.Observe(time.Since(start).Seconds())
}

// commitIsolating commits ops as one batch and sets their results. When
// the store refuses the data of the batch (ledger.ErrBadData: a NUL byte,
// invalid UTF-8, a constraint), the operations responsible are found by
// bisection: each half is committed on its own, in order, in a fresh
// transaction from the committed snapshots, down to single operations; one
// that still fails alone is answered with the store's error, and the rest
// commit and are answered as usual. The halving bounds the depth at
// ⌈log₂ len(ops)⌉, and each refused operation costs at most two
// transactions per level. Any other failure (the store's own: I/O, a full
// disk, a lost connection) answers every operation not yet committed
// "unavailable", without retrying any. It returns false after such a
// failure.
func (e *Engine) commitIsolating(ctx context.Context, ops []*op, results []result) bool {
	err := e.commitBatch(ctx, ops, results)
	if err == nil {
		return true
	}
	var inv *ledger.InvariantError
	if errors.As(err, &inv) {
		panic(err)
	}
	if !errors.Is(err, ledger.ErrBadData) {
		e.log.Error("batch commit failed", "ops", len(ops), "err", err)
		e.m.commitFailures.Inc()
		// The store may reopen itself before it takes the next batch
		// (SQLite heals its journal): that batch reloads the cache.
		e.reload.Store(true)
		unavailable(results)
		return false
	}
	if len(ops) == 1 {
		e.log.Warn("operation refused by the store", "kind", ops[0].kind, "account", ops[0].account, "err", err)
		e.m.isolatedOps.Inc()
		results[0] = result{err: refused(err)}
		return true
	}
	mid := len(ops) / 2
	if !e.commitIsolating(ctx, ops[:mid], results[:mid]) {
		unavailable(results[mid:])
		return false
	}
	return e.commitIsolating(ctx, ops[mid:], results[mid:])
}

// reloadAfterFailure drops the cached states in the first batch the store
// takes after it failed one: every account is read from the store again.
func (e *Engine) reloadAfterFailure() {
	if e.reload.CompareAndSwap(true, false) {
		e.cache.clear()
		e.m.cachedAccounts.Set(0)
	}
}

// unavailable answers operations whose batch the store failed to commit.
func unavailable(results []result) {
	for i := range results {
		results[i] = result{err: ledger.Errorf(ledger.EUnavailable, "the write could not be committed; retry")}
	}
}

// refused is the answer to an operation whose data the store refused: the
// code and message of the store's *ledger.Error (written by the store for
// callers), without the driver's error, which only the log shows.
func refused(err error) error {
	var le *ledger.Error
	if errors.As(err, &le) && le.Code != ledger.EInternal {
		return ledger.Errorf(le.Code, "%s", le.Message)
	}
	return ledger.Errorf(ledger.EInvalid, "the store refused a value of the request")
}

func (e *Engine) commitBatch(ctx context.Context, ops []*op, results []result) (err error) {
	tx, err := e.store.BeginBatch(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	e.reloadAfterFailure()
	b := &batch{
		e: e, ctx: ctx, tx: tx, now: e.clock.Now(), ch: ledger.NewChanges(),
		states: map[string]*ledger.State{}, stored: map[string]*ledger.Account{}, touched: map[string]bool{},
		refs: map[ledger.GrantReferenceParams]*ledger.Grant{}, idem: map[[2]string]*ledger.IdempotencyRecord{},
	}
	ids := make([]string, 0, len(ops))
	for _, o := range ops {
		ids = append(ids, o.account)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	versions, err := e.coord.lock(ctx, b, ids, ops)
	if err != nil {
		return err
	}
	if err := b.snapshots(ids, versions); err != nil {
		return err
	}
	for i, o := range ops {
		results[i] = b.apply(o)
	}
	return e.write(b, results, ops)
}

// snapshots sets the batch's working copies of accounts ids from their
// committed snapshots: cached ones, unless another node moved their
// version (versions, nil on an exclusive store), and the rest loaded from
// the store. Accounts that do not exist get a nil state.
func (b *batch) snapshots(ids []string, versions map[string]int64) error {
	snaps := make(map[string]*ledger.State, len(ids))
	var missing []string
	for _, id := range ids {
		st := b.e.cached(id)
		if st != nil && versions != nil && versions[id] != st.Account.Version {
			st = nil
		}
		if st == nil && versions != nil {
			if _, ok := versions[id]; !ok {
				b.states[id] = nil // no such account
				continue
			}
		}
		if st == nil {
			missing = append(missing, id)
			continue
		}
		snaps[id] = st
	}
	if len(missing) > 0 {
		loaded, err := loadStates(b.ctx, b.tx, missing)
		if err != nil {
			return err
		}
		for _, id := range missing {
			st := loaded[id]
			if st == nil {
				b.states[id] = nil
				continue
			}
			st.SortGrants(b.e.cfg)
			snaps[id] = st
		}
	}
	for id, st := range snaps {
		w := workingCopy(st)
		if b.bumped {
			// As stored now. (A state loaded in this transaction already
			// has it; a cached one has the version before the increment.)
			w.Account.Version = versions[id] + 1
		}
		b.states[id] = w
		// A pointer into the snapshot, which nothing writes: an Account
		// is too large for a map to hold in place, so a value would cost
		// an allocation per account and batch.
		b.stored[id] = &st.Account
	}
	return nil
}

// loadStates loads the committed states of accounts; an account that does
// not exist is absent from the map. Many accounts are loaded in one call
// (Batch.LoadStates), a single one with LoadState.
func loadStates(ctx context.Context, tx ledger.Batch, ids []string) (map[string]*ledger.State, error) {
	if len(ids) > 1 {
		return tx.LoadStates(ctx, ids)
	}
	out := make(map[string]*ledger.State, len(ids))
	for _, id := range ids {
		st, err := tx.LoadState(ctx, id)
		if err != nil {
			if ledger.ErrorCode(err) == ledger.ENotFound {
				continue
			}
			return nil, err
		}
		out[id] = st
	}
	return out, nil
}

// compact turns a committed working state into the snapshot the cache
// keeps: without exhausted buckets, resolved holds and ended jobs, and
// without empty maps (most accounts have no pending hold and no active
// job; an emptied map keeps its buckets allocated). The rules make the
// map when they first add to a nil one.
func compact(st *ledger.State) {
	st.Prune()
	if len(st.Holds) == 0 {
		st.Holds = nil
	}
	if len(st.Jobs) == 0 {
		st.Jobs = nil
	}
}

// workingCopy returns a copy-on-write clone of a committed snapshot that
// the rules may change.
func workingCopy(st *ledger.State) *ledger.State {
	return st.Clone()
}

func (b *batch) apply(o *op) result {
	st := b.states[o.account]
	if st != nil && !b.touched[o.account] {
		b.touched[o.account] = true
		st.Touch(b.e.cfg, b.now, b.ch)
	}
	if o.idem != nil {
		k := [2]string{o.idem.Principal, o.idem.Key}
		rec := b.idem[k]
		if rec == nil {
			r, err := b.tx.GetIdempotency(b.ctx, o.idem.Principal, o.idem.Key)
			if err != nil && ledger.ErrorCode(err) != ledger.ENotFound {
				return result{err: err}
			}
			rec = r
		}
		if rec != nil {
			return answer(rec, o.idem)
		}
	}
	v, err := o.apply(b, st)
	if err != nil {
		return result{err: err}
	}
	if o.idem != nil {
		status, body := o.render(v)
		rec := &ledger.IdempotencyRecord{
			Principal: o.idem.Principal, Key: o.idem.Key, Fingerprint: o.idem.Fingerprint,
			Status: status, Body: body, CreatedAt: b.now,
		}
		b.idem[[2]string{rec.Principal, rec.Key}] = rec
		b.records = append(b.records, rec)
		return result{v: v, status: status, body: body}
	}
	return result{v: v}
}

func idemMismatch(key string) error {
	return ledger.Errorf(ledger.EIdempotencyMismatch,
		"Idempotency-Key %q was already used with a different request", key)
}

// save writes the batch's changes: the account rows the coordination
// asks for, then grants, holds, entries, jobs and idempotency records.
func (b *batch) save() error {
	e := b.e
	ctx := b.ctx
	for id := range b.touched {
		if st := b.states[id]; st != nil {
			b.pending.noticed = append(b.pending.noticed, st.NoticeExpiring(e.cfg, b.now, b.ch)...)
		}
	}
	fired := e.checkAlerts(b)
	var accounts []*ledger.Account
	for id, st := range b.states {
		if st == nil {
			continue
		}
		if a := e.coord.accountRow(b, id, st); a != nil {
			accounts = append(accounts, a)
		}
	}
	if len(accounts) > 0 {
		if err := b.tx.SaveAccounts(ctx, accounts); err != nil {
			return err
		}
	}
	if len(b.ch.Grants) > 0 {
		gs := make([]*ledger.Grant, 0, len(b.ch.Grants))
		for _, g := range b.ch.Grants {
			gs = append(gs, g)
		}
		if err := b.tx.SaveGrants(ctx, gs); err != nil {
			return err
		}
	}
	if len(b.ch.Holds) > 0 {
		hs := make([]*ledger.Hold, 0, len(b.ch.Holds))
		for _, h := range b.ch.Holds {
			hs = append(hs, h)
		}
		if err := b.tx.SaveHolds(ctx, hs); err != nil {
			return err
		}
	}
	if len(b.ch.Entries) > 0 {
		if err := b.tx.InsertEntries(ctx, b.ch.Entries); err != nil {
			return err
		}
	}
	e.deriveEvents(b, fired)
	if len(b.events) > 0 {
		if err := b.tx.InsertEvents(ctx, b.events); err != nil {
			return err
		}
	}
	if len(b.ch.Jobs) > 0 {
		js := make([]*ledger.Job, 0, len(b.ch.Jobs))
		for _, j := range b.ch.Jobs {
			js = append(js, j)
		}
		// New jobs get their Seq in this order: creation order.
		slices.SortFunc(js, func(a, b *ledger.Job) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		if err := b.tx.SaveJobs(ctx, js); err != nil {
			return err
		}
	}
	if len(b.records) > 0 {
		if err := b.tx.SaveIdempotency(ctx, b.records); err != nil {
			return err
		}
	}
	return nil
}

// write persists the batch, commits, and installs the new snapshots.
func (e *Engine) write(b *batch, results []result, ops []*op) error {
	if err := b.save(); err != nil {
		return err
	}
	if err := b.tx.Commit(); err != nil {
		return err
	}
	e.m.entries.Add(float64(len(b.ch.Entries)))
	// Install snapshots and index holds.
	for _, st := range b.states {
		if st != nil {
			compact(st)
		}
	}
	evicted, cached := e.cache.install(b.states)
	e.m.cacheEvicted.Add(float64(evicted))
	e.m.cachedAccounts.Set(float64(cached))
	e.holdMu.Lock()
	for _, h := range b.ch.Holds {
		if h.Status == ledger.HoldPending {
			e.holdAcct[h.ID] = h.AccountID
			e.expiries.push(ledger.HoldExpiry{HoldID: h.ID, AccountID: h.AccountID, ExpiresAt: h.ExpiresAt})
		} else {
			delete(e.holdAcct, h.ID)
		}
	}
	e.indexJobs(b.ch.Jobs)
	e.compactExpiries()
	for _, g := range b.ch.Grants {
		if !g.ExpiresAt.IsZero() {
			e.noteDeadline(g, false)
		}
	}
	e.holdMu.Unlock()
	e.publish(b)
	return nil
}

// publish hands the batch's changes to the bus, one event per changed
// account, unless the bus says nobody subscribes. Balances are left to the
// subscribers that want them (Event.BalanceView). The events' entries,
// holds and jobs are windows of three arrays allocated once per batch.
func (e *Engine) publish(b *batch) {
	ch := b.ch
	if len(ch.Entries) == 0 && len(ch.Holds) == 0 && len(ch.Jobs) == 0 {
		return
	}
	if c, ok := e.bus.(subscriberCounter); ok && c.Subscribers() == 0 {
		return
	}
	// First pass: one event per account, counting what goes into it.
	type counts struct{ entries, holds, jobs int }
	index := make(map[string]int, len(b.states))
	events := make([]Event, 0, len(b.states))
	var n []counts
	event := func(id string) int {
		i, ok := index[id]
		if !ok {
			i = len(events)
			index[id] = i
			events = append(events, Event{AccountID: id, State: b.states[id], At: b.now})
			n = append(n, counts{})
		}
		return i
	}
	for i := range ch.Entries {
		n[event(ch.Entries[i].AccountID)].entries++
	}
	for _, h := range ch.Holds {
		n[event(h.AccountID)].holds++
	}
	for _, j := range ch.Jobs {
		n[event(j.AccountID)].jobs++
	}
	// Second pass: each event gets its window (capped, so a subscriber
	// appending to one cannot write into the next).
	entries := make([]ledger.Entry, len(ch.Entries))
	holds := make([]ledger.Hold, len(ch.Holds))
	jobs := make([]ledger.Job, len(ch.Jobs))
	var off counts
	for i := range events {
		c := n[i]
		if c.entries > 0 {
			events[i].Entries = entries[off.entries : off.entries : off.entries+c.entries]
		}
		if c.holds > 0 {
			events[i].Holds = holds[off.holds : off.holds : off.holds+c.holds]
		}
		if c.jobs > 0 {
			events[i].Jobs = jobs[off.jobs : off.jobs : off.jobs+c.jobs]
		}
		off.entries += c.entries
		off.holds += c.holds
		off.jobs += c.jobs
	}
	for i := range ch.Entries {
		ev := &events[index[ch.Entries[i].AccountID]]
		ev.Entries = append(ev.Entries, ch.Entries[i])
	}
	for _, h := range ch.Holds {
		ev := &events[index[h.AccountID]]
		ev.Holds = append(ev.Holds, *h)
	}
	for _, j := range ch.Jobs {
		ev := &events[index[j.AccountID]]
		ev.Jobs = append(ev.Jobs, *j)
	}
	e.bus.Publish(events)
}
