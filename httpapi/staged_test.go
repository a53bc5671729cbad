package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/web"
)

// Item 1 of issue 20: an output is the user's only when delivered. A
// worker's uploads for a job are staged until complete lists them; staged
// outputs are never listed, shown in the Gallery or served, and once the
// job ended without listing them the sweep (here: POST /v1/test-clock)
// deletes their bytes.

// stagedEnv is an env with the web app mounted, and alice with a web
// session and a user token.
type stagedEnv struct {
	*env
	token, cookie string
}

func newStagedEnv(t *testing.T, opts ...envOpt) *stagedEnv {
	e := newEnv(t, append(opts, withAPI(func(s *httpapi.Server) { s.Web = web.New(s.App) }))...)
	e.createAccount("alice", map[string]any{"plan": "paid"})
	e.must(201, "POST", "/v1/accounts/alice/grants", map[string]any{"amount": 1000, "source": "purchase", "reference": "pack-1"})
	c, err := e.app.NewClaims(context.Background(), "alice", app.SessionTTL)
	if err != nil {
		t.Fatal(err)
	}
	c.Nonce = "nonce-alice" // a web session has one (its CSRF token is bound to it)
	return &stagedEnv{env: e, token: e.userToken("alice"), cookie: e.app.Seal(app.PurposeSession, c)}
}

// generate creates a generate job of quantity n for alice, leases it
// (admin key on the worker routes) and uploads n outputs.
func (e *stagedEnv) generate(n int) (job, lease string, outputs []string) {
	e.t.Helper()
	job = e.as(e.token, 201, "POST", "/v1/jobs", map[string]any{"action": "generate", "quantity": n,
		"params": map[string]any{"prompt": "a cat"}}).str("id")
	r := e.must(200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"generate"}})
	if r.str("job.id") != job {
		e.t.Fatalf("leased %s, want %s", r.raw, job)
	}
	lease = r.str("lease_id")
	for range n {
		outputs = append(outputs, e.uploadOutput(job, lease))
	}
	return job, lease, outputs
}

func (e *stagedEnv) uploadOutput(job, lease string) string {
	e.t.Helper()
	return e.must(201, "POST", "/v1/worker/jobs/"+job+"/outputs?lease_id="+lease, pngImage(4, 4), pngType).str("id")
}

// listed is the ids of alice's assets as the API lists them.
func (e *stagedEnv) listed() []string {
	e.t.Helper()
	r := e.as(e.token, 200, "GET", "/v1/accounts/alice/assets?limit=100", nil)
	var ids []string
	for _, a := range r.body["data"].([]any) {
		ids = append(ids, a.(map[string]any)["id"].(string))
	}
	return ids
}

var galleryImage = regexp.MustCompile(`<img src="/app/assets/([A-Za-z0-9_]+)"`)

// web GETs a page of the web app with alice's session.
func (e *stagedEnv) web(path string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: e.cookie})
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// gallery is the ids of the results the Gallery shows alice.
func (e *stagedEnv) gallery() []string {
	e.t.Helper()
	status, body := e.web("/app/gallery")
	if status != 200 {
		e.t.Fatalf("gallery: %d", status)
	}
	var ids []string
	for _, m := range galleryImage.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// wantHidden: the user cannot read, download or delete the output, in
// the API or the web app; the admin cannot read it either.
func (e *stagedEnv) wantHidden(t *testing.T, id string) {
	t.Helper()
	e.as(e.token, 404, "GET", "/v1/assets/"+id, nil)
	e.as(e.token, 404, "GET", "/v1/assets/"+id+"?download=1", nil)
	e.as(adminKey, 404, "GET", "/v1/assets/"+id, nil)
	if status, _ := e.web("/app/assets/" + id); status != 404 {
		t.Errorf("web app served hidden output %s: %d", id, status)
	}
	if slices.Contains(e.listed(), id) || slices.Contains(e.gallery(), id) {
		t.Errorf("hidden output %s is listed (%v) or in the gallery (%v)", id, e.listed(), e.gallery())
	}
}

// sweep runs the sweeps (the test clock's endpoint does, synchronously).
func (e *stagedEnv) sweep() {
	e.t.Helper()
	e.must(200, "POST", "/v1/test-clock", map[string]any{"advance_seconds": 0})
}

// wantGone: the output's metadata and bytes are deleted.
func (e *stagedEnv) wantGone(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := e.store.GetAsset(context.Background(), id); ledger.ErrorCode(err) != ledger.ENotFound {
			t.Errorf("asset %s after the sweep: %v, want not found", id, err)
		}
		if f, err := e.blobs.Open(id); err == nil {
			f.Close()
			t.Errorf("the bytes of %s are still stored after the sweep", id)
		}
	}
}

// TestFailedJobLeavesNothing: the reproduction. A worker leases a
// 2-image job, uploads 2 outputs, then fails: nothing was charged, and
// the outputs are in no list, not in the Gallery, 404 to download, and
// their bytes are gone after the sweep.
func TestFailedJobLeavesNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newStagedEnv(t, opts...)
		upload := e.upload(e.token, "alice", pngImage(8, 8), 201).str("id")
		before := e.available("alice")
		blobs := e.blobCount()
		job, lease, outs := e.generate(2)
		if n := e.blobCount(); n != blobs+2 {
			t.Fatalf("%d blobs after two outputs, want %d", n, blobs+2)
		}
		// Staged: hidden while the job runs, too.
		for _, id := range outs {
			e.wantHidden(t, id)
		}
		j := e.must(200, "POST", "/v1/worker/jobs/"+job+"/fail", map[string]any{"lease_id": lease, "error": "the model crashed"})
		if j.str("status") != "failed" || j.num("charged") != 0 || len(j.get("outputs").([]any)) != 0 {
			t.Fatalf("failed job: %s", j.raw)
		}
		for _, id := range outs {
			e.wantHidden(t, id)
		}
		if got := e.listed(); !slices.Equal(got, []string{upload}) {
			t.Errorf("assets listed after the failure: %v, want only the upload %s", got, upload)
		}
		if got := e.gallery(); len(got) != 0 {
			t.Errorf("the gallery shows %v after the failure, want nothing", got)
		}
		if got := e.available("alice"); got != before {
			t.Errorf("available %d after the failure, want %d (nothing charged)", got, before)
		}
		e.sweep()
		e.wantGone(t, outs...)
		if n := e.blobCount(); n != blobs {
			t.Errorf("%d blobs after the sweep, want %d", n, blobs)
		}
		e.as(e.token, 200, "GET", "/v1/assets/"+upload, nil)
		e.verify()
	})
}

// TestPromptChangeDeliversTheNewResultOnly: the prompt changes while the
// worker renders; the worker learns it at its heartbeat, restarts and
// completes with the new image. The old attempt's image is never the
// user's: the job charged 1 and the Gallery shows 1.
func TestPromptChangeDeliversTheNewResultOnly(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newStagedEnv(t, opts...)
		before := e.available("alice")
		job, lease, old := e.generate(1)
		e.as(e.token, 200, "PATCH", "/v1/jobs/"+job, map[string]any{"params": map[string]any{"prompt": "a dog"}})
		if hb := e.must(200, "POST", "/v1/worker/jobs/"+job+"/heartbeat", map[string]any{"lease_id": lease}); hb.body["changed"] != true {
			t.Fatalf("heartbeat after the change: %s", hb.raw)
		}
		e.wantHidden(t, old[0])
		fresh := e.uploadOutput(job, lease)
		j := e.must(200, "POST", "/v1/worker/jobs/"+job+"/complete", map[string]any{"lease_id": lease, "outputs": []string{fresh}})
		price := int64(5)
		if j.str("status") != "succeeded" || j.num("charged") != price {
			t.Fatalf("completed job: %s, want succeeded and charged %d", j.raw, price)
		}
		e.wantHidden(t, old[0])
		if got := e.gallery(); !slices.Equal(got, []string{fresh}) {
			t.Errorf("the gallery shows %v, want only the new result %s", got, fresh)
		}
		if got := e.listed(); !slices.Equal(got, []string{fresh}) {
			t.Errorf("assets listed: %v, want only the new result %s", got, fresh)
		}
		if got := e.available("alice"); got != before-price {
			t.Errorf("available %d, want %d (charged once)", got, before-price)
		}
		e.sweep()
		e.wantGone(t, old[0])
		e.as(e.token, 200, "GET", "/v1/assets/"+fresh+"?download=1", nil)
		if status, _ := e.web("/app/assets/" + fresh); status != 200 {
			t.Errorf("web app: the delivered result is %d", status)
		}
		e.verify()
	})
}

// TestCompleteListingOneOfTwo: a worker uploads 2 outputs and completes
// with 1: only that one is visible and charged; the other is hidden and
// swept.
func TestCompleteListingOneOfTwo(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newStagedEnv(t, opts...)
		before := e.available("alice")
		job, lease, outs := e.generate(2)
		j := e.must(200, "POST", "/v1/worker/jobs/"+job+"/complete", map[string]any{"lease_id": lease, "outputs": outs[:1]})
		if j.num("charged") != 5 || j.num("cost") != 10 {
			t.Fatalf("completed job: %s, want charged 5 of 10", j.raw)
		}
		if got := e.listed(); !slices.Equal(got, outs[:1]) {
			t.Errorf("assets listed: %v, want %v", got, outs[:1])
		}
		if got := e.gallery(); !slices.Equal(got, outs[:1]) {
			t.Errorf("gallery: %v, want %v", got, outs[:1])
		}
		e.wantHidden(t, outs[1])
		if got := e.available("alice"); got != before-5 {
			t.Errorf("available %d, want %d", got, before-5)
		}
		e.sweep()
		e.wantGone(t, outs[1])
		e.as(e.token, 200, "GET", "/v1/assets/"+outs[0], nil)
		// The delivered output is the user's: a source for an edit, and
		// deletable.
		e.as(e.token, 201, "POST", "/v1/jobs", map[string]any{"action": "crop",
			"params": map[string]any{"source": outs[0], "x": 0, "y": 0, "width": 2, "height": 2}})
		e.verify()
	})
}

// TestStagedOutputIsNoSource: a staged output cannot be the source of a
// job, nor deleted by the user, while its job runs.
func TestStagedOutputIsNoSource(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newStagedEnv(t, opts...)
		_, _, outs := e.generate(1)
		r := e.as(e.token, 400, "POST", "/v1/jobs", map[string]any{"action": "crop",
			"params": map[string]any{"source": outs[0], "x": 0, "y": 0, "width": 2, "height": 2}})
		if r.errCode() != ledger.EInvalid {
			t.Errorf("a job on a staged output: %s", r.raw)
		}
		e.as(e.token, 404, "DELETE", "/v1/assets/"+outs[0], nil)
		e.sweep() // the job runs: its output stays staged
		if a, err := e.store.GetAsset(context.Background(), outs[0]); err != nil || a.State != ledger.AssetStaged {
			t.Errorf("a running job's output after the sweep: %+v, %v; want staged", a, err)
		}
	})
}

// TestCancelAndInterruptionLeaveNothing: outputs of a job cancelled while
// running, or interrupted when its lease ran out with no attempts left,
// are swept.
func TestCancelAndInterruptionLeaveNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		cfg := ledger.DefaultConfig()
		cfg.Limits.JobAttemptsMax = 1
		e := newStagedEnv(t, append(opts, withConfig(cfg))...)
		blobs := e.blobCount()
		cancelled, _, a := e.generate(1)
		e.as(e.token, 200, "POST", "/v1/jobs/"+cancelled+"/cancel", nil)
		interrupted, _, b := e.generate(1)
		e.advance(2 * time.Duration(cfg.Limits.JobLeaseSeconds) * time.Second)
		if j := e.as(e.token, 200, "GET", "/v1/jobs/"+interrupted, nil); j.str("status") != "interrupted" {
			t.Fatalf("job after its lease ran out: %s", j.raw)
		}
		e.sweep()
		e.wantGone(t, a[0], b[0])
		if n := e.blobCount(); n != blobs {
			t.Errorf("%d blobs after the sweep, want %d", n, blobs)
		}
		if got := e.listed(); len(got) != 0 {
			t.Errorf("listed %v, want nothing", got)
		}
	})
}
