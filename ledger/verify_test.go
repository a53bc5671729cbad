package ledger_test

import (
	"strings"
	"testing"

	"github.com/creditd/creditd/ledger"
)

// verifyHistory is a consistent account: a grant of 30, a hold of 10
// captured for 5 (5 back), and a pending hold of 5.
func verifyHistory() *ledger.History {
	leg := func(from, to ledger.Part, n int64) ledger.Leg {
		return ledger.Leg{GrantID: "g1", From: from, To: to, Credits: n}
	}
	return &ledger.History{
		Account: ledger.Account{ID: "a"},
		Grants: []*ledger.Grant{{ID: "g1", AccountID: "a", AmountCredits: 30,
			RemainingCredits: 20, HeldCredits: 5, ChargedCredits: 5}},
		Holds: []*ledger.Hold{
			{ID: "h1", AccountID: "a", Quantity: 2, UnitPriceCredits: 5, AmountCredits: 10, Status: ledger.HoldCaptured,
				Portions: []ledger.Portion{{GrantID: "g1", Credits: 10}}, CapturedQuantity: 1, CapturedCredits: 5},
			{ID: "h2", AccountID: "a", Quantity: 1, UnitPriceCredits: 5, AmountCredits: 5, Status: ledger.HoldPending,
				Portions: []ledger.Portion{{GrantID: "g1", Credits: 5}}},
		},
		Entries: []ledger.Entry{
			{ID: 1, AccountID: "a", Type: ledger.EntryGrant, AmountCredits: 30, Legs: []ledger.Leg{leg(ledger.PartExternal, ledger.PartRemaining, 30)}},
			{ID: 2, AccountID: "a", Type: ledger.EntryHold, AmountCredits: 10, HoldID: "h1", Legs: []ledger.Leg{leg(ledger.PartRemaining, ledger.PartHeld, 10)}},
			{ID: 3, AccountID: "a", Type: ledger.EntryCapture, AmountCredits: 5, HoldID: "h1", Legs: []ledger.Leg{leg(ledger.PartHeld, ledger.PartCharged, 5)}},
			{ID: 4, AccountID: "a", Type: ledger.EntryRelease, AmountCredits: 5, HoldID: "h1", Legs: []ledger.Leg{leg(ledger.PartHeld, ledger.PartRemaining, 5)}},
			{ID: 5, AccountID: "a", Type: ledger.EntryHold, AmountCredits: 5, HoldID: "h2", Legs: []ledger.Leg{leg(ledger.PartRemaining, ledger.PartHeld, 5)}},
		},
	}
}

// TestVerifyFindsEachKindOfMismatch: a consistent history has no
// problem, and each kind of damage is named.
func TestVerifyFindsEachKindOfMismatch(t *testing.T) {
	cfg := ledger.DefaultConfig()
	if probs := ledger.Verify(cfg, verifyHistory()); len(probs) != 0 {
		t.Fatalf("a consistent history: %v", probs)
	}
	for _, tc := range []struct {
		name   string
		damage func(h *ledger.History)
		want   string
	}{
		{"BucketDisagrees", func(h *ledger.History) { h.Grants[0].RemainingCredits, h.Grants[0].ExpiredCredits = 19, 1 },
			"bucket g1: stored remaining 19, ledger replays 20"},
		{"BucketDoesNotAddUp", func(h *ledger.History) { h.Grants[0].AmountCredits = 31 },
			"bucket g1: amount 31 != remaining 20 + held 5 + charged 5 + expired 0"},
		{"BucketMissing", func(h *ledger.History) { h.Grants = nil }, "ledger moves credits of bucket g1 that is not stored"},
		{"EntriesOutOfOrder", func(h *ledger.History) { h.Entries[2].ID = 1 }, "entry 1 out of order"},
		{"LegTakesTooMuch", func(h *ledger.History) { h.Entries[2].Legs[0].Credits = 11; h.Entries[2].AmountCredits = 11 },
			"entry 3 takes 11 held credits from bucket g1, leaving -1"},
		{"EntryAmountWrong", func(h *ledger.History) { h.Entries[1].AmountCredits = 9 }, "entry 2 (hold) says 9 credits but its legs move 10"},
		{"PendingHoldNotHeld", func(h *ledger.History) { h.Holds[1].AmountCredits, h.Holds[1].Portions[0].Credits = 4, 4 },
			"pending hold h2: amount 4, ledger holds 5"},
		{"SettledHoldStillHolds", func(h *ledger.History) { h.Holds[1].Status = ledger.HoldReleased },
			"released hold h2 still holds 5 in the ledger"},
		{"CaptureDisagrees", func(h *ledger.History) { h.Holds[0].CapturedCredits = 10 }, "captured hold h1: captured 10, ledger charged 5"},
		{"UnknownStatus", func(h *ledger.History) { h.Holds[0].Status = "lost" }, `hold h1 has unknown status "lost"`},
		{"OtherAccountsEntry", func(h *ledger.History) { h.Entries[0].AccountID = "b" }, "entry 1 belongs to b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := verifyHistory()
			tc.damage(h)
			probs := ledger.Verify(cfg, h)
			var got []string
			for _, p := range probs {
				got = append(got, p.Message)
			}
			if !strings.Contains(strings.Join(got, "\n"), tc.want) {
				t.Errorf("problems %q lack %q", got, tc.want)
			}
		})
	}
}
