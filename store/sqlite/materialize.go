package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strings"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/sqlite/journal"
)

// newest is the rows of several journaled batches, each in its newest
// version.
type newest struct {
	accounts map[string]*ledger.Account
	grants   map[string]*ledger.Grant
	holds    map[string]*ledger.Hold
	idem     map[[2]string]*ledger.IdempotencyRecord
	jobs     map[string]*ledger.Job
	entries  []*ledger.Entry        // never rewritten: all of them, in id order
	events   []*ledger.WebhookEvent // never rewritten: all of them, in seq order
}

func newestOf(sets []*journal.ChangeSet) *newest {
	n := &newest{
		accounts: map[string]*ledger.Account{},
		grants:   map[string]*ledger.Grant{},
		holds:    map[string]*ledger.Hold{},
		idem:     map[[2]string]*ledger.IdempotencyRecord{},
		jobs:     map[string]*ledger.Job{},
	}
	for _, c := range sets {
		for i := range c.Accounts {
			n.accounts[c.Accounts[i].ID] = &c.Accounts[i]
		}
		for i := range c.Grants {
			n.grants[c.Grants[i].ID] = &c.Grants[i]
		}
		for i := range c.Holds {
			n.holds[c.Holds[i].ID] = &c.Holds[i]
		}
		for i := range c.Entries {
			n.entries = append(n.entries, &c.Entries[i])
		}
		for i := range c.Idempotency {
			r := &c.Idempotency[i]
			n.idem[[2]string{r.Principal, r.Key}] = r
		}
		for i := range c.Jobs {
			n.jobs[c.Jobs[i].ID] = &c.Jobs[i]
		}
		for i := range c.Events {
			n.events = append(n.events, &c.Events[i])
		}
	}
	return n
}

// materialize writes journaled batches into the tables in one transaction
// on the writer connection, each row once in its newest version, and
// records the last batch's seq as applied (the journal's MaterializeFunc).
func (s *Store) materialize(ctx context.Context, sets []*journal.ChangeSet) (err error) {
	n := newestOf(sets)
	seq := sets[len(sets)-1].Seq
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("materialize: begin", err, "")
	}
	w := &batch{s: s, tx: tx, stmts: make(map[*sql.Stmt]*sql.Stmt)}
	defer func() {
		if err != nil {
			_ = w.Rollback()
		}
	}()
	// Rows in key order: neighbouring rows share pages.
	if err = w.SaveAccounts(ctx, sortedValues(n.accounts, func(a, b *ledger.Account) int { return strings.Compare(a.ID, b.ID) })); err != nil {
		return err
	}
	if err = w.SaveGrants(ctx, sortedValues(n.grants, func(a, b *ledger.Grant) int { return strings.Compare(a.ID, b.ID) })); err != nil {
		return err
	}
	p := s.packHolds(n.holds)
	if err = s.writeHolds(ctx, w, p, seq); err != nil {
		return err
	}
	if err = w.InsertEntries(ctx, n.entries); err != nil {
		return err
	}
	if err = w.SaveIdempotency(ctx, sortedValues(n.idem, func(a, b *ledger.IdempotencyRecord) int {
		return cmp.Or(strings.Compare(a.Principal, b.Principal), strings.Compare(a.Key, b.Key))
	})); err != nil {
		return err
	}
	if err = w.SaveJobs(ctx, sortedValues(n.jobs, func(a, b *ledger.Job) int { return strings.Compare(a.ID, b.ID) })); err != nil {
		return err
	}
	if err = w.InsertEvents(ctx, n.events); err != nil {
		return err
	}
	nextEntry := int64(0)
	if len(n.entries) > 0 {
		nextEntry = n.entries[len(n.entries)-1].ID + 1
	}
	if _, err = tx.ExecContext(ctx, `UPDATE journal_state SET applied_seq = ?, next_entry_id = max(next_entry_id, ?) WHERE id = 1`,
		seq, nextEntry); err != nil {
		return wrap("materialize: journal state", err, "")
	}
	if err = w.Commit(); err != nil {
		return err
	}
	s.notePending(p)
	return nil
}

// blockHoldsMax bounds the holds of one hold block (one row of
// hold_blocks).
const blockHoldsMax = 256

// holdBlock is a hold block being written: holds of one account, ascending
// ids, all with the same quantum and tag; ms is the first one's.
type holdBlock struct {
	q, tag, ms int64
	holds      []*ledger.Hold
}

// packedHolds is where a transaction's holds go: rows of holds (pending
// ones, and any whose id has no time), blocks (settled ones), and the
// settled ones that leave holds, where they were pending.
type packedHolds struct {
	rows, settledRows []*ledger.Hold
	blocks            []holdBlock
}

// packHolds sorts holds into rows and blocks.
func (s *Store) packHolds(holds map[string]*ledger.Hold) packedHolds {
	var p packedHolds
	for _, h := range sortedValues(holds, func(a, b *ledger.Hold) int {
		return cmp.Or(strings.Compare(a.AccountID, b.AccountID), strings.Compare(a.ID, b.ID))
	}) {
		ms, tag, ok := ledger.IDTimeTag(h.ID)
		if h.Status == ledger.HoldPending || !ok {
			p.rows = append(p.rows, h)
			continue
		}
		if _, in := s.tablePending[h.ID]; in {
			p.settledRows = append(p.settledRows, h)
		}
		p.blocks = addToBlock(p.blocks, h, ms, tag)
	}
	return p
}

// addToBlock adds a settled hold to its block: one account, one quantum,
// one tag (ids from ledger.NewHoldID share their account's; other ids do
// not). Holds come in (account, id) order; ids ascend within an account,
// so its blocks' quanta do too and the last block of its (q, tag) is the
// one to fill.
func addToBlock(blocks []holdBlock, h *ledger.Hold, ms, tag int64) []holdBlock {
	q := holdQuantum(ms)
	i := len(blocks) - 1
	for i >= 0 && blocks[i].holds[0].AccountID == h.AccountID && blocks[i].q == q && blocks[i].tag != tag {
		i--
	}
	if i >= 0 && blocks[i].holds[0].AccountID == h.AccountID && blocks[i].q == q && len(blocks[i].holds) < blockHoldsMax {
		blocks[i].holds = append(blocks[i].holds, h)
		return blocks
	}
	return append(blocks, holdBlock{q: q, tag: tag, ms: ms, holds: []*ledger.Hold{h}})
}

// writeHolds writes packed holds in the transaction of the batches up to
// seq.
func (s *Store) writeHolds(ctx context.Context, w *batch, p packedHolds, seq int64) error {
	if err := w.SaveHolds(ctx, p.rows); err != nil {
		return err
	}
	if len(p.settledRows) > 0 {
		ids := make([]string, len(p.settledRows))
		for i, h := range p.settledRows {
			ids[i] = h.ID
		}
		js, _ := json.Marshal(ids)
		if _, err := w.stmt(ctx, s.wstmt[qDeleteHolds]).ExecContext(ctx, string(js)); err != nil {
			return wrap("materialize: move settled holds", err, "")
		}
	}
	err := w.write(ctx, tHoldBlocks, len(p.blocks), func(args []any, i int) ([]any, error) {
		b := &p.blocks[i]
		hs := b.holds
		return append(args, hs[0].AccountID, b.ms, seq, hs[len(hs)-1].ID, journal.EncodeHolds(hs), b.q, b.tag), nil
	})
	if err != nil {
		return wrap("materialize: hold blocks", err, "")
	}
	return nil
}

// notePending keeps tablePending up to date after a committed
// transaction.
func (s *Store) notePending(p packedHolds) {
	for _, h := range p.rows {
		if h.Status == ledger.HoldPending {
			s.tablePending[h.ID] = struct{}{}
		} else {
			delete(s.tablePending, h.ID)
		}
	}
	for _, h := range p.settledRows {
		delete(s.tablePending, h.ID)
	}
}

func sortedValues[K comparable, T any](m map[K]*T, cmp func(a, b *T) int) []*T {
	out := make([]*T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, cmp)
	return out
}
