package e2e

import (
	"bytes"
	"net/url"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/pgtest"
)

// TestWorkerInputsFollowTheLease is issue 19's item 6: the worker key read
// any asset of a job's account through GET …/inputs/{asset}, whether the
// job named it or not, and after the job ended. An input is now served only
// under the job's live lease, and only when the job's params name it.
func TestWorkerInputsFollowTheLease(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		s := startServer(t, "--builtin-worker", "0")
		workerInputs(t, s)
		s.verify()
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		s := startServer(t, "--db", dsn, "--builtin-worker", "0")
		workerInputs(t, s)
		verifyPG(t, dsn)
	})
}

// input downloads an input of a job as the worker key, with lease_id when
// not empty.
func (s *server) input(jobID, leaseID, assetID string) resp {
	s.t.Helper()
	path := "/v1/worker/jobs/" + jobID + "/inputs/" + url.PathEscape(assetID)
	if leaseID != "" {
		path += "?lease_id=" + url.QueryEscape(leaseID)
	}
	return s.req(workerKey, "GET", path, nil, "")
}

func workerInputs(t *testing.T, s *server) {
	s.admin(201, "PUT", "/v1/accounts/in-a", map[string]any{})
	s.admin(201, "PUT", "/v1/accounts/in-b", map[string]any{})
	upload := func(acct string, w, h int) (string, []byte) {
		data := quadrants(w, h)
		r := s.req(adminKey, "POST", "/v1/accounts/"+acct+"/assets", data, "image/png")
		if r.status != 201 {
			t.Fatalf("upload: %d %s", r.status, r.raw)
		}
		return r.str("id"), data
	}
	named, namedData := upload("in-a", 24, 16)
	unnamed, _ := upload("in-a", 8, 8)
	otherAccount, _ := upload("in-b", 8, 8)
	// Any params value names an input, however deep; another account's
	// asset named there is still not the job's.
	j := s.createJob("in-a", "generate", 1, map[string]any{
		"prompt": "inputs", "refs": []any{map[string]any{"image": named}}, "also": otherAccount,
	})
	id := j.str("id")
	jobID, lease := s.lease("generate")
	if jobID != id {
		t.Fatalf("leased %s, want %s", jobID, id)
	}

	want := func(what string, r resp, status int, code string) {
		t.Helper()
		if r.status != status || (code != "" && r.errCode() != code) {
			t.Fatalf("%s: %d %s; want %d %s", what, r.status, r.raw, status, code)
		}
	}
	if r := s.input(id, lease, named); r.status != 200 || !bytes.Equal(r.raw, namedData) {
		t.Fatalf("named input under the lease: %d (%d bytes)", r.status, len(r.raw))
	}
	want("an asset of the account the params do not name", s.input(id, lease, unnamed), 404, "not_found")
	want("another account's asset named in the params", s.input(id, lease, otherAccount), 404, "not_found")
	want("an asset that does not exist", s.input(id, lease, "asset_nope"), 404, "not_found")
	want("no lease_id", s.input(id, "", named), 400, "invalid_request")
	want("a wrong lease", s.input(id, "lease_wrong", named), 409, "conflict")
	want("an unknown job", s.input("job_nope", lease, named), 404, "not_found")

	// The lease runs out: the job is requeued, the old lease reads nothing.
	s.advance(31 * time.Second)
	want("an expired lease", s.input(id, lease, named), 409, "conflict")
	_, lease2 := s.lease("generate")
	want("the new lease", s.input(id, lease2, named), 200, "")
	want("the old lease after a new one", s.input(id, lease, named), 409, "conflict")

	// The job ends: nothing is served any more, under either lease.
	s.deliver(id, lease2)
	s.waitStatus(id, "succeeded")
	want("the lease of an ended job", s.input(id, lease2, named), 409, "conflict")
	want("an unnamed asset of an ended job", s.input(id, lease2, unnamed), 409, "conflict")

	// examples/worker reads params.source under its lease and sizes its
	// output after it.
	ex := s.createJob("in-a", "generate", 1, map[string]any{"prompt": "sized", "source": named})
	s.exampleWorker(t, "--once").wait(t, 30*time.Second)
	done := s.waitStatus(ex.str("id"), "succeeded")
	img := s.decodeAsset(done.body["outputs"].([]any)[0].(string))
	if b := img.Bounds(); b.Dx() != 24 || b.Dy() != 16 {
		t.Fatalf("example output is %v; want the source's 24x16", b)
	}
}
