package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/sqlite"
)

// deletedBlobs records the blobs the sweep deletes.
type deletedBlobs struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (d *deletedBlobs) Delete(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ids[id] = true
	return nil
}

// TestSweepStagedOutputsPagesPastActiveJobs: one sweep settles more
// staged outputs than one round reads, though the outputs of a running
// job come between them: the ended job's are deleted (bytes and row), the
// running job's stay staged, and an output its succeeded job lists but
// that was never marked (a crash after the commit) is delivered.
func TestSweepStagedOutputsPagesPastActiveJobs(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "creditd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t0 := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	job := func(id string, status ledger.JobStatus, outputs ...string) *ledger.Job {
		return &ledger.Job{ID: id, AccountID: "A", Action: "generate", Category: ledger.CategoryImage, Quantity: 1,
			Status: status, Outputs: outputs, CreatedAt: t0, UpdatedAt: t0}
	}
	b, err := st.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jobs := []*ledger.Job{job("j-fail", ledger.JobFailed), job("j-run", ledger.JobRunning), job("j-ok", ledger.JobSucceeded, "o-ok")}
	if err := b.SaveJobs(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	n := outputSweepBatchMax + outputSweepBatchMax/2
	save := func(id, jobID string) {
		t.Helper()
		a := &ledger.Asset{ID: id, AccountID: "A", JobID: jobID, Kind: ledger.AssetOutput, ContentType: "image/png", CreatedAt: t0}
		if err := st.SaveAsset(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		save(fmt.Sprintf("o-run-%d", i), "j-run")
		save(fmt.Sprintf("o-fail-%d", i), "j-fail")
	}
	save("o-ok", "j-ok")

	blobs := &deletedBlobs{ids: map[string]bool{}}
	e, err := New(ctx, Options{Store: st, Clock: ledger.NewTestClock(t0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SweepInterval: time.Hour, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	deleted, err := e.SweepStagedOutputs(ctx)
	if err != nil || deleted != n {
		t.Fatalf("SweepStagedOutputs: %d deleted, %v; want %d", deleted, err, n)
	}
	for i := range n {
		id := fmt.Sprintf("o-fail-%d", i)
		if _, err := st.GetAsset(ctx, id); ledger.ErrorCode(err) != ledger.ENotFound || !blobs.ids[id] {
			t.Fatalf("%s after the sweep: %v, bytes deleted %v", id, err, blobs.ids[id])
		}
		id = fmt.Sprintf("o-run-%d", i)
		if a, err := st.GetAsset(ctx, id); err != nil || a.State != ledger.AssetStaged || blobs.ids[id] {
			t.Fatalf("%s of a running job after the sweep: %+v, %v, bytes deleted %v", id, a, err, blobs.ids[id])
		}
	}
	if a, err := st.GetAsset(ctx, "o-ok"); err != nil || !a.Visible() || blobs.ids["o-ok"] {
		t.Fatalf("the listed output after the sweep: %+v, %v", a, err)
	}
	if len(blobs.ids) != n {
		t.Errorf("%d blobs deleted, want %d", len(blobs.ids), n)
	}
	if again, err := e.SweepStagedOutputs(ctx); err != nil || again != 0 {
		t.Errorf("a second sweep deleted %d (%v), want 0", again, err)
	}
}
