package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

func credentialStatus(t *testing.T, s ledger.Store, account, id string) ledger.CredentialStatus {
	t.Helper()
	st, err := s.GetCredentialStatus(ctx(t), ledger.CredentialStatusParams{AccountID: account, CredentialID: id})
	check(t, "GetCredentialStatus", err)
	return st
}

func testCredentialGenerations(t *testing.T, s ledger.Store) {
	// An account that never revoked is at generation 0 (it needs no row,
	// nor even an account).
	if st := credentialStatus(t, s, "alice", ""); st != (ledger.CredentialStatus{}) {
		t.Fatalf("status before any revocation: %+v", st)
	}
	r, err := s.RevokeAccountCredentials(ctx(t), "alice", at(0).In(zone))
	check(t, "RevokeAccountCredentials", err)
	same(t, "first revocation", *r, ledger.CredentialRevocation{AccountID: "alice", Generation: 1, RevokedAt: at(0)})
	r, err = s.RevokeAccountCredentials(ctx(t), "alice", at(time.Minute))
	check(t, "RevokeAccountCredentials again", err)
	same(t, "second revocation", *r, ledger.CredentialRevocation{AccountID: "alice", Generation: 2, RevokedAt: at(time.Minute)})
	if st := credentialStatus(t, s, "alice", ""); st.Generation != 2 || st.Revoked {
		t.Errorf("alice after two revocations: %+v", st)
	}
	if st := credentialStatus(t, s, "bob", ""); st.Generation != 0 {
		t.Errorf("another account moved: %+v", st)
	}

	// Concurrent revocations (several nodes at once) each move it by one.
	const n = 16
	var wg sync.WaitGroup
	gens := make(chan int64, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.RevokeAccountCredentials(ctx(t), "carol", at(time.Hour))
			if err != nil {
				t.Errorf("concurrent RevokeAccountCredentials: %v", err)
				return
			}
			gens <- r.Generation
		}()
	}
	wg.Wait()
	close(gens)
	seen := map[int64]bool{}
	for g := range gens {
		seen[g] = true
	}
	if len(seen) != n || !seen[1] || !seen[n] {
		t.Errorf("concurrent revocations returned generations %v, want each of 1..%d once", seen, n)
	}
	if st := credentialStatus(t, s, "carol", ""); st.Generation != n {
		t.Errorf("carol after %d revocations: %+v", n, st)
	}
}

func testRevokedCredentials(t *testing.T, s ledger.Store) {
	c1 := ledger.RevokedCredential{ID: "nonce-1", AccountID: "alice", RevokedAt: at(0), ExpiresAt: at(time.Hour)}
	c2 := ledger.RevokedCredential{ID: "nonce-2", AccountID: "alice", RevokedAt: at(0), ExpiresAt: at(2 * time.Hour)}
	check(t, "RevokeCredential", s.RevokeCredential(ctx(t), c1))
	check(t, "RevokeCredential", s.RevokeCredential(ctx(t), c2))
	// Revoking again is no error and keeps the first record (its expiry).
	again := c1
	again.ExpiresAt = at(10 * time.Hour)
	check(t, "RevokeCredential again", s.RevokeCredential(ctx(t), again))

	if st := credentialStatus(t, s, "alice", "nonce-1"); !st.Revoked || st.Generation != 0 {
		t.Errorf("nonce-1: %+v", st)
	}
	if st := credentialStatus(t, s, "alice", "nonce-3"); st.Revoked {
		t.Errorf("a credential never revoked reads revoked: %+v", st)
	}
	// Both answers come from one call.
	_, err := s.RevokeAccountCredentials(ctx(t), "alice", at(0))
	check(t, "RevokeAccountCredentials", err)
	if st := credentialStatus(t, s, "alice", "nonce-2"); !st.Revoked || st.Generation != 1 {
		t.Errorf("nonce-2 after a generation change: %+v", st)
	}

	// Deleted strictly before the cut-off: the first record's expiry (1 h)
	// was kept, so it goes at 1 h + 1 µs and nonce-2 stays.
	n, err := s.DeleteRevokedCredentialsBefore(ctx(t), at(time.Hour))
	check(t, "DeleteRevokedCredentialsBefore", err)
	if n != 0 {
		t.Errorf("DeleteRevokedCredentialsBefore(expiry) deleted %d, want 0", n)
	}
	n, err = s.DeleteRevokedCredentialsBefore(ctx(t), at(time.Hour+time.Microsecond))
	check(t, "DeleteRevokedCredentialsBefore", err)
	if n != 1 {
		t.Errorf("DeleteRevokedCredentialsBefore(expiry+1µs) deleted %d, want 1", n)
	}
	if st := credentialStatus(t, s, "alice", "nonce-1"); st.Revoked {
		t.Errorf("nonce-1 still revoked after its record was deleted")
	}
	if st := credentialStatus(t, s, "alice", "nonce-2"); !st.Revoked {
		t.Errorf("nonce-2 deleted before its expiry")
	}

	// Many records: deleted in several rounds (1000 rows each). Written by
	// 8 goroutines, as requests of many users would.
	const many = 1100
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < many; i += 8 {
				c := ledger.RevokedCredential{ID: fmt.Sprint("m", i), AccountID: "bob", RevokedAt: at(0), ExpiresAt: at(3*time.Hour + time.Duration(i)*time.Millisecond)}
				if err := s.RevokeCredential(ctx(t), c); err != nil {
					t.Errorf("RevokeCredential: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	n, err = s.DeleteRevokedCredentialsBefore(ctx(t), at(3*time.Hour+1050*time.Millisecond))
	check(t, "DeleteRevokedCredentialsBefore many", err)
	if n != 1051 { // nonce-2 and m0..m1049
		t.Errorf("DeleteRevokedCredentialsBefore deleted %d of many, want 1051", n)
	}
	if st := credentialStatus(t, s, "bob", "m1050"); !st.Revoked {
		t.Errorf("m1050 deleted before its expiry")
	}
}
