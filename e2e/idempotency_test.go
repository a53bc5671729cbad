package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sync"
	"testing"

	"github.com/creditd/creditd/internal/pgtest"
)

// TestIdempotencyKeyRace: one idempotency key sent at the same time with
// two different requests (holds on two accounts, which may go to different
// committers: the server runs three) is applied once. The other request is
// refused, as a key in flight (409 conflict) or, once the first is
// recorded, as a different request under a used key (422
// idempotency_mismatch); never are both applied. On SQLite the store runs
// one batch at a time; on PostgreSQL the committers' transactions run side
// by side, and only the engine's guard on keys in flight keeps the second
// request from applying too.
func TestIdempotencyKeyRace(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		s := startServer(t, "--committers", "3")
		idempotencyKeyRace(t, s, s)
		s.verify()
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		n := startNode(t, dsn, "--committers", "3")
		idempotencyKeyRace(t, n, n)
		verifyPG(t, dsn)
	})
	// Two nodes: each request of a pair goes to another node, where the
	// engine's guard cannot see the other's key.
	t.Run("PostgreSQLTwoNodes", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		idempotencyKeyRace(t, startNode(t, dsn), startNode(t, dsn))
		verifyPG(t, dsn)
	})
}

func verifyPG(t *testing.T, dsn string) {
	t.Helper()
	creditd, _ := binaries(t)
	if out, err := exec.Command(creditd, "verify", "--db", dsn).CombinedOutput(); err != nil {
		t.Fatalf("verify against PostgreSQL: %v\n%s", err, out)
	}
}

// idempotencyKeyRace sends the pairs, the first request of each to a, the
// second to b.
func idempotencyKeyRace(t *testing.T, a, b *server) {
	const pairs = 150
	for i := range pairs {
		a.admin(201, "PUT", fmt.Sprintf("/v1/accounts/race-a%d", i), map[string]any{})
		a.admin(201, "PUT", fmt.Sprintf("/v1/accounts/race-b%d", i), map[string]any{})
	}
	post := func(node *server, acct, key string) (int, string) {
		body, _ := json.Marshal(map[string]any{"account_id": acct, "action": "generate"})
		r, err := http.NewRequest("POST", node.url+"/v1/holds", bytes.NewReader(body))
		if err != nil {
			return 0, err.Error()
		}
		r.Header.Set("Authorization", "Bearer "+adminKey)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Idempotency-Key", key)
		res, err := apiClient(t).Do(r)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(raw)
	}
	type outcome struct {
		status [2]int
		body   [2]string
	}
	out := make([]outcome, pairs)
	var wg sync.WaitGroup
	for i := range pairs {
		key := fmt.Sprintf("race-key-%d", i)
		for side, acct := range []string{fmt.Sprintf("race-a%d", i), fmt.Sprintf("race-b%d", i)} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i].status[side], out[i].body[side] = post([]*server{a, b}[side], acct, key)
			}()
		}
	}
	wg.Wait()
	refused := map[int]int{}
	for i, o := range out {
		applied := 0
		for side := range 2 {
			switch o.status[side] {
			case http.StatusCreated:
				applied++
			case http.StatusConflict, http.StatusUnprocessableEntity:
				refused[o.status[side]]++
			default:
				t.Fatalf("pair %d side %d: %d %s", i, side, o.status[side], o.body[side])
			}
		}
		if applied != 1 {
			t.Fatalf("pair %d: %d of the two requests under one key applied: %v %v", i, applied, o.status, o.body)
		}
		// The books agree: one hold of 5 credits across the pair.
		_, ha := a.balance(fmt.Sprintf("race-a%d", i))
		_, hb := a.balance(fmt.Sprintf("race-b%d", i))
		if ha+hb != 5 {
			t.Fatalf("pair %d: %d + %d credits held, want 5", i, ha, hb)
		}
	}
	t.Logf("the second request of each pair: %d × 409 (key in flight), %d × 422 (key used)", refused[409], refused[422])
}
