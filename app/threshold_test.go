package app_test

import (
	"testing"

	"github.com/creditd/creditd/ledger"
)

// SetLowBalanceThreshold sets an existing account's line; an unknown
// account is not_found and is not created, and a line out of range is
// invalid and writes nothing, on both stores.
func TestSetLowBalanceThreshold(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "alice")
		if err := e.svc.SetLowBalanceThreshold(e.ctx, "alice", 250); err != nil {
			t.Fatal(err)
		}
		if a, err := e.svc.Account(e.ctx, "alice"); err != nil || a.LowBalanceThreshold != 250 {
			t.Fatalf("account %+v %v, want threshold 250", a, err)
		}
		for _, bad := range []int64{-1, ledger.LowBalanceThresholdMax + 1} {
			if err := e.svc.SetLowBalanceThreshold(e.ctx, "alice", bad); ledger.ErrorCode(err) != ledger.EInvalid {
				t.Errorf("threshold %d: %v, want invalid", bad, err)
			}
		}
		if a, _ := e.svc.Account(e.ctx, "alice"); a.LowBalanceThreshold != 250 {
			t.Fatalf("threshold %d after refused changes, want 250", a.LowBalanceThreshold)
		}
		if err := e.svc.SetLowBalanceThreshold(e.ctx, "nobody", 5); ledger.ErrorCode(err) != ledger.ENotFound {
			t.Fatalf("unknown account: %v, want not_found", err)
		}
		if _, err := e.svc.Account(e.ctx, "nobody"); ledger.ErrorCode(err) != ledger.ENotFound {
			t.Fatalf("the unknown account was created: %v", err)
		}
	})
}
