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
	a := NewID("x")
	time.Sleep(2 * time.Millisecond) // a real millisecond must pass: NewID reads the wall clock
	if b := NewID("x"); b <= a {
		t.Fatalf("%q made later sorts before %q", b, a)
	}
}
