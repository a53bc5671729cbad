package engine

import (
	"context"
	"time"

	"github.com/creditd/creditd/ledger"
)

// coordination is how the engine's in-memory state relates to the store's.
// New chooses it once, from Store.Exclusive, and every place where the two
// modes differ is a method of it:
//
//   - exclusive: this process is the only writer (SQLite). The cache is
//     authoritative: reads are answered from it, a batch locks nothing, and
//     an account row is rewritten only when its columns changed.
//   - shared: other nodes write too (PostgreSQL). Reads load committed
//     state from the store; a batch locks its accounts (bumping their
//     versions) and its idempotency keys, and reloads every cached state
//     whose version another node moved; the sweeper scans for work other
//     nodes left; jobs queued elsewhere reach the lease queue through the
//     bus.
type coordination interface {
	// committers is the default of Options.Committers.
	committers() int
	// start runs at the end of New, once the store's pending holds and
	// active jobs are indexed; it returns what Close runs (nil: nothing).
	start(e *Engine) (stop func())
	// read returns a committed, touched snapshot of an account for a read,
	// or nil when the read must go through the committer.
	read(ctx context.Context, e *Engine, id string) (*ledger.State, error)
	// lock runs first in a batch, given its sorted, distinct account ids.
	// It returns the stored versions of those that exist, or nil when the
	// cache is authoritative (absent accounts are then found by loading).
	lock(ctx context.Context, b *batch, ids []string, ops []*op) (map[string]int64, error)
	// accountRow returns the account row a batch saves for the working
	// state of account id (not nil), or nil when the row is not written.
	accountRow(b *batch, id string, st *ledger.State) *ledger.Account
	// scan runs before each sweep round.
	scan(ctx context.Context, e *Engine, now time.Time)
}

// coordinationOf returns the coordination for a store.
func coordinationOf(s ledger.Store) coordination {
	if s.Exclusive() {
		return exclusive{}
	}
	return shared{}
}

// exclusive is the coordination of a store with one writer.
type exclusive struct{}

func (exclusive) committers() int { return 1 }

func (exclusive) start(*Engine) func() { return nil }

func (exclusive) read(_ context.Context, e *Engine, id string) (*ledger.State, error) {
	if st := e.cached(id); st != nil && !st.NeedsTouch(e.cfg, e.clock.Now()) {
		return st, nil
	}
	return nil, nil
}

func (exclusive) lock(context.Context, *batch, []string, []*op) (map[string]int64, error) {
	return nil, nil
}

// accountRow: the version tells other nodes that the account's state
// moved; a sole writer needs it for nothing, so an account row whose other
// columns did not change is not rewritten (a charge changes buckets and
// holds, not the account).
func (exclusive) accountRow(b *batch, id string, st *ledger.State) *ledger.Account {
	if !b.ch.Accounts[id] {
		return nil
	}
	if old, ok := b.stored[id]; ok && *old == st.Account {
		return nil
	}
	st.Account.Version++
	a := st.Account
	return &a
}

func (exclusive) scan(context.Context, *Engine, time.Time) {}

// shared is the coordination of a store that other nodes write too.
type shared struct{}

func (shared) committers() int { return DefaultSharedCommitters }

// start: jobs queued on other nodes reach this node's lease queue at once;
// jobs leased or ended there leave it (it bounds new jobs by its length; a
// job removed by an event older than a requeue comes back with the next
// scanShared).
func (shared) start(e *Engine) func() {
	return e.bus.Subscribe(func(ev Event) {
		if !ev.Remote {
			return
		}
		for i := range ev.Jobs {
			switch {
			case ev.Jobs[i].Status == ledger.JobQueued && ev.Jobs[i].Action != "":
				j := ev.Jobs[i]
				if j.CreatedAt.IsZero() {
					j.CreatedAt = e.clock.Now() // when this node heard of it: no earlier than its creation
				}
				e.queue.push(&j)
			case ev.Jobs[i].Status != "" && ev.Jobs[i].Status != ledger.JobQueued:
				e.queue.remove(ev.Jobs[i].ID)
			}
		}
	})
}

// read: other nodes write too, so the committed state is read from the
// store; only when time rules are due does the read go through the
// committer.
func (shared) read(ctx context.Context, e *Engine, id string) (*ledger.State, error) {
	st, err := e.store.LoadState(ctx, id)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ENotFound {
			return nil, accountNotFound(id)
		}
		return nil, err
	}
	st.SortGrants(e.cfg)
	if !st.NeedsTouch(e.cfg, e.clock.Now()) {
		return st, nil
	}
	return nil, nil
}

// lock locks the batch's accounts, incrementing their versions
// (Batch.LockAndBumpAccounts), then its idempotency keys
// (Batch.LockIdempotencyKeys). Within a node, claimKey has already
// answered a race on one key across committers with a 409.
func (shared) lock(ctx context.Context, b *batch, ids []string, ops []*op) (map[string]int64, error) {
	versions, err := b.tx.LockAndBumpAccounts(ctx, ids)
	if err != nil {
		return nil, err
	}
	b.bumped = true
	var keys [][2]string
	for _, o := range ops {
		if o.idem != nil {
			keys = append(keys, [2]string{o.idem.Principal, o.idem.Key})
		}
	}
	if len(keys) > 0 {
		if err := b.tx.LockIdempotencyKeys(ctx, keys); err != nil {
			return nil, err
		}
	}
	return versions, nil
}

// accountRow: the row's version was incremented when it was locked, so an
// account that existed before the batch is written only if more than that
// changed; a new one is written with its first version.
func (shared) accountRow(b *batch, id string, st *ledger.State) *ledger.Account {
	if old, ok := b.stored[id]; ok {
		a := st.Account
		a.Version = old.Version
		if !b.ch.Accounts[id] || a == *old {
			return nil
		}
		a = st.Account
		return &a
	}
	if !b.ch.Accounts[id] {
		return nil
	}
	st.Account.Version++
	a := st.Account
	return &a
}

func (shared) scan(ctx context.Context, e *Engine, now time.Time) { e.scanShared(ctx, now) }
