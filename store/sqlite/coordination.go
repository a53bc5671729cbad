package sqlite

import (
	"context"
	"slices"

	"github.com/creditd/creditd/ledger"
)

// The coordination methods of ledger.Batch. Batches run one at a time and
// this process is the only writer (Store.Exclusive), so there is nothing
// to lock and the engine does not call them; they still answer as the
// interface documents.

// LockAndBumpAccounts is LockAccounts, and then saves every account it
// found with its version incremented; it returns the versions before.
func (b *jbatch) LockAndBumpAccounts(ctx context.Context, ids []string) (map[string]int64, error) {
	versions, err := b.LockAccounts(ctx, ids)
	if err != nil {
		return nil, err
	}
	found := make([]string, 0, len(versions))
	for id := range versions {
		found = append(found, id)
	}
	slices.Sort(found)
	accounts := make([]*ledger.Account, 0, len(found))
	for _, id := range found {
		a, ok := last(b.c.Accounts, func(a *ledger.Account) bool { return a.ID == id })
		if !ok {
			if a, err = b.s.GetAccount(ctx, id); err != nil {
				return nil, err
			}
		}
		a.Version = versions[id] + 1
		accounts = append(accounts, a)
	}
	if err := b.SaveAccounts(ctx, accounts); err != nil {
		return nil, err
	}
	return versions, nil
}

// LockIdempotencyKeys locks nothing: no other batch runs until this one
// ends.
func (b *jbatch) LockIdempotencyKeys(ctx context.Context, keys [][2]string) error {
	return b.check()
}
