package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

// ---- upload budget and deletion ----------------------------------------

// sized is an asset of n bytes (an upload when job is "").
func sized(id, account, job string, n int64) *ledger.Asset {
	a := newAsset(id, account, job, at(0))
	a.Bytes = n
	return a
}

func usage(t *testing.T, s ledger.Store, account string) ledger.UploadUsage {
	t.Helper()
	u, err := s.UploadUsage(ctx(t), account)
	check(t, "UploadUsage "+account, err)
	return u
}

// admitAll admits every upload and records the usage it was shown.
func admitAll(seen *ledger.UploadUsage) func(ledger.UploadUsage) error {
	return func(u ledger.UploadUsage) error { *seen = u; return nil }
}

func testUploadUsageCountsUploadsOnly(t *testing.T, s ledger.Store) {
	same(t, "UploadUsage of an account without assets", usage(t, s, "A"), ledger.UploadUsage{})
	saveAsset(t, s, sized("up-1", "A", "", 100))
	saveAsset(t, s, sized("out-1", "A", "job-1", 1<<30))
	saveAsset(t, s, sized("up-2", "A", "", 1<<40))
	saveAsset(t, s, sized("up-3", "B", "", 7))
	same(t, "UploadUsage A", usage(t, s, "A"), ledger.UploadUsage{Count: 2, Bytes: 100 + 1<<40})
	same(t, "UploadUsage B", usage(t, s, "B"), ledger.UploadUsage{Count: 1, Bytes: 7})
	same(t, "UploadUsage of an unknown account", usage(t, s, "nobody"), ledger.UploadUsage{})
}

func testSaveUploadAdmits(t *testing.T, s ledger.Store) {
	saveAsset(t, s, sized("out-1", "A", "job-1", 1000))
	saveAsset(t, s, sized("up-0", "B", "", 1000))
	var seen ledger.UploadUsage
	first := sized("up-1", "A", "", 10)
	first.Seq = -3 // ignored
	check(t, "SaveUpload", s.SaveUpload(ctx(t), ledger.SaveUploadParams{Asset: first, Admit: admitAll(&seen)}))
	same(t, "usage shown to Admit for the first upload", seen, ledger.UploadUsage{})
	second := sized("up-2", "A", "", 20)
	check(t, "SaveUpload", s.SaveUpload(ctx(t), ledger.SaveUploadParams{Asset: second, Admit: admitAll(&seen)}))
	same(t, "usage shown to Admit for the second upload", seen, ledger.UploadUsage{Count: 1, Bytes: 10})
	if first.Seq <= 0 || second.Seq <= first.Seq {
		t.Errorf("SaveUpload seqs %d then %d: want > 0 and increasing", first.Seq, second.Seq)
	}
	got, err := s.GetAsset(ctx(t), "up-2")
	check(t, "GetAsset", err)
	eqAssets(t, "GetAsset of a saved upload", []ledger.Asset{*got}, []*ledger.Asset{second})

	refused := errors.New("over budget")
	err = s.SaveUpload(ctx(t), ledger.SaveUploadParams{Asset: sized("up-3", "A", "", 1), Admit: func(ledger.UploadUsage) error { return refused }})
	if !errors.Is(err, refused) {
		t.Errorf("SaveUpload refused by Admit: %v, want Admit's error", err)
	}
	_, err = s.GetAsset(ctx(t), "up-3")
	wantCode(t, "GetAsset of a refused upload", err, ledger.ENotFound)
	same(t, "usage after a refused upload", usage(t, s, "A"), ledger.UploadUsage{Count: 2, Bytes: 30})

	dup := sized("up-1", "A", "", 5)
	wantCode(t, "SaveUpload of an existing id", s.SaveUpload(ctx(t), ledger.SaveUploadParams{Asset: dup, Admit: admitAll(&seen)}), ledger.EConflict)
	same(t, "usage after a conflicting upload", usage(t, s, "A"), ledger.UploadUsage{Count: 2, Bytes: 30})
	// The store is usable after a refused and a failed upload.
	check(t, "SaveUpload after failures", s.SaveUpload(ctx(t), ledger.SaveUploadParams{Asset: sized("up-4", "A", "", 1), Admit: admitAll(&seen)}))
	same(t, "usage shown after failures", seen, ledger.UploadUsage{Count: 2, Bytes: 30})
}

// testSaveUploadConcurrent: uploads of one account saved at the same time
// are admitted one at a time, so a budget of max uploads is never
// overshot; another account's uploads are not held up by it.
func testSaveUploadConcurrent(t *testing.T, s ledger.Store) {
	const tries, max = 24, 5
	var wg sync.WaitGroup
	errs := make([]error, tries)
	for i := range tries {
		wg.Go(func() {
			a := sized(fmt.Sprintf("up-%02d", i), "A", "", 10)
			errs[i] = s.SaveUpload(ctx(t), ledger.SaveUploadParams{Asset: a, Admit: func(u ledger.UploadUsage) error {
				if u.Count >= max {
					return ledger.Errorf(ledger.EQuotaExceeded, "full")
				}
				return nil
			}})
		})
	}
	wg.Wait()
	saved := 0
	for i, err := range errs {
		switch {
		case err == nil:
			saved++
		case ledger.ErrorCode(err) != ledger.EQuotaExceeded:
			t.Errorf("upload %d: %v", i, err)
		}
	}
	if saved != max {
		t.Errorf("%d of %d concurrent uploads saved under a budget of %d", saved, tries, max)
	}
	same(t, "usage after concurrent uploads", usage(t, s, "A"), ledger.UploadUsage{Count: max, Bytes: 10 * max})
}

func testDeleteAsset(t *testing.T, s ledger.Store) {
	up1, out, up2 := sized("up-1", "A", "", 10), sized("out-1", "A", "job-1", 20), sized("up-2", "A", "", 30)
	for _, a := range []*ledger.Asset{up1, out, up2} {
		saveAsset(t, s, a)
	}
	check(t, "DeleteAsset of an upload", s.DeleteAsset(ctx(t), "up-2"))
	_, err := s.GetAsset(ctx(t), "up-2")
	wantCode(t, "GetAsset of a deleted asset", err, ledger.ENotFound)
	wantCode(t, "DeleteAsset again", s.DeleteAsset(ctx(t), "up-2"), ledger.ENotFound)
	wantCode(t, "DeleteAsset of an unknown id", s.DeleteAsset(ctx(t), "nope"), ledger.ENotFound)
	same(t, "usage after deleting an upload", usage(t, s, "A"), ledger.UploadUsage{Count: 1, Bytes: 10})

	check(t, "DeleteAsset of an output", s.DeleteAsset(ctx(t), "out-1"))
	same(t, "usage after deleting an output", usage(t, s, "A"), ledger.UploadUsage{Count: 1, Bytes: 10})
	all, err := s.ListAssets(ctx(t), ledger.ListAssetsParams{AccountID: "A", Limit: 10})
	check(t, "ListAssets", err)
	eqAssets(t, "ListAssets after deletes", all, []*ledger.Asset{up1})

	// A new asset after the newest was deleted still sorts first.
	next := sized("up-3", "A", "", 1)
	saveAsset(t, s, next)
	if next.Seq <= up1.Seq {
		t.Errorf("asset after deletes: seq %d, want > %d", next.Seq, up1.Seq)
	}
	// The id of a deleted asset is free again.
	again := sized("up-2", "A", "", 5)
	saveAsset(t, s, again)
	same(t, "usage after saving a deleted id again", usage(t, s, "A"), ledger.UploadUsage{Count: 3, Bytes: 16})
}

// ---- staged outputs ------------------------------------------------------

// staged is an output of job saved in the state a worker's upload has.
func staged(id, account, job string, sec int) *ledger.Asset {
	a := newAsset(id, account, job, at(time.Duration(sec)*time.Second))
	a.State = ""
	return a
}

func getState(t *testing.T, s ledger.Store, id string) string {
	t.Helper()
	a, err := s.GetAsset(ctx(t), id)
	check(t, "GetAsset "+id, err)
	return a.State
}

func stagedIDs(t *testing.T, s ledger.Store, after int64, limit int) []string {
	t.Helper()
	as, err := s.ListStagedOutputs(ctx(t), ledger.ListStagedOutputsParams{AfterSeq: after, Limit: limit})
	check(t, "ListStagedOutputs", err)
	return assetIDs(as)
}

// testStagedOutputs: an output saved without a state is staged, an upload
// delivered; ListAssets shows delivered assets only; DeliverOutputs
// delivers only outputs of the job it names; ListStagedOutputs pages the
// staged outputs of ended or missing jobs, never of active ones.
func testStagedOutputs(t *testing.T, s ledger.Store) {
	running := newJob("job-run", "A", ledger.JobRunning, at(0))
	failed := newJob("job-fail", "A", ledger.JobFailed, at(0))
	done := newJob("job-done", "A", ledger.JobSucceeded, at(0))
	done.Outputs = []string{"out-done-1"}
	write(t, s, func(b ledger.Batch) { saveJobs(t, b, running, failed, done) })

	up := newAsset("up-1", "A", "", at(time.Second))
	up.State = ""
	saveAsset(t, s, up)
	for i, a := range []*ledger.Asset{
		staged("out-run", "A", "job-run", 2), staged("out-fail-1", "A", "job-fail", 3),
		staged("out-done-1", "A", "job-done", 4), staged("out-done-2", "A", "job-done", 5),
		staged("out-fail-2", "A", "job-fail", 6), staged("out-orphan", "A", "job-missing", 7),
	} {
		saveAsset(t, s, a)
		if a.State != ledger.AssetStaged {
			t.Fatalf("output %d saved with state %q, want staged", i, a.State)
		}
	}
	same(t, "state of an upload saved without one", getState(t, s, "up-1"), ledger.AssetDelivered)
	same(t, "state of an output saved without one", getState(t, s, "out-done-1"), ledger.AssetStaged)

	list := func() []string {
		as, err := s.ListAssets(ctx(t), ledger.ListAssetsParams{AccountID: "A", Limit: 100})
		check(t, "ListAssets", err)
		return assetIDs(as)
	}
	same(t, "ListAssets with staged outputs only", list(), []string{"up-1"})
	same(t, "UploadUsage with staged outputs", usage(t, s, "A"), ledger.UploadUsage{Count: 1, Bytes: up.Bytes})

	// Another job's output and unknown ids are left alone; delivering
	// again changes nothing.
	for range 2 {
		check(t, "DeliverOutputs", s.DeliverOutputs(ctx(t), ledger.DeliverOutputsParams{
			JobID: "job-done", AssetIDs: []string{"out-done-1", "out-run", "up-1", "nope"}}))
	}
	check(t, "DeliverOutputs of nothing", s.DeliverOutputs(ctx(t), ledger.DeliverOutputsParams{JobID: "job-done"}))
	same(t, "ListAssets after delivery", list(), []string{"out-done-1", "up-1"})
	same(t, "state of a delivered output", getState(t, s, "out-done-1"), ledger.AssetDelivered)
	same(t, "state of another job's output named", getState(t, s, "out-run"), ledger.AssetStaged)

	want := []string{"out-fail-1", "out-done-2", "out-fail-2", "out-orphan"}
	same(t, "ListStagedOutputs", stagedIDs(t, s, 0, 100), want)
	first, err := s.ListStagedOutputs(ctx(t), ledger.ListStagedOutputsParams{Limit: 2})
	check(t, "ListStagedOutputs", err)
	same(t, "ListStagedOutputs first page", assetIDs(first), want[:2])
	same(t, "ListStagedOutputs after the first page", stagedIDs(t, s, first[1].Seq, 2), want[2:])

	// The running job ends: its output is a leftover too. A deleted
	// output is gone from the list.
	running.Status, running.LeaseID = ledger.JobCancelled, ""
	write(t, s, func(b ledger.Batch) { saveJobs(t, b, running) })
	check(t, "DeleteAsset", s.DeleteAsset(ctx(t), "out-fail-1"))
	same(t, "ListStagedOutputs after a job ended", stagedIDs(t, s, 0, 100),
		[]string{"out-run", "out-done-2", "out-fail-2", "out-orphan"})
}

// LeftoverOutputsSQL writes, into a database at the schema before asset
// states (SQLite migration 9, PostgreSQL migration 7), what an earlier
// version left: a succeeded job that listed one of its two outputs, a
// failed job with an output, a running job with an output, an output of
// a job that is gone, and an upload. CheckLeftoverOutputs checks the store
// after the migration.
const LeftoverOutputsSQL = `
INSERT INTO jobs (id, account_id, action, category, quantity, status, outputs, created_at, updated_at) VALUES
	('j-ok', 'A', 'generate', 'image', 2, 'succeeded', '["o1"]', 1, 1),
	('j-fail', 'A', 'generate', 'image', 1, 'failed', '[]', 1, 1),
	('j-run', 'A', 'generate', 'image', 1, 'running', '[]', 1, 1);
INSERT INTO assets (id, account_id, job_id, kind, content_type, bytes, created_at) VALUES
	('u1', 'A', '', 'upload', 'image/png', 100, 1),
	('o1', 'A', 'j-ok', 'output', 'image/png', 10, 2),
	('o2', 'A', 'j-ok', 'output', 'image/png', 10, 3),
	('o3', 'A', 'j-fail', 'output', 'image/png', 10, 4),
	('o4', 'A', 'j-run', 'output', 'image/png', 10, 5),
	('o5', 'A', 'j-gone', 'output', 'image/png', 10, 6);`

// CheckLeftoverOutputs: after the migration, the upload and the output
// its succeeded job listed stay visible; every other output was never the
// user's: it is staged, and those of ended or missing jobs are the
// sweep's to delete.
func CheckLeftoverOutputs(t *testing.T, s ledger.Store) {
	t.Helper()
	as, err := s.ListAssets(ctx(t), ledger.ListAssetsParams{AccountID: "A", Limit: 100})
	check(t, "ListAssets", err)
	same(t, "ListAssets after the migration", assetIDs(as), []string{"o1", "u1"})
	same(t, "ListStagedOutputs after the migration", stagedIDs(t, s, 0, 100), []string{"o2", "o3", "o5"})
	same(t, "state of a running job's output", getState(t, s, "o4"), ledger.AssetStaged)
	same(t, "UploadUsage after the migration", usage(t, s, "A"), ledger.UploadUsage{Count: 1, Bytes: 100})
}
