package engine

import (
	"context"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Outputs are staged until delivered (ledger.Asset.State): a worker's
// uploads for a job are no one's to see until the job's complete lists
// them. CompleteJob marks the listed outputs delivered right after the
// commit that charged for them, so an output is never visible before it
// is charged. Every other output of an ended job — the job failed, was
// cancelled or interrupted, its params changed and the attempt restarted,
// or complete did not list it — stays staged, hidden from the moment it
// was uploaded, and SweepStagedOutputs deletes its bytes and row.
//
// The job's outputs list is the authority: the sweep delivers a staged
// output that its succeeded job lists (a crash between the commit and the
// marking), and deletes every other staged output of an ended job.

// BlobDeleter deletes an asset's bytes (blob.Store's Delete); a missing
// id is not an error.
type BlobDeleter interface {
	Delete(id string) error
}

const (
	// outputSweepBatchMax bounds the staged outputs read per round.
	outputSweepBatchMax = 256
	// outputSweepRoundsMax bounds the rounds of one SweepStagedOutputs.
	outputSweepRoundsMax = 16
	// outputSweepInterval is how often the sweeper runs
	// SweepStagedOutputs, on the engine's clock.
	outputSweepInterval = 10 * time.Second
)

// deliverOutputs marks a succeeded job's outputs delivered. A failure is
// logged: the sweep delivers them later.
func (e *Engine) deliverOutputs(ctx context.Context, j *ledger.Job) {
	if j.Status != ledger.JobSucceeded || len(j.Outputs) == 0 {
		return
	}
	if err := e.store.DeliverOutputs(ctx, ledger.DeliverOutputsParams{JobID: j.ID, AssetIDs: j.Outputs}); err != nil {
		e.log.Warn("outputs charged but not yet marked delivered; the sweep will", "job", j.ID, "err", err)
	}
}

// SweepStagedOutputs settles the staged outputs of ended jobs: one its
// succeeded job lists is delivered; every other one is deleted, its bytes
// first and then its row (so a failed delete is retried by the next
// sweep). It reads at most outputSweepRoundsMax rounds of
// outputSweepBatchMax and returns how many outputs it deleted. Without
// Options.Blobs it does nothing. It is safe on several nodes at once.
func (e *Engine) SweepStagedOutputs(ctx context.Context) (int, error) {
	if e.blobs == nil {
		return 0, nil
	}
	deleted := 0
	var after int64
	for range outputSweepRoundsMax {
		as, err := e.store.ListStagedOutputs(ctx, ledger.ListStagedOutputsParams{AfterSeq: after, Limit: outputSweepBatchMax})
		if err != nil {
			return deleted, err
		}
		for i := range as {
			a := &as[i]
			after = a.Seq
			n, err := e.settleOutput(ctx, a)
			if err != nil {
				return deleted, err
			}
			deleted += n
		}
		if len(as) < outputSweepBatchMax {
			break
		}
	}
	if deleted > 0 {
		e.log.Info("undelivered outputs deleted", "count", deleted)
	}
	return deleted, nil
}

// settleOutput delivers or deletes one staged output of an ended job,
// after reading the job again (for its outputs). It returns 1 when it
// deleted the output.
func (e *Engine) settleOutput(ctx context.Context, a *ledger.Asset) (int, error) {
	j, err := e.store.GetJob(ctx, a.JobID)
	switch {
	case ledger.ErrorCode(err) == ledger.ENotFound:
		j = nil // no such job: the output was never anyone's
	case err != nil:
		return 0, err
	case j.Status.Active():
		return 0, nil
	case j.Delivers(a):
		return 0, e.store.DeliverOutputs(ctx, ledger.DeliverOutputsParams{JobID: j.ID, AssetIDs: []string{a.ID}})
	}
	if err := e.blobs.Delete(a.ID); err != nil {
		return 0, err
	}
	if err := e.store.DeleteAsset(ctx, a.ID); err != nil && ledger.ErrorCode(err) != ledger.ENotFound {
		return 0, err
	}
	return 1, nil
}
