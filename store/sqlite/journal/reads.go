package journal

import (
	"slices"

	"github.com/creditd/creditd/ledger"
)

// The overlay's point reads: the newest journaled version of a row not yet
// in the tables, as a copy the caller owns.

func lookup[K comparable, T any](j *Journal, m func(*overlay) map[K]versioned[T], k K) (*T, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	v, ok := m(&j.ov)[k]
	if !ok {
		return nil, false
	}
	c := *v.v
	return &c, true
}

func (j *Journal) Account(id string) (*ledger.Account, bool) {
	return lookup(j, func(o *overlay) map[string]versioned[ledger.Account] { return o.accounts }, id)
}

func (j *Journal) Grant(id string) (*ledger.Grant, bool) {
	return lookup(j, func(o *overlay) map[string]versioned[ledger.Grant] { return o.grants }, id)
}

func (j *Journal) Hold(id string) (*ledger.Hold, bool) {
	h, ok := lookup(j, func(o *overlay) map[string]versioned[ledger.Hold] { return o.holds }, id)
	if ok {
		h.Portions = slices.Clone(h.Portions)
	}
	return h, ok
}

func (j *Journal) Job(id string) (*ledger.Job, bool) {
	jb, ok := lookup(j, func(o *overlay) map[string]versioned[ledger.Job] { return o.jobs }, id)
	if ok {
		jb.Params = slices.Clone(jb.Params)
		jb.Outputs = slices.Clone(jb.Outputs)
	}
	return jb, ok
}

func (j *Journal) Idempotency(principal, key string) (*ledger.IdempotencyRecord, bool) {
	r, ok := lookup(j, func(o *overlay) map[[2]string]versioned[ledger.IdempotencyRecord] { return o.idem }, [2]string{principal, key})
	if ok {
		r.Body = slices.Clone(r.Body)
	}
	return r, ok
}

func (j *Journal) GrantIDByReference(p ledger.GrantReferenceParams) (string, bool) {
	id, ok := lookup(j, func(o *overlay) map[ledger.GrantReferenceParams]versioned[string] { return o.refs }, p)
	if !ok {
		return "", false
	}
	return *id, true
}
