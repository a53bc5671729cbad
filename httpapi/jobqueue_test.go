package httpapi_test

import (
	"testing"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// TestQueuedJobsMax: beyond limits.queued_jobs_max jobs waiting for a
// worker, a new job is refused with 503 unavailable and Retry-After, and
// nothing is held; a replay of a job created earlier is still answered,
// and once a worker takes a job there is room again.
func TestQueuedJobsMax(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		cfg := ledger.DefaultConfig()
		cfg.Limits.QueuedJobsMax = 2
		e := newEnv(t, append(opts, withConfig(cfg))...)
		e.createAccount("u", nil)
		first := e.do("POST", "/v1/jobs", map[string]any{"account_id": "u", "action": "generate"}, hdr{"Idempotency-Key": "first"})
		if first.status != 201 {
			t.Fatalf("first job: %d %s", first.status, first.raw)
		}
		e.generateJob("u", 1)
		before := e.balance("u")
		r := e.do("POST", "/v1/jobs", map[string]any{"account_id": "u", "action": "generate"})
		if r.status != 503 || r.errCode() != ledger.EUnavailable || r.header.Get("Retry-After") != "5" || r.num("error.retry_after_seconds") != 5 {
			t.Fatalf("third job: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.raw)
		}
		if after := e.balance("u"); after.num("available") != before.num("available") || after.num("held") != before.num("held") {
			t.Fatalf("the refused job changed the balance: %s, then %s", before.raw, after.raw)
		}
		again := e.do("POST", "/v1/jobs", map[string]any{"account_id": "u", "action": "generate"}, hdr{"Idempotency-Key": "first"})
		if again.status != 201 || again.str("id") != first.str("id") || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay while the queue is full: %d %s", again.status, again.raw)
		}
		if l := e.must(200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"generate"}}); l.str("job.id") != first.str("id") {
			t.Fatalf("lease took %s, want the oldest job %s", l.str("job.id"), first.str("id"))
		}
		e.generateJob("u", 1)
	})
}

// TestQueuedJobsMaxCountsOtherNodes: on PostgreSQL a node's lease queue,
// which the bound counts, holds the jobs other nodes queue (their events)
// and lets go of those they lease or end; an event that names a job
// without its status changes nothing.
func TestQueuedJobsMaxCountsOtherNodes(t *testing.T) {
	cfg := ledger.DefaultConfig()
	cfg.Limits.QueuedJobsMax = 1
	bus := engine.NewLocalBus()
	e := newEnv(t, onPostgres(), withConfig(cfg), withBus(bus))
	e.createAccount("u", nil)
	remote := func(status ledger.JobStatus) {
		bus.Publish([]engine.Event{{AccountID: "elsewhere", Remote: true, Jobs: []ledger.Job{{
			ID: "job_elsewhere", AccountID: "elsewhere", Action: "upscale", Status: status, CreatedAt: e.clock.Now(),
		}}}})
	}
	remote(ledger.JobQueued)
	if r := e.do("POST", "/v1/jobs", map[string]any{"account_id": "u", "action": "generate"}); r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("a job while another node's job is queued: %d %s", r.status, r.raw)
	}
	remote("")
	if r := e.do("POST", "/v1/jobs", map[string]any{"account_id": "u", "action": "generate"}); r.status != 503 {
		t.Fatalf("an event without a status let the job go: %d %s", r.status, r.raw)
	}
	remote(ledger.JobRunning)
	e.generateJob("u", 1)
}
