package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
	"github.com/creditd/creditd/store/sqlite/journal"
)

// jbatch is a batch of a read-write Store: reads see committed data
// (overlay, then tables), writes collect the batch's rows for the journal.
type jbatch struct {
	s          *Store
	c          journal.ChangeSet
	nextEntry  int64
	nextJobSeq int64
	nextEvent  int64
	refs       map[ledger.GrantReferenceParams]string // grant references saved by this batch → grant id
	saved      map[string]bool                        // ids of the grants saved by this batch
	done       bool
}

// BeginBatch starts a batch, waiting for the running one to end and, if the
// materializer is journal.PendingRowsMax rows behind, for it to catch up.
// After a failed journal write it fails at once, unavailable, until the
// journal has healed (heal.go).
func (s *Store) BeginBatch(ctx context.Context) (ledger.Batch, error) {
	if s.readOnly {
		return nil, fmt.Errorf("sqlite: begin batch: %w", ErrReadOnly)
	}
	s.batchMu.Lock()
	if err := s.j.WaitRoom(ctx); err != nil {
		s.batchMu.Unlock()
		return nil, fmt.Errorf("sqlite: begin batch: %w", err)
	}
	return &jbatch{s: s, nextEntry: s.nextEntry, nextJobSeq: s.nextJobSeq, nextEvent: s.nextEvent}, nil
}

func (b *jbatch) check() error {
	if b.done {
		return fmt.Errorf("sqlite: %w", sql.ErrTxDone)
	}
	return nil
}

// last returns the batch's newest write of a row.
func last[T any](rows []T, match func(*T) bool) (*T, bool) {
	for i := len(rows) - 1; i >= 0; i-- {
		if match(&rows[i]) {
			c := rows[i]
			return &c, true
		}
	}
	return nil, false
}

// LockAccounts returns the stored versions of the existing accounts among
// ids. Batches run one at a time, so there is nothing more to lock.
func (b *jbatch) LockAccounts(ctx context.Context, ids []string) (map[string]int64, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(ids))
	for _, id := range ids {
		if a, ok := last(b.c.Accounts, func(a *ledger.Account) bool { return a.ID == id }); ok {
			out[id] = a.Version
			continue
		}
		a, err := b.s.GetAccount(ctx, id)
		if err != nil {
			if errors.Is(err, ledger.ErrNotFound) {
				continue
			}
			return nil, err
		}
		out[id] = a.Version
	}
	return out, nil
}

// LoadState is the committed state with the batch's own writes on top.
func (b *jbatch) LoadState(ctx context.Context, accountID string) (*ledger.State, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	st, err := b.s.LoadState(ctx, accountID)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return nil, err
	}
	if a, ok := last(b.c.Accounts, func(a *ledger.Account) bool { return a.ID == accountID }); ok {
		if st == nil {
			st = &ledger.State{Holds: map[string]*ledger.Hold{}, Jobs: map[string]*ledger.Job{}}
		}
		st.Account = *a
	}
	if st == nil {
		return nil, err
	}
	for i := range b.c.Grants {
		g := b.c.Grants[i]
		if g.AccountID != accountID {
			continue
		}
		st.Grants = slices.DeleteFunc(st.Grants, func(x *ledger.Grant) bool { return x.ID == g.ID })
		if g.RemainingCredits > 0 || g.HeldCredits > 0 {
			st.Grants = append(st.Grants, &g)
		}
	}
	slices.SortStableFunc(st.Grants, func(x, y *ledger.Grant) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	for i := range b.c.Holds {
		h := b.c.Holds[i]
		if h.AccountID != accountID {
			continue
		}
		delete(st.Holds, h.ID)
		if h.Status == ledger.HoldPending {
			h.Portions = slices.Clone(h.Portions)
			st.Holds[h.ID] = &h
		}
	}
	for i := range b.c.Jobs {
		jb := b.c.Jobs[i]
		if jb.AccountID != accountID {
			continue
		}
		delete(st.Jobs, jb.ID)
		if jb.Status.Active() {
			st.Jobs[jb.ID] = &jb
		}
	}
	return st, nil
}

// LoadStates is LoadState for many accounts: one query per table when the
// batch has written nothing yet (the engine loads before it applies).
func (b *jbatch) LoadStates(ctx context.Context, ids []string) (map[string]*ledger.State, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if b.c.Rows() > 0 {
		out := make(map[string]*ledger.State, len(ids))
		for _, id := range ids {
			st, err := b.LoadState(ctx, id)
			if err != nil {
				if errors.Is(err, ledger.ErrNotFound) {
					continue
				}
				return nil, err
			}
			out[id] = st
		}
		return out, nil
	}
	return b.s.LoadStates(ctx, ids)
}

func (b *jbatch) GetHold(ctx context.Context, id string) (*ledger.Hold, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if h, ok := last(b.c.Holds, func(h *ledger.Hold) bool { return h.ID == id }); ok {
		h.Portions = slices.Clone(h.Portions)
		return h, nil
	}
	return b.s.GetHold(ctx, id)
}

func (b *jbatch) GetGrantByReference(ctx context.Context, p ledger.GrantReferenceParams) (*ledger.Grant, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if g, ok := last(b.c.Grants, func(g *ledger.Grant) bool { return g.Reference != "" && refKey(g) == p }); ok {
		return g, nil
	}
	g, err := b.s.getGrantByReference(ctx, p)
	if err != nil {
		return nil, err
	}
	if newer, ok := last(b.c.Grants, func(x *ledger.Grant) bool { return x.ID == g.ID }); ok {
		if newer.Reference != "" && refKey(newer) == p {
			return newer, nil
		}
		return nil, fmt.Errorf("sqlite: get grant by reference: %w", ledger.ErrNotFound)
	}
	return g, nil
}

func (b *jbatch) GetIdempotency(ctx context.Context, principal, key string) (*ledger.IdempotencyRecord, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if r, ok := last(b.c.Idempotency, func(r *ledger.IdempotencyRecord) bool { return r.Principal == principal && r.Key == key }); ok {
		r.Body = slices.Clone(r.Body)
		return r, nil
	}
	return b.s.GetIdempotency(ctx, principal, key)
}

func (b *jbatch) GetJob(ctx context.Context, id string) (*ledger.Job, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if jb, ok := last(b.c.Jobs, func(x *ledger.Job) bool { return x.ID == id }); ok {
		jb.Params, jb.Outputs = slices.Clone(jb.Params), slices.Clone(jb.Outputs)
		return jb, nil
	}
	return b.s.GetJob(ctx, id)
}

func refKey(g *ledger.Grant) ledger.GrantReferenceParams {
	return ledger.GrantReferenceParams{AccountID: g.AccountID, Source: g.Source, Reference: g.Reference}
}

// usTime is t as the tables keep it: UTC, whole microseconds.
func usTime(t time.Time) time.Time { return rowscan.FromMicros(rowscan.Micros(t)) }

func (b *jbatch) SaveAccounts(ctx context.Context, accounts []*ledger.Account) error {
	if err := b.check(); err != nil {
		return err
	}
	for _, a := range accounts {
		c := *a
		c.CreatedAt, c.UpdatedAt, c.DailyNotBefore = usTime(c.CreatedAt), usTime(c.UpdatedAt), usTime(c.DailyNotBefore)
		b.c.Accounts = append(b.c.Accounts, c)
	}
	return nil
}

// SaveGrants keeps the tables' unique index on (account, source,
// reference) before anything is journaled, so the materializer never meets
// a violation: a grant whose non-empty reference another grant already has
// is an EConflict. References never change, so only grants new to the
// store are looked up by reference; which ones are new takes one query for
// the whole call.
func (b *jbatch) SaveGrants(ctx context.Context, grants []*ledger.Grant) error {
	if err := b.check(); err != nil {
		return err
	}
	if b.refs == nil {
		b.refs, b.saved = map[ledger.GrantReferenceParams]string{}, map[string]bool{}
	}
	unknown := map[string]bool{} // referenced grants neither in this batch nor in the overlay
	var ids []string
	for _, g := range grants {
		if g.Reference == "" || b.saved[g.ID] || unknown[g.ID] {
			continue
		}
		if _, ok := b.s.j.Grant(g.ID); !ok {
			unknown[g.ID] = true
			ids = append(ids, g.ID)
		}
	}
	stored, err := b.s.grantsExist(ctx, ids)
	if err != nil {
		return err
	}
	for _, g := range grants {
		if g.Reference == "" {
			continue
		}
		k := refKey(g)
		if id, ok := b.refs[k]; ok {
			if id != g.ID {
				return errDuplicateReference
			}
			continue
		}
		if unknown[g.ID] && !stored[g.ID] { // new: an existing grant's reference was checked when it was created
			other, err := b.s.getGrantByReference(ctx, k)
			switch {
			case errors.Is(err, ledger.ErrNotFound):
			case err != nil:
				return err
			case other.ID != g.ID:
				return errDuplicateReference
			}
		}
		b.refs[k] = g.ID
	}
	b.c.Grants = slices.Grow(b.c.Grants, len(grants))
	for _, g := range grants {
		c := *g
		c.ExpiresAt, c.CreatedAt = usTime(c.ExpiresAt), usTime(c.CreatedAt)
		b.c.Grants = append(b.c.Grants, c)
		b.saved[g.ID] = true
	}
	return nil
}

var errDuplicateReference = fmt.Errorf("sqlite: save grants: %w: %w", ledger.Errorf(ledger.EConflict,
	"a grant with the same account, source and reference already exists"), ledger.ErrBadData)

func (b *jbatch) SaveHolds(ctx context.Context, holds []*ledger.Hold) error {
	if err := b.check(); err != nil {
		return err
	}
	b.c.Holds = slices.Grow(b.c.Holds, len(holds))
	for _, h := range holds {
		c := *h
		c.Portions = slices.Clone(h.Portions)
		c.CreatedAt, c.ExpiresAt, c.ResolvedAt = usTime(c.CreatedAt), usTime(c.ExpiresAt), usTime(c.ResolvedAt)
		b.c.Holds = append(b.c.Holds, c)
	}
	return nil
}

// InsertEntries appends entries and assigns their ids, written back to
// entries[i].ID (any ID set by the caller is ignored): ascending in slice
// order, above every id committed before.
func (b *jbatch) InsertEntries(ctx context.Context, entries []ledger.Entry) error {
	if err := b.check(); err != nil {
		return err
	}
	b.c.Entries = slices.Grow(b.c.Entries, len(entries))
	for i := range entries {
		entries[i].ID = b.nextEntry
		b.nextEntry++
		c := entries[i]
		c.Legs = slices.Clone(c.Legs)
		c.CreatedAt = usTime(c.CreatedAt)
		b.c.Entries = append(b.c.Entries, c)
	}
	return nil
}

func (b *jbatch) SaveIdempotency(ctx context.Context, records []*ledger.IdempotencyRecord) error {
	if err := b.check(); err != nil {
		return err
	}
	for _, r := range records {
		c := *r
		c.Body = slices.Clone(r.Body)
		if len(c.Body) == 0 {
			c.Body = nil
		}
		c.CreatedAt = usTime(c.CreatedAt)
		b.c.Idempotency = append(b.c.Idempotency, c)
	}
	return nil
}

// SaveJobs upserts jobs and writes their Seqs back: a new job gets the next
// seq, an existing one keeps its own. Params are kept verbatim ("{}" when
// empty), empty Outputs as nil, as the table returns them.
func (b *jbatch) SaveJobs(ctx context.Context, jobs []*ledger.Job) error {
	if err := b.check(); err != nil {
		return err
	}
	seqs := make([]int64, len(jobs))
	for i, jb := range jobs {
		if k := slices.IndexFunc(b.c.Jobs, func(x ledger.Job) bool { return x.ID == jb.ID }); k >= 0 {
			seqs[i] = b.c.Jobs[k].Seq
			continue
		}
		old, err := b.s.GetJob(ctx, jb.ID)
		switch {
		case err == nil:
			seqs[i] = old.Seq
		case errors.Is(err, ledger.ErrNotFound):
			seqs[i] = b.nextJobSeq
			b.nextJobSeq++
		default:
			return err
		}
	}
	for i, jb := range jobs {
		jb.Seq = seqs[i]
		c := *jb
		c.Params = slices.Clone(jb.Params)
		if len(c.Params) == 0 {
			c.Params = json.RawMessage("{}")
		}
		c.Outputs = slices.Clone(jb.Outputs)
		if len(c.Outputs) == 0 {
			c.Outputs = nil
		}
		c.LeaseExpiresAt, c.CreatedAt = usTime(c.LeaseExpiresAt), usTime(c.CreatedAt)
		c.UpdatedAt, c.FinishedAt = usTime(c.UpdatedAt), usTime(c.FinishedAt)
		b.c.Jobs = append(b.c.Jobs, c)
	}
	return nil
}

// Commit journals the batch (one record, one fdatasync); once it returns
// nil the batch is durable and every read sees it. A failed Commit leaves
// nothing visible and starts the journal's healing (heal.go).
func (b *jbatch) Commit() error {
	if err := b.check(); err != nil {
		return err
	}
	b.done = true
	s := b.s
	defer s.batchMu.Unlock()
	if b.c.Rows() == 0 {
		return nil
	}
	if err := s.j.Append(&b.c); err != nil {
		s.journalFailed(err)
		return fmt.Errorf("sqlite: commit: %w: %w", ledger.Errorf(ledger.EUnavailable,
			"the database cannot take writes now; retry shortly"), err)
	}
	s.nextEntry, s.nextJobSeq, s.nextEvent = b.nextEntry, b.nextJobSeq, b.nextEvent
	return nil
}

// Rollback discards the batch. After Commit or Rollback it does nothing, so
// it can be deferred.
func (b *jbatch) Rollback() error {
	if b.done {
		return nil
	}
	b.done = true
	b.s.batchMu.Unlock()
	return nil
}
