package ledger

import (
	"strings"
	"testing"
	"time"
)

// Ids made in a later millisecond sort after earlier ones, are unique, and
// are valid client-visible ids.
func TestNewIDSortsByTimeAndIsUnique(t *testing.T) {
	seen := map[string]bool{}
	prev := NewID("hold")
	for i := 0; i < 20000; i++ {
		id := NewID("hold")
		if !strings.HasPrefix(id, "hold_") || len(id) != len("hold_")+26 || !ValidID(id, 64) {
			t.Fatalf("id %q: want hold_ and 26 base32 characters", id)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
		if id[:15] < prev[:15] {
			t.Fatalf("time part went back: %q after %q", id, prev)
		}
		prev = id
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, d := range []time.Duration{time.Millisecond, time.Second, 1000 * time.Hour} {
		a, b := newID("x", t0), newID("x", t0.Add(d))
		if b <= a {
			t.Fatalf("%q made %s later sorts before %q", b, d, a)
		}
	}
}

func TestIDMillis(t *testing.T) {
	for _, at := range []time.Time{time.Unix(0, 0), time.Date(2026, 11, 25, 12, 0, 0, 123e6, time.UTC), time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)} {
		id := newID("hold", at)
		if ms, ok := IDMillis(id); !ok || ms != at.UnixMilli() {
			t.Errorf("IDMillis(%q) = %d, %v; want %d", id, ms, ok, at.UnixMilli())
		}
	}
	for _, id := range []string{"", "hold", "hold_", "h1", "hold_0123456789ABCDEFGHJKMNPQR", "hold_0123456789ABCDEFGHJKMNPQRST", "hold_0123456789ABCDEFGHJKMNPQRU"} {
		if ms, ok := IDMillis(id); ok {
			t.Errorf("IDMillis(%q) = %d, true; want false", id, ms)
		}
	}
}

// Hold ids carry their account's tag after their time, stay unique and
// time-ordered, and are valid ids; other ids' tags are their random bits.
func TestHoldIDTag(t *testing.T) {
	seen := map[string]bool{}
	at := time.Date(2026, 11, 25, 12, 0, 0, 123e6, time.UTC)
	for i := range 20000 {
		acct := []string{"acct-1", "acct-2", "a much longer account id, with spaces"}[i%3]
		id := HoldIDAt(acct, at.Add(time.Duration(i/100)*time.Millisecond))
		if seen[id] || !ValidID(id, 64) || len(id) != len("hold_")+26 {
			t.Fatalf("hold id %q: made twice or not a valid id", id)
		}
		seen[id] = true
		if _, tag, ok := IDTimeTag(id); !ok || tag != AccountTag(acct) || tag >= 1<<20 {
			t.Fatalf("IDTimeTag(%q) = %d, %v; want AccountTag(%q) = %d", id, tag, ok, acct, AccountTag(acct))
		}
		if ms, ok := IDMillis(id); !ok || ms != at.UnixMilli()+int64(i/100) {
			t.Fatalf("IDMillis(%q) = %d, %v", id, ms, ok)
		}
	}
	if AccountTag("acct-1") == AccountTag("acct-2") {
		t.Errorf("two account ids share a tag: %d", AccountTag("acct-1"))
	}
	if !strings.HasPrefix(NewHoldID("x"), "hold_") {
		t.Errorf("NewHoldID: want the hold_ prefix")
	}
	for _, id := range []string{"", "hold_", "hold_0123456789ABCDEFGHJKMNPQR", "hold_0123456789ABCUEFGHJKMNPQRS"} {
		if _, tag, ok := IDTimeTag(id); ok {
			t.Errorf("IDTimeTag(%q) = %d, true; want false", id, tag)
		}
	}
}

// A grant whose parts do not add up, or with a negative part, stops the
// operation with an InvariantError naming the grant; a consistent one
// passes. (The checks build their message only when they fail.)
func TestGrantCheckPanicsOnBrokenInvariant(t *testing.T) {
	ok := Grant{ID: "grt_1", AmountCredits: 10, RemainingCredits: 4, HeldCredits: 3, ChargedCredits: 2, ExpiredCredits: 1}
	ok.check()
	broken := map[string]Grant{
		"negative part":  {ID: "grt_1", AmountCredits: 10, RemainingCredits: 11, HeldCredits: -1},
		"parts mismatch": {ID: "grt_1", AmountCredits: 10, RemainingCredits: 4, HeldCredits: 3},
	}
	for name, g := range broken {
		t.Run(name, func(t *testing.T) {
			defer func() {
				ie, isInv := recover().(*InvariantError)
				if !isInv || !strings.Contains(ie.Error(), "grant grt_1") {
					t.Fatalf("recovered %v, want an InvariantError about grant grt_1", ie)
				}
			}()
			g.check()
		})
	}
}

// Checking a consistent grant allocates nothing: it runs on every change
// of a grant.
func TestGrantCheckAllocatesNothing(t *testing.T) {
	g := Grant{ID: "grt_1", AmountCredits: 10, RemainingCredits: 4, HeldCredits: 3, ChargedCredits: 2, ExpiredCredits: 1}
	if n := testing.AllocsPerRun(100, g.check); n != 0 {
		t.Fatalf("check allocated %v times", n)
	}
}

// Making an id allocates only the id (one is made for every hold), and a
// hold id, tag included, costs no more than any other id.
func TestIDsAllocateOnlyTheID(t *testing.T) {
	now := time.Now()
	plain := testing.AllocsPerRun(100, func() { _ = NewID("hold") })
	hold := testing.AllocsPerRun(100, func() { _ = HoldIDAt("acct-1", now) })
	if hold > plain {
		t.Errorf("HoldIDAt allocated %v times, NewID %v", hold, plain)
	}
	if !raceEnabled && plain != 1 {
		t.Errorf("NewID allocated %v times, want 1", plain)
	}
}
