package httpapi_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditd/creditd/ledger"
)

// uploadLimits is the default config with an upload budget of countMax
// uploads and bytesMax bytes, and perMinute uploads a minute.
func uploadLimits(countMax, bytesMax int64, perMinute int) envOpt {
	cfg := ledger.DefaultConfig()
	cfg.Limits.AssetsPerAccountMax = countMax
	cfg.Limits.AssetBytesPerAccountMax = bytesMax
	cfg.Limits.AssetUploadsPerMinutePerAccount = perMinute
	return withConfig(cfg)
}

var pngType = hdr{"Content-Type": "image/png"}

// upload posts an image to an account's assets with key.
func (e *env) upload(key, account string, img []byte, status int) resp {
	e.t.Helper()
	return e.as(key, status, "POST", "/v1/accounts/"+account+"/assets", img, pngType)
}

// assetCount is the number of an account's assets the API lists.
func (e *env) assetCount(account string) int {
	e.t.Helper()
	r := e.must(200, "GET", "/v1/accounts/"+account+"/assets?limit=500", nil)
	return len(r.body["data"].([]any))
}

// blobCount counts the stored blobs: files in the blob directory on
// SQLite, rows of the blobs table on PostgreSQL.
func (e *env) blobCount() int {
	e.t.Helper()
	if e.dsn != "" {
		conn, err := pgx.Connect(context.Background(), e.dsn)
		if err != nil {
			e.t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM blobs").Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		return n
	}
	des, err := os.ReadDir(filepath.Join(e.dir, "assets"))
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".") {
			n++
		}
	}
	return n
}

func wantQuotaExceeded(t *testing.T, r resp, detail string, want int64) {
	t.Helper()
	if r.status != http.StatusForbidden || r.errCode() != ledger.EQuotaExceeded || r.num("error."+detail) != want {
		t.Fatalf("upload over budget: %d %s, want 403 quota_exceeded with %s %d", r.status, r.raw, detail, want)
	}
}

// cropJob starts a crop of the source asset on an account (admin key).
func (e *env) cropJob(account, source string) string {
	e.t.Helper()
	return e.must(201, "POST", "/v1/jobs", map[string]any{"account_id": account, "action": "crop",
		"params": map[string]any{"source": source, "x": 0, "y": 0, "width": 4, "height": 4}}).str("id")
}

// leaseJob leases the next queued crop job (admin key on the worker
// routes) and returns its id and lease.
func (e *env) leaseJob() (job, lease string) {
	e.t.Helper()
	r := e.must(200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"crop"}})
	return r.str("job.id"), r.str("lease_id")
}

// TestUploadBudget reproduces item 4 of issue 19 (uploads were free and
// unbounded): an account keeps at most assets_per_account_max uploads;
// one more is 403 quota_exceeded and stores nothing, with any key; job
// outputs do not count; deleting an upload frees its place.
func TestUploadBudget(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, append(opts, uploadLimits(3, 1<<30, 1000))...)
		e.createAccount("alice", nil)
		e.createAccount("bob", nil)
		alice, bob := e.userToken("alice"), e.userToken("bob")
		var ids []string
		for range 3 {
			ids = append(ids, e.upload(alice, "alice", pngImage(8, 8), 201).str("id"))
		}
		blobs := e.blobCount()

		t.Run("OneMoreIsQuotaExceeded", func(t *testing.T) {
			wantQuotaExceeded(t, e.upload(alice, "alice", pngImage(8, 8), 0), "uploads_max", 3)
			wantQuotaExceeded(t, e.upload(adminKey, "alice", pngImage(8, 8), 0), "uploads", 3)
			if n := e.assetCount("alice"); n != 3 {
				t.Errorf("%d assets listed after refused uploads, want 3", n)
			}
			if n := e.blobCount(); n != blobs {
				t.Errorf("%d blobs after refused uploads, want %d: a refused upload left its bytes", n, blobs)
			}
		})
		t.Run("OtherAccountsKeepTheirBudget", func(t *testing.T) {
			e.upload(bob, "bob", pngImage(8, 8), 201)
			blobs++
		})
		var output string
		t.Run("OutputsDoNotCount", func(t *testing.T) {
			job := e.cropJob("alice", ids[0])
			_, lease := e.leaseJob()
			output = e.must(201, "POST", "/v1/worker/jobs/"+job+"/outputs?lease_id="+lease, pngImage(4, 4), pngType).str("id")
			e.must(200, "POST", "/v1/worker/jobs/"+job+"/complete", map[string]any{"lease_id": lease, "outputs": []string{output}})
			blobs++
			wantQuotaExceeded(t, e.upload(alice, "alice", pngImage(8, 8), 0), "uploads", 3)
		})
		t.Run("DeleteFreesTheBudget", func(t *testing.T) {
			r := e.as(alice, 200, "DELETE", "/v1/assets/"+ids[1], nil)
			if r.str("id") != ids[1] || r.body["deleted"] != true || r.str("object") != "asset" {
				t.Fatalf("delete answered %s", r.raw)
			}
			e.as(alice, 404, "GET", "/v1/assets/"+ids[1], nil)
			if n := e.blobCount(); n != blobs-1 {
				t.Errorf("%d blobs after a delete, want %d", n, blobs-1)
			}
			e.upload(alice, "alice", pngImage(8, 8), 201)
			wantQuotaExceeded(t, e.upload(alice, "alice", pngImage(8, 8), 0), "uploads", 3)
		})
		t.Run("OwnerDeletesTheOutputOfAnEndedJob", func(t *testing.T) {
			e.as(alice, 200, "DELETE", "/v1/assets/"+output, nil)
			e.as(alice, 404, "GET", "/v1/assets/"+output, nil)
		})
		e.verify()
	})
}

// TestUploadBytesBudget: an account's uploads take at most
// asset_bytes_per_account_max bytes; an image that would go over is 403
// quota_exceeded with nothing stored, while a smaller one that fits is
// taken.
func TestUploadBytesBudget(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		big, small := pngImage(300, 300), pngImage(4, 4)
		budget := int64(2*len(big) + len(small))
		e := newEnv(t, append(opts, uploadLimits(1000, budget, 1000))...)
		e.createAccount("alice", nil)
		alice := e.userToken("alice")
		e.upload(alice, "alice", big, 201)
		e.upload(alice, "alice", big, 201)
		blobs := e.blobCount()
		r := e.upload(alice, "alice", big, 0)
		wantQuotaExceeded(t, r, "upload_bytes", int64(2*len(big)))
		if r.num("error.upload_bytes_max") != budget {
			t.Errorf("upload_bytes_max in %s, want %d", r.raw, budget)
		}
		if n := e.blobCount(); n != blobs {
			t.Errorf("%d blobs after a refused upload, want %d", n, blobs)
		}
		e.upload(alice, "alice", small, 201)
		wantQuotaExceeded(t, e.upload(alice, "alice", small, 0), "upload_bytes", budget)
	})
}

// TestConcurrentUploadsStayWithinBudget: uploads of one account sent at
// the same time never overshoot its budget: exactly assets_per_account_max
// are stored, the others are quota_exceeded and leave no bytes behind.
func TestConcurrentUploadsStayWithinBudget(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		const max, tries = 4, 16
		e := newEnv(t, append(opts, uploadLimits(max, 1<<30, 1000))...)
		e.createAccount("alice", nil)
		alice := e.userToken("alice")
		statuses := make([]int, tries)
		var wg sync.WaitGroup
		for i := range tries {
			wg.Go(func() { statuses[i] = e.upload(alice, "alice", pngImage(8+i, 8), 0).status })
		}
		wg.Wait()
		created := 0
		for _, st := range statuses {
			switch st {
			case http.StatusCreated:
				created++
			case http.StatusForbidden:
			default:
				t.Errorf("concurrent upload answered %d", st)
			}
		}
		if created != max || e.assetCount("alice") != max || e.blobCount() != max {
			t.Errorf("%d uploads created, %d listed, %d blobs; want %d each", created, e.assetCount("alice"), e.blobCount(), max)
		}
	})
}

// TestUploadRate: an account gets asset_uploads_per_minute_per_account
// uploads at once, then one every minute/n; beyond, 429
// too_many_requests with Retry-After, and nothing stored. Time is the
// test clock's.
func TestUploadRate(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, append(opts, uploadLimits(1000, 1<<30, 3))...)
		e.createAccount("alice", nil)
		e.createAccount("bob", nil)
		alice := e.userToken("alice")
		for range 3 {
			e.upload(alice, "alice", pngImage(8, 8), 201)
		}
		blobs := e.blobCount()
		r := e.upload(alice, "alice", pngImage(8, 8), 429)
		if r.errCode() != ledger.ETooMany || r.header.Get("Retry-After") != "20" {
			t.Fatalf("4th upload in a minute: %s, Retry-After %q; want too_many_requests, 20", r.raw, r.header.Get("Retry-After"))
		}
		if n := e.blobCount(); n != blobs || e.assetCount("alice") != 3 {
			t.Errorf("a refused upload was stored: %d blobs, %d assets", n, e.assetCount("alice"))
		}
		e.upload(adminKey, "bob", pngImage(8, 8), 201) // another account's bucket
		e.advance(19 * time.Second)
		if r := e.upload(alice, "alice", pngImage(8, 8), 429); r.header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After %q a second before the next token, want 1", r.header.Get("Retry-After"))
		}
		e.advance(time.Second)
		e.upload(alice, "alice", pngImage(8, 8), 201)
		e.upload(alice, "alice", pngImage(8, 8), 429)
		e.advance(time.Minute)
		for range 3 {
			e.upload(alice, "alice", pngImage(8, 8), 201)
		}
		e.upload(alice, "alice", pngImage(8, 8), 429)
	})
}

// TestDeleteAsset: DELETE /v1/assets/{id} by the owner or the admin; an
// asset that a queued or running job uses (its params name it) is 409 and
// stays; a running job's output is staged, so 404; another account's asset and ids
// that cannot exist are 404.
func TestDeleteAsset(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		e.createAccount("alice", nil)
		e.createAccount("bob", nil)
		alice, bob := e.userToken("alice"), e.userToken("bob")
		up := func() string { return e.upload(alice, "alice", pngImage(8, 8), 201).str("id") }
		inUse := func(asset, job string) {
			t.Helper()
			r := e.as(alice, 409, "DELETE", "/v1/assets/"+asset, nil)
			if r.errCode() != ledger.EConflict || r.str("error.job_id") != job {
				t.Fatalf("delete of an asset in use: %s, want conflict naming job %s", r.raw, job)
			}
			e.as(alice, 200, "GET", "/v1/assets/"+asset, nil)
		}

		t.Run("InUseByAQueuedJob", func(t *testing.T) {
			src := up()
			job := e.cropJob("alice", src)
			inUse(src, job)
			e.as(alice, 200, "POST", "/v1/jobs/"+job+"/cancel", nil)
			e.as(alice, 200, "DELETE", "/v1/assets/"+src, nil)
		})
		t.Run("InUseByARunningJobAndItsOutputs", func(t *testing.T) {
			src := up()
			job := e.cropJob("alice", src)
			_, lease := e.leaseJob()
			inUse(src, job)
			out := e.must(201, "POST", "/v1/worker/jobs/"+job+"/outputs?lease_id="+lease, pngImage(4, 4), pngType).str("id")
			// A staged output is not the user's yet (issue 20): not found.
			e.as(alice, 404, "DELETE", "/v1/assets/"+out, nil)
			e.must(200, "POST", "/v1/worker/jobs/"+job+"/complete", map[string]any{"lease_id": lease, "outputs": []string{out}})
			e.as(alice, 200, "DELETE", "/v1/assets/"+src, nil)
			e.as(alice, 200, "DELETE", "/v1/assets/"+out, nil)
			// The job still lists its output; the output is gone.
			if j := e.as(alice, 200, "GET", "/v1/jobs/"+job, nil); j.str("outputs.0") != out || j.str("status") != "succeeded" {
				t.Errorf("job after its output was deleted: %s", j.raw)
			}
			e.as(alice, 404, "GET", "/v1/assets/"+out, nil)
		})
		t.Run("ChangedParamsFreeTheOldSource", func(t *testing.T) {
			a, b := up(), up()
			job := e.cropJob("alice", a)
			e.as(alice, 200, "PATCH", "/v1/jobs/"+job, map[string]any{"params": map[string]any{"source": b, "x": 0, "y": 0, "width": 2, "height": 2}})
			inUse(b, job)
			e.as(alice, 200, "DELETE", "/v1/assets/"+a, nil)
			e.as(alice, 200, "POST", "/v1/jobs/"+job+"/cancel", nil)
		})
		t.Run("AnyParamNamingTheAssetKeepsIt", func(t *testing.T) {
			src := up()
			job := e.must(201, "POST", "/v1/jobs", map[string]any{"account_id": "alice", "action": "edit",
				"params": map[string]any{"prompt": "a hat", "images": []any{map[string]any{"asset": src}}}}).str("id")
			inUse(src, job)
			e.as(alice, 200, "POST", "/v1/jobs/"+job+"/cancel", nil)
			e.as(alice, 200, "DELETE", "/v1/assets/"+src, nil)
		})
		t.Run("OtherAccountsAssetIsNotFound", func(t *testing.T) {
			src := up()
			if r := e.as(bob, 404, "DELETE", "/v1/assets/"+src, nil); r.errCode() != ledger.ENotFound {
				t.Fatalf("bob deleting alice's asset: %s", r.raw)
			}
			e.as(alice, 200, "GET", "/v1/assets/"+src, nil)
			e.as(adminKey, 200, "DELETE", "/v1/assets/"+src, nil)
			e.as(alice, 404, "DELETE", "/v1/assets/"+src, nil)
		})
		t.Run("BadIDsAreRefused", func(t *testing.T) {
			// Ids the text rule refuses are 400 (issue 19: never a 5xx).
			for _, id := range []string{"%00", "asset_%00x", "%FF", "asset_%C3%28", strings.Repeat("a", 129)} {
				r := e.as(alice, 0, "DELETE", "/v1/assets/"+id, nil)
				if r.status != 400 || r.errCode() != ledger.EInvalid {
					t.Errorf("DELETE /v1/assets/%s: %d %s, want 400 invalid_request", id, r.status, r.raw)
				}
			}
			for _, id := range []string{"asset_nope", "a%20b", "..%2F..%2Fcreditd.db"} {
				r := e.as(alice, 0, "DELETE", "/v1/assets/"+id, nil)
				if r.status != 404 || r.errCode() != ledger.ENotFound {
					t.Errorf("DELETE /v1/assets/%s: %d %s, want 404 not_found", id, r.status, r.raw)
				}
			}
		})
		e.verify()
	})
}

// TestDeleteRacesJobCreation: a job that names an asset and the asset's
// delete, sent at the same time, never both succeed: either the delete
// sees the job (409) or the job sees no asset (400).
func TestDeleteRacesJobCreation(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, append(opts, uploadLimits(1000, 1<<30, 1000))...)
		e.createAccount("alice", nil)
		e.must(201, "POST", "/v1/accounts/alice/grants", map[string]any{"amount": 1000, "source": "admin"})
		for i := range 30 {
			src := e.upload(adminKey, "alice", pngImage(8, 8), 201).str("id")
			var job, del resp
			var wg sync.WaitGroup
			wg.Go(func() {
				job = e.do("POST", "/v1/jobs", map[string]any{"account_id": "alice", "action": "crop",
					"params": map[string]any{"source": src, "x": 0, "y": 0, "width": 4, "height": 4}})
			})
			wg.Go(func() { del = e.do("DELETE", "/v1/assets/"+src, nil) })
			wg.Wait()
			switch {
			case job.status == 201 && del.status == 409, job.status == 400 && del.status == 200:
			default:
				t.Fatalf("round %d: job %d %s, delete %d %s", i, job.status, job.raw, del.status, del.raw)
			}
			if job.status == 201 {
				e.must(200, "POST", "/v1/jobs/"+job.str("id")+"/cancel", nil)
			}
		}
	})
}
