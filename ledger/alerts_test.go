package ledger

import (
	"testing"
	"time"
)

// TestAlertRules: credits.low and credits.depleted fire once on the way
// down, a release or a daily allowance does not re-arm them, a grant that
// lifts the account above a line re-arms that line's alert only.
func TestAlertRules(t *testing.T) {
	cfg := DefaultConfig()
	now := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	ch := NewChanges()
	s := NewAccount(cfg, now, "a", PlanPaid, "UTC", ch) // 30 signup credits, threshold 10
	if s.Account.Alerts != 0 || s.Account.LowBalanceThreshold != 10 {
		t.Fatalf("new account: alerts %d, threshold %d", s.Account.Alerts, s.Account.LowBalanceThreshold)
	}
	check := func(what string, granted, wantLow, wantDepleted bool) {
		t.Helper()
		low, depleted := s.CheckAlerts(cfg, now, granted, NewChanges())
		if low != wantLow || depleted != wantDepleted {
			t.Errorf("%s: low %v depleted %v, want %v %v", what, low, depleted, wantLow, wantDepleted)
		}
	}
	reserve := func(q int64) *Hold {
		t.Helper()
		h, err := s.Reserve(cfg, now, ReserveParams{Action: "generate", Quantity: q}, NewChanges())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h1 := reserve(4) // 10 left
	check("at the line", false, false, false)
	h2 := reserve(1) // 5 left
	check("below the line", false, true, false)
	check("again below the line", false, false, false)
	h3 := reserve(1) // 0 left
	check("depleted", false, false, true)
	for _, h := range []*Hold{h1, h2, h3} {
		if _, err := s.Release(cfg, now, h.ID, "failed", NewChanges()); err != nil {
			t.Fatal(err)
		}
	}
	check("released back above both lines", false, false, false)
	reserve(6)
	check("down again without a grant", false, false, false)
	if _, err := s.Grant(cfg, now, GrantParams{Source: SourcePromo, AmountCredits: 7}, NewChanges()); err != nil {
		t.Fatal(err)
	}
	check("a grant above depleted, below low", true, false, false)
	reserve(1) // 2 left
	check("depleted re-armed by the grant", false, false, true)
	if err := s.SetLowBalanceThreshold(cfg, now, 2, NewChanges()); err != nil {
		t.Fatal(err)
	}
	check("threshold lowered to the credits: re-armed, not below", false, false, false)
	if err := s.SetLowBalanceThreshold(cfg, now, 3, NewChanges()); err != nil {
		t.Fatal(err)
	}
	check("threshold raised above the credits", false, true, false)
	for _, bad := range []int64{-1, LowBalanceThresholdMax + 1} {
		if err := s.SetLowBalanceThreshold(cfg, now, bad, NewChanges()); ErrorCode(err) != EInvalid {
			t.Errorf("threshold %d: %v, want invalid", bad, err)
		}
	}
}

// TestNoticeExpiring: a purchased, promo or admin bucket with credits gets
// its notice once, from notice hours before its expiry; daily buckets and
// buckets without expiry get none.
func TestNoticeExpiring(t *testing.T) {
	cfg := DefaultConfig()
	now := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	s := NewAccount(cfg, now, "a", PlanFree, "UTC", NewChanges())
	exp := now.Add(100 * time.Hour)
	g, err := s.Grant(cfg, now, GrantParams{Source: SourcePurchase, AmountCredits: 40, ExpiresAt: exp}, NewChanges())
	if err != nil {
		t.Fatal(err)
	}
	if due := NextNotice(cfg, g); !due.Equal(exp.Add(-72 * time.Hour)) {
		t.Errorf("next notice %v, want 72 h before %v", due, exp)
	}
	if n := s.NoticeExpiring(cfg, now.Add(27*time.Hour), NewChanges()); len(n) != 0 {
		t.Errorf("noticed %d buckets 73 h before expiry", len(n))
	}
	n := s.NoticeExpiring(cfg, now.Add(28*time.Hour), NewChanges())
	if len(n) != 1 || n[0].Grant.ID != g.ID || !n[0].DueAt.Equal(exp.Add(-72*time.Hour)) {
		t.Fatalf("noticed %+v, want the purchase, due 72 h before its expiry", n)
	}
	if n := s.NoticeExpiring(cfg, now.Add(29*time.Hour), NewChanges()); len(n) != 0 {
		t.Errorf("noticed again: %+v", n)
	}
	i := s.grantIndex(g.ID)
	if due := NextNotice(cfg, s.Grants[i]); !due.Equal(exp) {
		t.Errorf("after the notice the next deadline is %v, want the expiry %v", due, exp)
	}
}
