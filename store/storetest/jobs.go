package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

// ---- job and asset fixtures --------------------------------------------

// oddParams is valid JSON with whitespace, key order, escapes and non-ASCII
// text that any re-encoding would change.
const oddParams = `{ "prompt" : "a cat \"in\" a hat ✓ \u00e9",  "size":"1024x1024",
	"n": 2.50, "z": null, "a": [1, {"b" : true}] }`

func newJob(id, account string, status ledger.JobStatus, created time.Time) *ledger.Job {
	j := &ledger.Job{
		ID: id, AccountID: account, Action: "image.generate", Category: ledger.CategoryImage, Quantity: 2,
		Params: json.RawMessage(`{"prompt":"a cat","size":"1024x1024"}`), ParamsVersion: 1,
		Status: status, HoldID: "hold-" + id, CostCredits: 10,
		CreatedAt: created, UpdatedAt: created.Add(time.Second),
	}
	switch status {
	case ledger.JobQueued:
	case ledger.JobRunning:
		j.Attempts, j.LeaseID, j.LeaseExpiresAt = 1, "lease-"+id, created.Add(time.Minute)
	case ledger.JobSucceeded:
		j.Attempts, j.ChargedCredits, j.Outputs = 1, 10, []string{"asset-" + id + "-1", "asset-" + id + "-2"}
		j.FinishedAt = created.Add(2 * time.Second)
	default:
		j.Attempts, j.Error, j.FinishedAt = 2, "provider said no", created.Add(2*time.Second)
	}
	return j
}

func newAsset(id, account, job string, created time.Time) *ledger.Asset {
	a := &ledger.Asset{
		ID: id, AccountID: account, JobID: job, Kind: "output", ContentType: "image/png",
		Width: 1024, Height: 768, Bytes: 123456, SHA256: strings.Repeat("ab", 32), CreatedAt: created,
	}
	if job == "" {
		a.Kind = "upload"
	}
	a.State = ledger.AssetDelivered
	return a
}

func saveJobs(t *testing.T, b ledger.Batch, j ...*ledger.Job) {
	t.Helper()
	check(t, "SaveJobs", b.SaveJobs(ctx(t), j))
}

func saveAsset(t *testing.T, s ledger.Store, a *ledger.Asset) {
	t.Helper()
	check(t, "SaveAsset "+a.ID, s.SaveAsset(ctx(t), a))
}

// normJob makes nil/empty Outputs nil and times UTC.
func normJob(j ledger.Job) ledger.Job {
	j.LeaseExpiresAt, j.CreatedAt = normTime(j.LeaseExpiresAt), normTime(j.CreatedAt)
	j.UpdatedAt, j.FinishedAt = normTime(j.UpdatedAt), normTime(j.FinishedAt)
	if len(j.Outputs) == 0 {
		j.Outputs = nil
	}
	return j
}

// wantJob is normJob for a saved job: nil or empty Params come back as {}.
func wantJob(j ledger.Job) ledger.Job {
	if len(j.Params) == 0 {
		j.Params = json.RawMessage("{}")
	}
	return normJob(j)
}

func eqJob(t *testing.T, what string, got, want *ledger.Job) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil job", what)
		return
	}
	same(t, what, normJob(*got), wantJob(*want))
}

func eqJobs(t *testing.T, what string, got []ledger.Job, want []*ledger.Job) {
	t.Helper()
	g, w := make([]ledger.Job, len(got)), make([]ledger.Job, len(want))
	for i := range got {
		g[i] = normJob(got[i])
	}
	for i := range want {
		w[i] = wantJob(*want[i])
	}
	same(t, what, g, w)
}

func eqJobMap(t *testing.T, what string, got map[string]*ledger.Job, want ...*ledger.Job) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: nil jobs map", what)
	}
	var g []ledger.Job
	for id, j := range got {
		if j == nil || j.ID != id {
			t.Errorf("%s: jobs map key %s has job %+v", what, id, j)
			continue
		}
		g = append(g, *j)
	}
	slices.SortFunc(g, func(a, b ledger.Job) int { return strings.Compare(a.ID, b.ID) })
	w := slices.Clone(want)
	slices.SortFunc(w, func(a, b *ledger.Job) int { return strings.Compare(a.ID, b.ID) })
	eqJobs(t, what, g, w)
}

func normAsset(a ledger.Asset) ledger.Asset {
	a.CreatedAt = normTime(a.CreatedAt)
	return a
}

func eqAssets(t *testing.T, what string, got []ledger.Asset, want []*ledger.Asset) {
	t.Helper()
	g, w := make([]ledger.Asset, len(got)), make([]ledger.Asset, len(want))
	for i := range got {
		g[i] = normAsset(got[i])
	}
	for i := range want {
		w[i] = normAsset(*want[i])
	}
	same(t, what, g, w)
}

func jobIDs(js []ledger.Job) []string { return ids(js, func(j ledger.Job) string { return j.ID }) }

func assetIDs(as []ledger.Asset) []string {
	return ids(as, func(a ledger.Asset) string { return a.ID })
}

func getJob(t *testing.T, s ledger.Store, id string) *ledger.Job {
	t.Helper()
	j, err := s.GetJob(ctx(t), id)
	check(t, "GetJob "+id, err)
	return j
}

// ---- job tests ----------------------------------------------------------

func testJobRoundTrip(t *testing.T, s ledger.Store) {
	// Every field set, times in a non-UTC zone.
	j := &ledger.Job{
		ID: "job-1", AccountID: "A", Action: "video.generate", Category: ledger.CategoryVideo, Quantity: 3,
		Params: json.RawMessage(oddParams), ParamsVersion: 7, Status: ledger.JobSucceeded, HoldID: "hold-1",
		CostCredits: 1 << 40, ChargedCredits: 1<<40 - 5, Attempts: 4, LeaseID: "lease-xyz", LeaseParamsVersion: 6,
		LeaseExpiresAt: at(5 * time.Minute).In(zone), Outputs: []string{"asset-1", "asset \"2\" ✓", "asset-3"},
		Error: "partial: 1 of 3 \"failed\"", CreatedAt: at(0).In(zone), UpdatedAt: at(time.Hour),
		FinishedAt: at(2 * time.Hour).In(zone), Seq: -42, // ignored
	}
	// Every field empty that may be.
	bare := &ledger.Job{
		ID: "job-2", AccountID: "A", Action: "image.generate", Category: ledger.CategoryImage, Quantity: 1,
		Status: ledger.JobQueued, CreatedAt: at(0), UpdatedAt: at(0),
	}
	emptyParams := newJob("job-3", "A", ledger.JobQueued, at(0))
	emptyParams.Params, emptyParams.Outputs = json.RawMessage{}, []string{}
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"))
		saveJobs(t, b, j, bare, emptyParams)
	})
	if j.Seq <= 0 || bare.Seq <= 0 || emptyParams.Seq <= 0 {
		t.Fatalf("SaveJobs wrote back seqs %d, %d, %d; want > 0", j.Seq, bare.Seq, emptyParams.Seq)
	}

	got := getJob(t, s, "job-1")
	eqJob(t, "GetJob", got, j)
	if string(got.Params) != oddParams {
		t.Errorf("params not byte-identical:\n got  %q\n want %q", got.Params, oddParams)
	}
	for _, tm := range []time.Time{got.LeaseExpiresAt, got.CreatedAt, got.UpdatedAt, got.FinishedAt} {
		if tm.Location() != time.UTC {
			t.Errorf("time %v is in %v, want UTC", tm, tm.Location())
		}
	}
	got = getJob(t, s, "job-2")
	eqJob(t, "GetJob of a bare job", got, bare)
	if string(got.Params) != "{}" {
		t.Errorf("nil params came back as %q, want {}", got.Params)
	}
	if !got.LeaseExpiresAt.IsZero() || !got.FinishedAt.IsZero() {
		t.Errorf("zero times came back as %v, %v", got.LeaseExpiresAt, got.FinishedAt)
	}
	if len(got.Outputs) != 0 {
		t.Errorf("nil outputs came back as %q", got.Outputs)
	}
	got = getJob(t, s, "job-3")
	eqJob(t, "GetJob of a job with empty params and outputs", got, emptyParams)

	// Upsert: every column but id changes; the seq stays.
	u := *j
	u.AccountID, u.Action, u.Category, u.Quantity = "B", "image.edit", ledger.CategoryImage, 9
	u.Params, u.ParamsVersion, u.Status, u.HoldID = json.RawMessage(`[1,2,3]`), 8, ledger.JobFailed, "hold-2"
	u.CostCredits, u.ChargedCredits, u.Attempts, u.LeaseID, u.LeaseExpiresAt = 5, 0, 5, "", time.Time{}
	u.LeaseParamsVersion = 8
	u.Outputs, u.Error, u.CreatedAt, u.UpdatedAt, u.FinishedAt = nil, "", at(-time.Hour), at(3*time.Hour), at(4*time.Hour)
	u.Seq = 0
	write(t, s, func(b ledger.Batch) { saveJobs(t, b, &u) })
	if u.Seq != j.Seq {
		t.Errorf("update wrote back seq %d, want the job's %d", u.Seq, j.Seq)
	}
	eqJob(t, "GetJob after update", getJob(t, s, "job-1"), &u)
}

func testJobSeqIncreasesAndIsKeptOnUpdate(t *testing.T, s ledger.Store) {
	j1 := newJob("j1", "A", ledger.JobQueued, at(0))
	j2 := newJob("j2", "B", ledger.JobQueued, at(0))
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"), newAccount("B"))
		saveJobs(t, b, j1, j2)
	})
	if j1.Seq <= 0 || j2.Seq <= 0 || j1.Seq == j2.Seq {
		t.Fatalf("seqs %d, %d: want distinct and > 0", j1.Seq, j2.Seq)
	}
	maxSeq := max(j1.Seq, j2.Seq)

	// A later job in the same batch as an update, with a stale Seq set by
	// the caller; then another save in the same batch.
	seq1 := j1.Seq
	u1 := *j1
	u1.Status, u1.Attempts, u1.LeaseID, u1.LeaseExpiresAt, u1.Seq = ledger.JobRunning, 1, "l", at(time.Minute), 0
	j3 := newJob("j3", "A", ledger.JobQueued, at(-time.Hour)) // created earlier: seq is not time
	j3.Seq = 1
	j4 := newJob("j4", "B", ledger.JobQueued, at(0))
	write(t, s, func(b ledger.Batch) {
		saveJobs(t, b, &u1, j3)
		saveJobs(t, b, j4)
	})
	if u1.Seq != seq1 {
		t.Errorf("update wrote back seq %d, want %d", u1.Seq, seq1)
	}
	if j3.Seq <= maxSeq {
		t.Errorf("new job seq %d, want > %d", j3.Seq, maxSeq)
	}
	if j4.Seq <= j3.Seq {
		t.Errorf("job saved later in the batch: seq %d, want > %d", j4.Seq, j3.Seq)
	}
	for _, j := range []*ledger.Job{&u1, j2, j3, j4} {
		if got := getJob(t, s, j.ID); got.Seq != j.Seq {
			t.Errorf("GetJob %s: seq %d, written back %d", j.ID, got.Seq, j.Seq)
		}
	}

	// Updates in later batches keep the seq, through every status.
	for _, st := range []ledger.JobStatus{ledger.JobQueued, ledger.JobRunning, ledger.JobSucceeded} {
		u := *j3
		u.Status, u.Seq = st, j4.Seq+1000
		write(t, s, func(b ledger.Batch) { saveJobs(t, b, &u) })
		if u.Seq != j3.Seq {
			t.Errorf("update to %s wrote back seq %d, want %d", st, u.Seq, j3.Seq)
		}
		if got := getJob(t, s, "j3"); got.Seq != j3.Seq || got.Status != st {
			t.Errorf("GetJob after update to %s: seq %d status %s, want seq %d", st, got.Seq, got.Status, j3.Seq)
		}
	}

	testJobSeqOfMany(t, s, j2, j4.Seq)
}

// testJobSeqOfMany: many jobs in one call, new and existing mixed (more
// than one SQLite statement takes): the new ones get distinct seqs after
// after, and j2, updated among them, keeps its own.
func testJobSeqOfMany(t *testing.T, s ledger.Store, j2 *ledger.Job, after int64) {
	const n = 600
	var many []*ledger.Job
	for i := range n {
		many = append(many, newJob(fmt.Sprintf("m-%03d", i), "A", ledger.JobQueued, at(0)))
	}
	old := *j2
	old.Status, old.Seq = ledger.JobRunning, 0
	mixed := slices.Insert(slices.Clone(many), 300, &old)
	write(t, s, func(b ledger.Batch) { saveJobs(t, b, mixed...) })
	if old.Seq != j2.Seq {
		t.Errorf("update among many wrote back seq %d, want %d", old.Seq, j2.Seq)
	}
	seen := map[int64]string{}
	for _, j := range many {
		if j.Seq <= after {
			t.Fatalf("job %s among many: seq %d, want > %d", j.ID, j.Seq, after)
		}
		if other, dup := seen[j.Seq]; dup {
			t.Fatalf("jobs %s and %s both got seq %d", other, j.ID, j.Seq)
		}
		seen[j.Seq] = j.ID
	}
	for _, i := range []int{0, 255, 256, 299, 300, 511, 512, n - 1} {
		if got := getJob(t, s, many[i].ID); got.Seq != many[i].Seq {
			t.Errorf("GetJob %s: seq %d, written back %d", many[i].ID, got.Seq, many[i].Seq)
		}
	}
	if got := getJob(t, s, "j2"); got.Seq != j2.Seq || got.Status != ledger.JobRunning {
		t.Errorf("GetJob j2 after update among many: %+v", got)
	}
}

func testLoadStateReturnsActiveJobsOnly(t *testing.T, s ledger.Store) {
	q := newJob("j-q", "A", ledger.JobQueued, at(time.Minute))
	r := newJob("j-r", "A", ledger.JobRunning, at(0))
	var ended []*ledger.Job
	for _, st := range []ledger.JobStatus{ledger.JobSucceeded, ledger.JobFailed, ledger.JobCancelled, ledger.JobInterrupted} {
		ended = append(ended, newJob("j-"+string(st), "A", st, at(0)))
	}
	rb := newJob("j-rb", "B", ledger.JobRunning, at(0))
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"), newAccount("B"), newAccount("C"))
		saveHolds(t, b, newHold("h-p", "A", ledger.HoldPending, at(0)))
		saveJobs(t, b, ended[0], q, ended[1], rb, r)
		saveJobs(t, b, ended[2:]...)
	})
	st, err := s.LoadState(ctx(t), "A")
	check(t, "LoadState", err)
	eqJobMap(t, "LoadState jobs (queued and running)", st.Jobs, q, r)
	if len(st.Holds) != 1 {
		t.Errorf("LoadState holds: %d, want 1", len(st.Holds))
	}
	st, err = s.LoadState(ctx(t), "C")
	check(t, "LoadState C", err)
	if st.Jobs == nil || len(st.Jobs) != 0 || st.Holds == nil {
		t.Errorf("LoadState of an account without jobs: jobs %v, holds %v; want empty non-nil maps", st.Jobs, st.Holds)
	}

	// In a batch, before and after changing statuses.
	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer b.Rollback()
	bst, err := b.LoadState(ctx(t), "A")
	check(t, "Batch.LoadState", err)
	eqJobMap(t, "Batch.LoadState jobs", bst.Jobs, q, r)
	done := *r
	done.Status, done.FinishedAt, done.LeaseID, done.LeaseExpiresAt = ledger.JobSucceeded, at(time.Hour), "", time.Time{}
	back := *ended[3] // an ended job reactivated: the store does not judge
	back.Status, back.FinishedAt = ledger.JobQueued, time.Time{}
	nq := newJob("j-new", "A", ledger.JobQueued, at(time.Hour))
	saveJobs(t, b, &done, &back, nq)
	bst, err = b.LoadState(ctx(t), "A")
	check(t, "Batch.LoadState after SaveJobs", err)
	eqJobMap(t, "Batch.LoadState jobs after SaveJobs", bst.Jobs, q, &back, nq)
	cst, err := b.LoadState(ctx(t), "C")
	check(t, "Batch.LoadState C", err)
	if cst.Jobs == nil || len(cst.Jobs) != 0 {
		t.Errorf("Batch.LoadState of an account without jobs: %v, want an empty non-nil map", cst.Jobs)
	}
	check(t, "Commit", b.Commit())

	st, err = s.LoadState(ctx(t), "A")
	check(t, "LoadState after commit", err)
	eqJobMap(t, "LoadState jobs after commit", st.Jobs, q, &back, nq)
	st, err = s.LoadState(ctx(t), "B")
	check(t, "LoadState B", err)
	eqJobMap(t, "LoadState jobs of B", st.Jobs, rb)
}

func testListJobsPagesNewestFirst(t *testing.T, s ledger.Store) {
	write(t, s, func(b ledger.Batch) { saveAccounts(t, b, newAccount("A"), newAccount("B")) })
	var want []*ledger.Job // A's jobs, oldest first
	statuses := []ledger.JobStatus{ledger.JobQueued, ledger.JobRunning, ledger.JobSucceeded, ledger.JobFailed, ledger.JobCancelled, ledger.JobInterrupted}
	n := 0
	for _, size := range []int{3, 1, 3} {
		write(t, s, func(b ledger.Batch) {
			for range size {
				n++
				// created_at runs backwards: the order is by seq only.
				j := newJob(fmt.Sprintf("j-%02d", n), "A", statuses[n%len(statuses)], at(-time.Duration(n)*time.Minute))
				saveJobs(t, b, j)
				want = append(want, j)
				if n%2 == 0 {
					saveJobs(t, b, newJob(fmt.Sprintf("b-%02d", n), "B", ledger.JobQueued, at(0)))
				}
			}
		})
	}
	// Updating the oldest job does not move it.
	u := *want[0]
	u.Status, u.FinishedAt = ledger.JobCancelled, at(time.Hour)
	write(t, s, func(b ledger.Batch) { saveJobs(t, b, &u) })
	want[0] = &u
	newest := slices.Clone(want)
	slices.Reverse(newest)

	all, err := s.ListJobs(ctx(t), ledger.ListJobsParams{AccountID: "A", Limit: 100})
	check(t, "ListJobs", err)
	eqJobs(t, "ListJobs (newest first)", all, newest)
	for i := 1; i < len(all); i++ {
		if all[i].Seq >= all[i-1].Seq {
			t.Errorf("ListJobs not by descending seq: %d then %d", all[i-1].Seq, all[i].Seq)
		}
	}

	var pages [][]string
	before := int64(0)
	for range 10 {
		page, err := s.ListJobs(ctx(t), ledger.ListJobsParams{AccountID: "A", BeforeSeq: before, Limit: 3})
		check(t, "ListJobs page", err)
		pages = append(pages, jobIDs(page))
		if len(page) == 0 {
			break
		}
		before = page[len(page)-1].Seq
	}
	same(t, "ListJobs pages", pages, [][]string{{"j-07", "j-06", "j-05"}, {"j-04", "j-03", "j-02"}, {"j-01"}, {}})

	mid, err := s.ListJobs(ctx(t), ledger.ListJobsParams{AccountID: "A", BeforeSeq: all[2].Seq, Limit: 2})
	check(t, "ListJobs mid", err)
	eqJobs(t, "ListJobs before a cursor", mid, newest[3:5])

	bs, err := s.ListJobs(ctx(t), ledger.ListJobsParams{AccountID: "B", Limit: 100})
	check(t, "ListJobs B", err)
	same(t, "ListJobs B", jobIDs(bs), []string{"b-06", "b-04", "b-02"})
	none, err := s.ListJobs(ctx(t), ledger.ListJobsParams{AccountID: "nobody", Limit: 10})
	check(t, "ListJobs of an unknown account", err)
	if len(none) != 0 {
		t.Errorf("ListJobs of an unknown account: %+v", none)
	}
}

func testListActiveJobs(t *testing.T, s ledger.Store) {
	a1 := newJob("a1", "A", ledger.JobRunning, at(0))
	b1 := newJob("b1", "B", ledger.JobQueued, at(-time.Hour))
	a2 := newJob("a2", "A", ledger.JobQueued, at(0))
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"), newAccount("B"))
		saveJobs(t, b, a1)
		saveJobs(t, b, newJob("a-done", "A", ledger.JobSucceeded, at(0)), newJob("b-failed", "B", ledger.JobFailed, at(0)))
		saveJobs(t, b, b1)
		saveJobs(t, b, newJob("a-cancelled", "A", ledger.JobCancelled, at(0)), newJob("a-int", "A", ledger.JobInterrupted, at(0)))
		saveJobs(t, b, a2)
	})
	got, err := s.ListActiveJobs(ctx(t))
	check(t, "ListActiveJobs", err)
	eqJobs(t, "ListActiveJobs (ascending seq)", got, []*ledger.Job{a1, b1, a2})

	// Reads see committed data only.
	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer b.Rollback()
	end := *a1
	end.Status, end.FinishedAt = ledger.JobSucceeded, at(time.Hour)
	b2 := newJob("b2", "B", ledger.JobQueued, at(0))
	saveJobs(t, b, &end, b2)
	got, err = s.ListActiveJobs(ctx(t))
	check(t, "ListActiveJobs during a batch", err)
	eqJobs(t, "ListActiveJobs during a batch", got, []*ledger.Job{a1, b1, a2})
	_, err = s.GetJob(ctx(t), "b2")
	wantCode(t, "GetJob of an uncommitted job", err, ledger.ENotFound)
	check(t, "Commit", b.Commit())

	got, err = s.ListActiveJobs(ctx(t))
	check(t, "ListActiveJobs after commit", err)
	eqJobs(t, "ListActiveJobs after commit", got, []*ledger.Job{b1, a2, b2})
}

func testJobNotFound(t *testing.T, s ledger.Store) {
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"))
		saveJobs(t, b, newJob("j1", "A", ledger.JobQueued, at(0)))
	})
	_, err := s.GetJob(ctx(t), "nope")
	wantCode(t, "GetJob", err, ledger.ENotFound)
	_, err = s.GetJob(ctx(t), "J1")
	wantCode(t, "GetJob with another case", err, ledger.ENotFound)

	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer b.Rollback()
	_, err = b.GetJob(ctx(t), "nope")
	wantCode(t, "Batch.GetJob", err, ledger.ENotFound)
	// The batch still works after a not-found read.
	if _, err := b.GetJob(ctx(t), "j1"); err != nil {
		t.Errorf("Batch.GetJob after a not-found read: %v", err)
	}
	saveJobs(t, b, newJob("j2", "A", ledger.JobQueued, at(0)))
	check(t, "Rollback", b.Rollback())
	_, err = s.GetJob(ctx(t), "j2")
	wantCode(t, "GetJob of a rolled-back job", err, ledger.ENotFound)
	js, err := s.ListJobs(ctx(t), ledger.ListJobsParams{AccountID: "A", Limit: 10})
	check(t, "ListJobs", err)
	same(t, "ListJobs after a rollback", jobIDs(js), []string{"j1"})
}

func testBatchGetJobSeesOwnWrites(t *testing.T, s ledger.Store) {
	j1 := newJob("j1", "A", ledger.JobQueued, at(0))
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"))
		saveJobs(t, b, j1)
	})
	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer b.Rollback()
	got, err := b.GetJob(ctx(t), "j1")
	check(t, "Batch.GetJob", err)
	eqJob(t, "Batch.GetJob of a committed job", got, j1)

	u := *j1
	u.Status, u.Attempts, u.LeaseID, u.LeaseExpiresAt = ledger.JobRunning, 1, "lease-1", at(time.Minute)
	u.Params = json.RawMessage(oddParams)
	j2 := newJob("j2", "A", ledger.JobSucceeded, at(time.Second))
	saveJobs(t, b, &u, j2)
	got, err = b.GetJob(ctx(t), "j1")
	check(t, "Batch.GetJob after update", err)
	eqJob(t, "Batch.GetJob after update", got, &u)
	got, err = b.GetJob(ctx(t), "j2")
	check(t, "Batch.GetJob of a new job", err)
	eqJob(t, "Batch.GetJob of a new job", got, j2)

	// Outside the batch, only committed data.
	eqJob(t, "GetJob during the batch", getJob(t, s, "j1"), j1)
	_, err = s.GetJob(ctx(t), "j2")
	wantCode(t, "GetJob of an uncommitted job", err, ledger.ENotFound)
	check(t, "Commit", b.Commit())

	eqJob(t, "GetJob after commit", getJob(t, s, "j1"), &u)
	eqJob(t, "GetJob of the new job after commit", getJob(t, s, "j2"), j2)
}

// ---- asset tests --------------------------------------------------------

func testAssetRoundTrip(t *testing.T, s ledger.Store) {
	a := newAsset("asset-1", "A", "job-1", at(0).In(zone))
	a.SHA256, a.Width, a.Height, a.Bytes = strings.Repeat("0f", 32), 1<<20, 3, 1<<40
	a.Seq = -7 // ignored
	up := &ledger.Asset{ID: "asset-2", AccountID: "A", Kind: "upload", ContentType: "image/jpeg", CreatedAt: at(time.Second)}
	saveAsset(t, s, a)
	saveAsset(t, s, up)
	if a.Seq <= 0 || up.Seq <= a.Seq {
		t.Errorf("SaveAsset seqs %d then %d: want > 0 and increasing", a.Seq, up.Seq)
	}
	got, err := s.GetAsset(ctx(t), "asset-1")
	check(t, "GetAsset", err)
	eqAssets(t, "GetAsset", []ledger.Asset{*got}, []*ledger.Asset{a})
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt %v is in %v, want UTC", got.CreatedAt, got.CreatedAt.Location())
	}
	got, err = s.GetAsset(ctx(t), "asset-2")
	check(t, "GetAsset of an upload", err)
	eqAssets(t, "GetAsset of an upload", []ledger.Asset{*got}, []*ledger.Asset{up})
}

func testAssetDuplicateIDConflicts(t *testing.T, s ledger.Store) {
	a := newAsset("asset-1", "A", "job-1", at(0))
	saveAsset(t, s, a)
	dup := newAsset("asset-1", "B", "", at(time.Hour))
	dup.Bytes = 1
	wantCode(t, "SaveAsset of an existing id", s.SaveAsset(ctx(t), dup), ledger.EConflict)
	got, err := s.GetAsset(ctx(t), "asset-1")
	check(t, "GetAsset", err)
	eqAssets(t, "asset after a conflicting save", []ledger.Asset{*got}, []*ledger.Asset{a})
	bs, err := s.ListAssets(ctx(t), ledger.ListAssetsParams{AccountID: "B", Limit: 10})
	check(t, "ListAssets B", err)
	if len(bs) != 0 {
		t.Errorf("conflicting asset listed: %+v", bs)
	}
	// The store takes writes, and batches, afterwards.
	next := newAsset("asset-2", "A", "job-1", at(time.Second))
	saveAsset(t, s, next)
	if next.Seq <= a.Seq {
		t.Errorf("asset after a conflict: seq %d, want > %d", next.Seq, a.Seq)
	}
	write(t, s, func(b ledger.Batch) { saveAccounts(t, b, newAccount("A")) })
}

func testListAssetsPagesNewestFirst(t *testing.T, s ledger.Store) {
	var want []*ledger.Asset // A's assets, oldest first
	for i := 1; i <= 7; i++ {
		// created_at runs backwards: the order is by seq only.
		a := newAsset(fmt.Sprintf("a-%02d", i), "A", fmt.Sprintf("job-%d", i/3), at(-time.Duration(i)*time.Minute))
		saveAsset(t, s, a)
		want = append(want, a)
		if i%2 == 0 {
			saveAsset(t, s, newAsset(fmt.Sprintf("b-%02d", i), "B", "", at(0)))
		}
	}
	newest := slices.Clone(want)
	slices.Reverse(newest)
	all, err := s.ListAssets(ctx(t), ledger.ListAssetsParams{AccountID: "A", Limit: 100})
	check(t, "ListAssets", err)
	eqAssets(t, "ListAssets (newest first)", all, newest)

	var pages [][]string
	before := int64(0)
	for range 10 {
		page, err := s.ListAssets(ctx(t), ledger.ListAssetsParams{AccountID: "A", BeforeSeq: before, Limit: 3})
		check(t, "ListAssets page", err)
		pages = append(pages, assetIDs(page))
		if len(page) == 0 {
			break
		}
		before = page[len(page)-1].Seq
	}
	same(t, "ListAssets pages", pages, [][]string{{"a-07", "a-06", "a-05"}, {"a-04", "a-03", "a-02"}, {"a-01"}, {}})

	mid, err := s.ListAssets(ctx(t), ledger.ListAssetsParams{AccountID: "A", BeforeSeq: all[2].Seq, Limit: 2})
	check(t, "ListAssets mid", err)
	eqAssets(t, "ListAssets before a cursor", mid, newest[3:5])

	bs, err := s.ListAssets(ctx(t), ledger.ListAssetsParams{AccountID: "B", Limit: 100})
	check(t, "ListAssets B", err)
	same(t, "ListAssets B", assetIDs(bs), []string{"b-06", "b-04", "b-02"})
	none, err := s.ListAssets(ctx(t), ledger.ListAssetsParams{AccountID: "nobody", Limit: 10})
	check(t, "ListAssets of an unknown account", err)
	if len(none) != 0 {
		t.Errorf("ListAssets of an unknown account: %+v", none)
	}
}

func testAssetNotFound(t *testing.T, s ledger.Store) {
	saveAsset(t, s, newAsset("asset-1", "A", "", at(0)))
	_, err := s.GetAsset(ctx(t), "nope")
	wantCode(t, "GetAsset", err, ledger.ENotFound)
	_, err = s.GetAsset(ctx(t), "ASSET-1")
	wantCode(t, "GetAsset with another case", err, ledger.ENotFound)
	if _, err := s.GetAsset(ctx(t), "asset-1"); err != nil {
		t.Errorf("GetAsset after a not-found read: %v", err)
	}
}
