package journal

import "github.com/creditd/creditd/ledger"

// ChangeSet is the rows of one batch, as journaled. While it is
// pending, rows that a later batch rewrote may be dropped from it
// (compact): the tables only ever need a row's newest version.
type ChangeSet struct {
	Seq         int64
	Accounts    []ledger.Account
	Grants      []ledger.Grant
	Holds       []ledger.Hold
	Entries     []ledger.Entry
	Idempotency []ledger.IdempotencyRecord
	Jobs        []ledger.Job
	Events      []ledger.WebhookEvent

	journaled int   // rows as journaled (Rows() before any compaction)
	dead      int   // rows still held here that a later batch rewrote
	due       bool  // queued in Journal.due for compaction
	need      int64 // compacted: the newest versions of the rows it lacks are in batches up to this seq
}

// Rows counts the rows of c.
func (c *ChangeSet) Rows() int {
	return len(c.Accounts) + len(c.Grants) + len(c.Holds) + len(c.Entries) + len(c.Idempotency) + len(c.Jobs) + len(c.Events)
}

// versioned is an overlay row with the seq of the batch that wrote it.
type versioned[T any] struct {
	seq int64
	v   *T
}

// overlay holds the newest version of every row journaled but not yet
// materialized.
type overlay struct {
	accounts map[string]versioned[ledger.Account]
	grants   map[string]versioned[ledger.Grant]
	refs     map[ledger.GrantReferenceParams]versioned[string] // → grant id
	holds    map[string]versioned[ledger.Hold]
	idem     map[[2]string]versioned[ledger.IdempotencyRecord]
	jobs     map[string]versioned[ledger.Job]
	touched  map[string]int64 // account id → seq of its last journaled change
}

func newOverlay() overlay {
	return overlay{
		accounts: map[string]versioned[ledger.Account]{},
		grants:   map[string]versioned[ledger.Grant]{},
		refs:     map[ledger.GrantReferenceParams]versioned[string]{},
		holds:    map[string]versioned[ledger.Hold]{},
		idem:     map[[2]string]versioned[ledger.IdempotencyRecord]{},
		jobs:     map[string]versioned[ledger.Job]{},
		touched:  map[string]int64{},
	}
}

func refKey(g *ledger.Grant) ledger.GrantReferenceParams {
	return ledger.GrantReferenceParams{AccountID: g.AccountID, Source: g.Source, Reference: g.Reference}
}

// add makes c's rows the newest versions. For every row it replaces (one
// that an earlier batch, or c itself, wrote before), it calls superseded
// with the seq of the batch that holds the replaced version.
func (o *overlay) add(c *ChangeSet, superseded func(seq int64)) {
	s := c.Seq
	for i := range c.Accounts {
		a := &c.Accounts[i]
		put(o.accounts, a.ID, versioned[ledger.Account]{s, a}, superseded)
		o.touched[a.ID] = s
	}
	for i := range c.Grants {
		g := &c.Grants[i]
		put(o.grants, g.ID, versioned[ledger.Grant]{s, g}, superseded)
		if g.Reference != "" {
			id := g.ID
			o.refs[refKey(g)] = versioned[string]{s, &id}
		}
		o.touched[g.AccountID] = s
	}
	for i := range c.Holds {
		h := &c.Holds[i]
		put(o.holds, h.ID, versioned[ledger.Hold]{s, h}, superseded)
		o.touched[h.AccountID] = s
	}
	for i := range c.Entries {
		o.touched[c.Entries[i].AccountID] = s
	}
	for i := range c.Idempotency {
		r := &c.Idempotency[i]
		put(o.idem, [2]string{r.Principal, r.Key}, versioned[ledger.IdempotencyRecord]{s, r}, superseded)
	}
	for i := range c.Jobs {
		j := &c.Jobs[i]
		put(o.jobs, j.ID, versioned[ledger.Job]{s, j}, superseded)
		o.touched[j.AccountID] = s
	}
}

func put[K comparable, T any](m map[K]versioned[T], k K, v versioned[T], superseded func(seq int64)) {
	if old, ok := m[k]; ok {
		superseded(old.seq)
	}
	m[k] = v
}

// keep copies the rows of src that are live (the overlay's newest version
// of their key: it points at them) into a new slice, and points the overlay
// at the copies.
func keep[K comparable, T any](m map[K]versioned[T], src []T, key func(*T) K) []T {
	live := func(i int) (K, int64, bool) {
		k := key(&src[i])
		v := m[k]
		return k, v.seq, v.v == &src[i]
	}
	n := 0
	for i := range src {
		if _, _, ok := live(i); ok {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	dst := make([]T, 0, n)
	for i := range src {
		if k, seq, ok := live(i); ok {
			dst = append(dst, src[i])
			m[k] = versioned[T]{seq, &dst[len(dst)-1]}
		}
	}
	return dst
}

// prune drops what batches up to seq wrote, unless a later batch wrote the
// same row again.
func (o *overlay) prune(seq int64) {
	pruneMap(o.accounts, seq)
	pruneMap(o.grants, seq)
	pruneMap(o.refs, seq)
	pruneMap(o.holds, seq)
	pruneMap(o.idem, seq)
	pruneMap(o.jobs, seq)
	for k, s := range o.touched {
		if s <= seq {
			delete(o.touched, k)
		}
	}
}

func pruneMap[K comparable, T any](m map[K]versioned[T], seq int64) {
	for k, v := range m {
		if v.seq <= seq {
			delete(m, k)
		}
	}
}
