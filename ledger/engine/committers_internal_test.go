package engine

import (
	"testing"

	"github.com/creditd/creditd/ledger"
)

// TestClaimKey: with several committers, an idempotency key in flight on
// one committer is refused (409, conflict) to an operation bound for
// another, accepted for its own (a retry, answered with the replay), and
// free again once every operation with it has been answered.
func TestClaimKey(t *testing.T) {
	e := &Engine{ops: make([]chan *op, 2), idemFlight: map[[2]string]flight{}}
	key := &IdempotencyKey{Principal: "admin", Key: "k1"}
	other := &IdempotencyKey{Principal: "user:a", Key: "k1"} // another principal's key of the same name
	if err := e.claimKey(key, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.claimKey(key, 0); err != nil {
		t.Fatalf("a retry to the same committer: %v", err)
	}
	if err := e.claimKey(other, 1); err != nil {
		t.Fatalf("another principal's key: %v", err)
	}
	err := e.claimKey(key, 1)
	if ledger.ErrorCode(err) != ledger.EConflict {
		t.Fatalf("the key on another committer: %v, want a conflict", err)
	}
	e.releaseKeys([]*op{{idem: key}})
	if err := e.claimKey(key, 1); ledger.ErrorCode(err) != ledger.EConflict {
		t.Fatalf("one of two operations answered: %v, want a conflict", err)
	}
	e.releaseKeys([]*op{{idem: key}, {idem: other}, {}})
	if len(e.idemFlight) != 0 {
		t.Fatalf("keys left in flight: %v", e.idemFlight)
	}
	if err := e.claimKey(key, 1); err != nil {
		t.Fatalf("once answered, the key on another committer: %v", err)
	}
}

// TestShard: an account always goes to the same committer, and accounts
// spread over all of them.
func TestShard(t *testing.T) {
	seen := make([]int, 3)
	for i := range 300 {
		id := "acct_" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		n := shard(id, 3)
		if n != shard(id, 3) || n < 0 || n >= 3 {
			t.Fatalf("shard(%q) = %d", id, n)
		}
		seen[n]++
	}
	for n, c := range seen {
		if c < 50 {
			t.Fatalf("committer %d got %d of 300 accounts: %v", n, c, seen)
		}
	}
}
