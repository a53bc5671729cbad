package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/creditd/creditd/ledger"
)

// TestBadDataErrors: a value PostgreSQL refuses (a NUL byte or invalid
// UTF-8 in a text column, a duplicate key) fails the batch with an error
// that carries ledger.ErrBadData and the code the caller sees, whether the
// statement ran at once, was deferred to Commit, or was a read; Commit
// reports it too, and nothing is written. The driver's text stays out of
// the message. Failures of the store itself carry no mark.
func TestBadDataErrors(t *testing.T) {
	ctx := context.Background()
	s, _ := openNew(t)
	commit(t, s, func(b ledger.Batch) error {
		return errors.Join(b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}),
			b.SaveGrants(ctx, []*ledger.Grant{{ID: "g1", AccountID: "A", Source: ledger.SourcePurchase, Reference: "r",
				AmountCredits: 1, RemainingCredits: 1, CreatedAt: t0}}))
	})
	const textMsg = "a text value holds a NUL byte or is not valid UTF-8"
	bad := func(id, tz string) *ledger.Account {
		a := account(id, 1)
		a.Timezone = tz
		return a
	}
	grant := func(id, ref string) *ledger.Grant {
		return &ledger.Grant{ID: id, AccountID: "A", Source: ledger.SourcePurchase, Reference: ref, AmountCredits: 1,
			RemainingCredits: 1, CreatedAt: t0}
	}
	for _, tc := range []struct {
		name     string
		call     func(b ledger.Batch) error // its error, if any, must be the mark too
		code     string
		msg      string
		atCommit bool // the call succeeds (deferred) and Commit fails
	}{
		{"DeferredNUL", func(b ledger.Batch) error {
			return b.SaveAccounts(ctx, []*ledger.Account{account("B", 1), bad("C", "Europe/\x00Berlin")})
		}, ledger.EInvalid, textMsg, true},
		{"DeferredInvalidUTF8", func(b ledger.Batch) error {
			return b.SaveHolds(ctx, []*ledger.Hold{{ID: "h1", AccountID: "A", Action: "generate", Status: ledger.HoldReleased,
				ReleaseReason: "bad \xff byte", CreatedAt: t0}})
		}, ledger.EInvalid, textMsg, true},
		{"ImmediateNUL", func(b ledger.Batch) error {
			return b.SaveGrants(ctx, []*ledger.Grant{grant("g2", "x\x00y")})
		}, ledger.EInvalid, textMsg, false},
		{"ReadInvalidUTF8", func(b ledger.Batch) error {
			_, err := b.GetGrantByReference(ctx, ledger.GrantReferenceParams{AccountID: "A", Source: ledger.SourcePurchase, Reference: "\xff"})
			return err
		}, ledger.EInvalid, textMsg, false},
		{"LockNUL", func(b ledger.Batch) error {
			_, err := b.(*batch).LockAndBumpAccounts(ctx, []string{"A", "x\x00y"})
			return err
		}, ledger.EInvalid, textMsg, false},
		{"DuplicateReference", func(b ledger.Batch) error {
			return b.SaveGrants(ctx, []*ledger.Grant{grant("g3", "r")})
		}, ledger.EConflict, "a grant with the same account, source and reference already exists", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := s.BeginBatch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Rollback()
			if err := b.SaveAccounts(ctx, []*ledger.Account{account("D", 1)}); err != nil {
				t.Fatal(err)
			}
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ledger.ErrBadData) || ledger.ErrorCode(err) != tc.code || ledger.ErrorMessage(err) != tc.msg {
					t.Errorf("%s: %v; want %s (%s) carrying ErrBadData", what, err, tc.code, tc.msg)
				}
			}
			err = tc.call(b)
			if tc.atCommit {
				if err != nil {
					t.Fatalf("deferred call: %v", err)
				}
			} else {
				check("call", err)
			}
			check("Commit", b.Commit())
			if _, err := s.GetAccount(ctx, "D"); ledger.ErrorCode(err) != ledger.ENotFound {
				t.Errorf("the failed batch's other write: %v, want not found", err)
			}
		})
	}
	// Reads of committed data, outside a batch.
	if _, err := s.GetHold(ctx, "h\x00"); !errors.Is(err, ledger.ErrBadData) || ledger.ErrorCode(err) != ledger.EInvalid {
		t.Errorf("GetHold of an id with a NUL byte: %v, want invalid_request carrying ErrBadData", err)
	}
	// The store's own failures carry no mark.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.GetHold(cctx, "h1"); err == nil || errors.Is(err, ledger.ErrBadData) {
		t.Errorf("GetHold with a cancelled context: %v, want a failure without ErrBadData", err)
	}
	s.Close()
	if _, err := s.GetAccount(ctx, "A"); err == nil || errors.Is(err, ledger.ErrBadData) {
		t.Errorf("GetAccount on a closed store: %v, want a failure without ErrBadData", err)
	}
}
