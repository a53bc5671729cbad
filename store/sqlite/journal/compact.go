package journal

import (
	"fmt"

	"github.com/creditd/creditd/ledger"
)

// A pending batch is compacted once a quarter of the rows it holds have
// been rewritten by later batches (1/compactDeadShare). Each compaction
// copies the live rows, at most three for every row it drops, and rewritten
// rows never take more than a quarter of a batch's memory for long. Where
// rewrites spread evenly over many accounts, few batches reach a half, so a
// lower share would leave the journal near its bound (docs/performance.md).
const compactDeadShare = 4

// superseded counts a row of the pending batch seq as rewritten by a later
// one, and queues the batch for compaction once compactDeadShare says so.
// Called with mu held, from overlay.add.
func (j *Journal) superseded(seq int64) {
	c := j.pending[j.pendingIndex(seq)]
	c.dead++
	if !c.due && compactDeadShare*c.dead >= c.Rows() {
		c.due = true
		j.due = append(j.due, c)
	}
}

// pendingIndex is the index in pending of the batch seq. The overlay keeps
// only pending batches' rows (prune), and pending seqs are consecutive, up
// to committed. Called with mu held.
func (j *Journal) pendingIndex(seq int64) int {
	i := int(seq - (j.committed + 1 - int64(len(j.pending))))
	if i < 0 || i >= len(j.pending) || j.pending[i].Seq != seq {
		panic(fmt.Sprintf("journal: batch %d is not among the %d pending up to %d", seq, len(j.pending), j.committed))
	}
	return i
}

// compactDue compacts the batches queued by superseded, except those the
// running transaction writes: the materializer reads them without mu.
// Called with mu held.
func (j *Journal) compactDue() {
	for _, c := range j.due {
		c.due = false
		if c.Seq <= j.inflight {
			continue // queued again, if still pending, when another of its rows is rewritten
		}
		j.compact(c)
	}
	clear(j.due) // the replaced sets are garbage now
	j.due = j.due[:0]
}

// compact replaces the pending batch c by a copy of its live rows (the
// newest version of their keys), so the versions that later batches
// rewrote no longer take memory nor count against PendingRowsMax.
// The tables lose nothing: what they need of a key is its newest version,
// written by the transaction that covers c, since run ends a transaction
// only past every covered batch's need; until then reads find it in the
// overlay, and after a crash replay rewrites it from the journal file,
// which keeps every batch whole. Called with mu held.
func (j *Journal) compact(c *ChangeSet) {
	o := &j.ov
	n := &ChangeSet{
		Seq:       c.Seq,
		journaled: c.journaled,
		// The versions that replaced the dropped rows are in batches
		// up to the last one committed, and so are any that replace
		// those (their batches' need says so).
		need:     j.committed,
		Accounts: keep(o.accounts, c.Accounts, func(a *ledger.Account) string { return a.ID }),
		Grants:   keep(o.grants, c.Grants, func(g *ledger.Grant) string { return g.ID }),
		Holds:    keep(o.holds, c.Holds, func(h *ledger.Hold) string { return h.ID }),
		Entries:  c.Entries, // never rewritten
		Events:   c.Events,  // never rewritten
		Idempotency: keep(o.idem, c.Idempotency, func(r *ledger.IdempotencyRecord) [2]string {
			return [2]string{r.Principal, r.Key}
		}),
		Jobs: keep(o.jobs, c.Jobs, func(jb *ledger.Job) string { return jb.ID }),
	}
	dropped := c.Rows() - n.Rows()
	if dropped != c.dead {
		panic(fmt.Sprintf("journal: compacting batch %d dropped %d rows, %d were rewritten", c.Seq, dropped, c.dead))
	}
	j.pending[j.pendingIndex(c.Seq)] = n
	j.pendingRows -= dropped
	j.stats.Superseded += int64(dropped)
}

// ---- materializing --------------------------------------------------------

// materialize writes journaled batches into the tables in one transaction
// on the writer connection, each row once in its newest version, and
