package httpapi_test

import (
	"testing"
	"time"

	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
)

// The waits of item 4 of issue 20, from the default config.
const (
	noWorkerWait = 600 * time.Second // limits.job_no_worker_seconds_max
	leaseStep    = 25 * time.Second  // under limits.job_lease_seconds (30)
)

// generateJob starts a generation of quantity images (admin key).
func (e *env) generateJob(account string, quantity int) string {
	e.t.Helper()
	return e.must(201, "POST", "/v1/jobs", map[string]any{"account_id": account, "action": "generate",
		"quantity": quantity, "params": map[string]any{"prompt": "a red fox"}}).str("id")
}

// priceAvailable reads GET /v1/prices and says whether action is available.
func (e *env) priceAvailable(action string) bool {
	e.t.Helper()
	r := e.must(200, "GET", "/v1/prices", nil)
	for _, d := range r.body["data"].([]any) {
		p := d.(map[string]any)
		if p["action"] == action {
			v, ok := p["available"].(bool)
			if !ok {
				e.t.Fatalf("price of %s has no available flag: %s", action, r.raw)
			}
			return v
		}
	}
	e.t.Fatalf("no price for %s: %s", action, r.raw)
	return false
}

// heartbeat renews a lease and fails the test unless the job still runs.
func (e *env) heartbeat(job, lease string) {
	e.t.Helper()
	if r := e.must(200, "POST", "/v1/worker/jobs/"+job+"/heartbeat", map[string]any{"lease_id": lease}); r.str("job.status") != "running" {
		e.t.Fatalf("heartbeat: %s", r.raw)
	}
}

func (e *env) wantJob(id, status string) resp {
	e.t.Helper()
	r := e.must(200, "GET", "/v1/jobs/"+id, nil)
	if r.str("status") != status {
		e.t.Fatalf("job %s: %s, want %s", id, r.raw, status)
	}
	return r
}

// TestNoWorkerInterruptsAfterShortWait reproduces item 4 of issue 20: with
// no worker for generate, a job used to wait "queued" with its credits held
// for 24 h. Now it ends interrupted, with the no-worker reason and nothing
// charged, once it has waited job_no_worker_seconds_max.
func TestNoWorkerInterruptsAfterShortWait(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		e.createAccount("u", nil)
		if e.priceAvailable("generate") {
			t.Fatal("generate is available with no worker")
		}
		before := e.available("u")
		id := e.generateJob("u", 2)
		if b := e.balance("u"); b.num("available") != before-10 || b.num("held") != 10 {
			t.Fatalf("balance after start: %s", b.raw)
		}
		e.advance(noWorkerWait - time.Second)
		e.wantJob(id, "queued")
		e.advance(time.Second)
		j := e.wantJob(id, "interrupted")
		if j.str("error") != ledger.JobErrorNoWorker || j.num("charged") != 0 {
			t.Fatalf("interrupted job: %s", j.raw)
		}
		if b := e.balance("u"); b.num("available") != before || b.num("held") != 0 {
			t.Fatalf("balance after the interruption: %s", b.raw)
		}
		if rel := e.entries("u")[0]; rel["type"] != "release" || rel["reason"] != "interrupted" {
			t.Fatalf("last entry: %v", rel)
		}
		e.verify()
	})
}

// TestBusyWorkerKeepsJobQueued: a job that waits behind another one that a
// live worker is running keeps the long wait (job_queue_seconds_max); once
// that worker is gone for the short wait, the job ends interrupted.
func TestBusyWorkerKeepsJobQueued(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		e.createAccount("u", nil)
		before := e.available("u")
		first := e.generateJob("u", 1)
		r := e.must(200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"generate"}})
		if r.str("job.id") != first {
			t.Fatalf("lease: %s", r.raw)
		}
		lease := r.str("lease_id")
		if !e.priceAvailable("generate") || e.priceAvailable("video") {
			t.Fatal("a worker polling for generate: generate should be available, video not")
		}
		waiting := e.generateJob("u", 1)
		for waited := time.Duration(0); waited <= noWorkerWait+leaseStep; waited += leaseStep {
			e.advance(leaseStep)
			e.heartbeat(first, lease)
		}
		e.wantJob(waiting, "queued")
		if !e.priceAvailable("generate") {
			t.Fatal("generate unavailable while its worker heartbeats")
		}
		// The worker finishes and goes away.
		e.must(200, "POST", "/v1/worker/jobs/"+first+"/fail", map[string]any{"lease_id": lease, "error": "gone", "retryable": false})
		e.advance(time.Duration(ledger.DefaultConfig().Limits.JobLeaseSeconds) * time.Second)
		if e.priceAvailable("generate") {
			t.Fatal("generate still available a lease period after its worker's last call")
		}
		e.advance(noWorkerWait - 31*time.Second)
		e.wantJob(waiting, "queued")
		e.advance(time.Second)
		e.wantJob(waiting, "interrupted")
		if b := e.balance("u"); b.num("available") != before || b.num("held") != 0 {
			t.Fatalf("balance: %s", b.raw)
		}
	})
}

// TestWorkerOnAnotherNodeCounts: two nodes on one PostgreSQL database. A
// worker runs a generate job on node A; node B, where the worker never
// called, shows generate available and keeps B's queued job past the short
// wait; once the worker is gone, node B interrupts it.
func TestWorkerOnAnotherNodeCounts(t *testing.T) {
	dsn := pgtest.DSN(t)
	clock := ledger.NewTestClock(mustTime("2026-06-15T10:00:00Z"))
	a := newEnv(t, onPostgresDSN(dsn), withClock(clock))
	b := newEnv(t, onPostgresDSN(dsn), withClock(clock))
	a.createAccount("u", nil)
	before := a.available("u")
	first := a.generateJob("u", 1)
	r := a.must(200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"generate"}})
	if r.str("job.id") != first {
		t.Fatalf("lease: %s", r.raw)
	}
	lease := r.str("lease_id")
	// Node A writes its worker polls when its clock endpoint sweeps; node
	// B reads them again once its last read is 2 s old.
	a.advance(0)
	b.advance(3 * time.Second)
	if !b.priceAvailable("generate") {
		t.Fatal("node B does not see the worker polling on node A")
	}
	waiting := b.generateJob("u", 1)
	for waited := time.Duration(0); waited <= noWorkerWait+leaseStep; waited += leaseStep {
		a.heartbeat(first, lease)
		a.advance(0)
		b.advance(leaseStep)
	}
	b.wantJob(waiting, "queued")
	a.must(200, "POST", "/v1/worker/jobs/"+first+"/fail", map[string]any{"lease_id": lease, "error": "gone", "retryable": false})
	b.advance(noWorkerWait)
	if j := b.wantJob(waiting, "interrupted"); j.str("error") != ledger.JobErrorNoWorker {
		t.Fatalf("job: %s", j.raw)
	}
	if bal := b.balance("u"); bal.num("available") != before || bal.num("held") != 0 {
		t.Fatalf("balance: %s", bal.raw)
	}
}
