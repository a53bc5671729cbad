package app

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

func sampleHold() *ledger.Hold {
	t0 := time.Date(2026, 6, 15, 10, 0, 0, 123456000, time.UTC)
	return &ledger.Hold{
		ID: "hold_01J0ABCDEF", AccountID: "alice", Action: "generate", Category: "image",
		Quantity: 4, UnitPriceCredits: 5, AmountCredits: 20, Status: ledger.HoldPending,
		Portions:  []ledger.Portion{{GrantID: "grant_1", Credits: 15}, {GrantID: "grant_2", Credits: 5}},
		CreatedAt: t0, ExpiresAt: t0.Add(600 * time.Second),
	}
}

// TestHoldJSONMatchesEncodingJSON: the hand-written rendering of a hold is
// byte for byte what encoding/json writes, for ordinary holds and for
// every kind of value it hands back to encoding/json.
func TestHoldJSONMatchesEncodingJSON(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(h *ledger.Hold){
		"Pending": func(h *ledger.Hold) {},
		"Captured": func(h *ledger.Hold) {
			h.Status, h.CapturedQuantity, h.CapturedCredits, h.ResolvedAt = "captured", 3, 15, h.CreatedAt.Add(time.Minute)
		},
		"Released": func(h *ledger.Hold) {
			h.Status, h.ReleaseReason, h.ResolvedAt = "released", "failed", h.CreatedAt.Add(time.Second)
		},
		"NilPortions":           func(h *ledger.Hold) { h.Portions = nil },
		"EmptyPortions":         func(h *ledger.Hold) { h.Portions = []ledger.Portion{} },
		"ZeroTimes":             func(h *ledger.Hold) { h.CreatedAt, h.ExpiresAt = time.Time{}, time.Time{} },
		"WholeSeconds":          func(h *ledger.Hold) { h.CreatedAt = h.CreatedAt.Truncate(time.Second) },
		"Nanoseconds":           func(h *ledger.Hold) { h.CreatedAt = h.CreatedAt.Add(7) },
		"MonotonicClock":        func(h *ledger.Hold) { h.CreatedAt = time.Now().UTC() },
		"OtherZone":             func(h *ledger.Hold) { h.ExpiresAt = h.ExpiresAt.In(berlin) },
		"FixedZone":             func(h *ledger.Hold) { h.ExpiresAt = h.ExpiresAt.In(time.FixedZone("x", -(3*3600 + 30*60))) },
		"NegativeNumbers":       func(h *ledger.Hold) { h.Quantity, h.AmountCredits = -1, -9223372036854775808 },
		"HTMLCharacters":        func(h *ledger.Hold) { h.Action, h.ReleaseReason = "<a href='x'>&</a>", "a>b" },
		"QuotesAndBackslashes":  func(h *ledger.Hold) { h.AccountID = `a"b\c` },
		"ControlCharacters":     func(h *ledger.Hold) { h.ReleaseReason = "a\nb\tc\x00d\x1f\x7f\b\f" },
		"Unicode":               func(h *ledger.Hold) { h.AccountID = "Jürgen ✓ \u2028\u2029 😀" },
		"InvalidUTF8":           func(h *ledger.Hold) { h.Portions[0].GrantID = "a\xffb\xc3" },
		"EmptyStrings":          func(h *ledger.Hold) { h.ID, h.Category, h.Status = "", "", "" },
		"ResolvedInAnotherZone": func(h *ledger.Hold) { h.ResolvedAt = h.CreatedAt.In(berlin) },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			h := sampleHold()
			change(h)
			want, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			got, err := holdJSON(h)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("holdJSON:\n got %s\nwant %s", got, want)
			}
		})
	}
	t.Run("YearOutOfRangeIsAnError", func(t *testing.T) {
		h := sampleHold()
		h.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		if _, err := json.Marshal(h); err == nil {
			t.Fatal("encoding/json accepted year 10000")
		}
		if _, err := holdJSON(h); err == nil {
			t.Fatal("holdJSON accepted year 10000")
		}
	})
}

func FuzzHoldJSON(f *testing.F) {
	f.Add("alice", "generate", "grant_1", "failed", int64(20), int64(1781517600123456789))
	f.Add("<&>", "\u2028", "\xff", "\"\\", int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, account, action, grant, reason string, n, unixNanos int64) {
		h := sampleHold()
		h.AccountID, h.Action, h.Portions[0].GrantID, h.ReleaseReason = account, action, grant, reason
		h.AmountCredits, h.Portions[1].Credits = n, -n
		h.CreatedAt = time.Unix(0, unixNanos).UTC()
		h.ResolvedAt = time.Unix(0, unixNanos/3)
		want, werr := json.Marshal(h)
		got, gerr := holdJSON(h)
		if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("holdJSON: %s, %v\nencoding/json: %s, %v", got, gerr, want, werr)
		}
	})
}

func BenchmarkHoldJSON(b *testing.B) {
	h := sampleHold()
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = mustJSON(h)
		}
	})
	b.Run("holdJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = mustHoldJSON(h)
		}
	})
}
