package e2e

import "testing"

// TestLeaseSurvivesRestart: a worker that heard a prompt change keeps its
// standing across a restart of the server, after kill -9 (the journal is
// replayed) and after a clean stop (the tables are read): its next
// heartbeat says nothing changed, and its completion is charged once.
// Before the params version a worker heard was stored, the restarted
// server said "changed" and refused the completion.
func TestLeaseSurvivesRestart(t *testing.T) {
	for _, c := range []struct {
		name string
		kill bool
	}{{"Kill9", true}, {"Stop", false}} {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, "--builtin-worker", "0")
			s.admin(201, "PUT", "/v1/accounts/w", map[string]any{})
			j := s.createJob("w", "generate", 1, map[string]any{"prompt": "a dog"})
			jobID, leaseID := s.lease("generate")
			if jobID != j.str("id") {
				t.Fatal("leased another job")
			}
			s.admin(200, "PATCH", "/v1/jobs/"+jobID, map[string]any{"params": map[string]any{"prompt": "a cat"}})
			if hb := s.heartbeat(jobID, leaseID); hb.body["changed"] != true {
				t.Fatalf("heartbeat after the change: %s", hb.raw)
			}

			s.restart(c.kill)

			if hb := s.heartbeat(jobID, leaseID); hb.body["changed"] != false {
				t.Fatalf("heartbeat after the restart: %s", hb.raw)
			}
			if done := s.deliver(jobID, leaseID); done.num("charged") != 5 {
				t.Fatalf("%s", done.raw)
			}
			s.wantBalance("w", 40, 0)
			s.restart(false)
			s.verify()
		})
	}
}

// TestQueuedJobSurvivesRestart: a job queued before kill -9 is leased after
// the restart, and a hold reserved before it can be captured after it,
// once.
func TestQueuedJobSurvivesRestart(t *testing.T) {
	s := startServer(t, "--builtin-worker", "0")
	s.admin(201, "PUT", "/v1/accounts/q", map[string]any{})
	j := s.createJob("q", "generate", 2, map[string]any{"prompt": "two owls"})
	h := s.admin(201, "POST", "/v1/holds", map[string]any{"account_id": "q", "action": "edit"})
	s.wantBalance("q", 30, 15)

	s.restart(true)

	s.wantBalance("q", 30, 15)
	jobID, leaseID := s.lease("generate")
	if jobID != j.str("id") {
		t.Fatalf("leased %s, want %s", jobID, j.str("id"))
	}
	if done := s.deliver(jobID, leaseID); done.num("charged") != 5 {
		t.Fatalf("%s", done.raw)
	}
	s.admin(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 1})
	s.admin(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 1}) // a retry: no second charge
	s.wantBalance("q", 35, 0)
	s.verify()
}
