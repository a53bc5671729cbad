package app

import (
	"context"
	"sync"

	"github.com/creditd/creditd/ledger"
)

// BatchOp is one write of a batch: exactly one of its requests is set.
type BatchOp struct {
	Reserve *ReserveRequest
	Capture *CaptureRequest
	Release *ReleaseRequest
	Extend  *ExtendRequest
	Grant   *GrantRequest
}

// BatchResult is the answer to one write of a batch: the response its own
// method answers with (Status, Body, Replayed), or Err.
type BatchResult struct {
	Status   int
	Body     []byte
	Replayed bool
	Err      error
}

// Batch runs independent writes at once, for high-volume backends. Each
// is validated and run exactly as its own method (Reserve, Capture,
// Release, Extend, Grant) runs it, idempotency key included, and answered
// as that method answers. The writes are not atomic: all are handed to the
// engine at once, from one goroutine each, so that they share group
// commits, and each succeeds or fails on its own.
func (s *Service) Batch(ctx context.Context, ops []BatchOp) []BatchResult {
	out := make([]BatchResult, len(ops))
	var wg sync.WaitGroup
	for i := range ops {
		wg.Go(func() { out[i] = s.batchOne(ctx, &ops[i]) })
	}
	wg.Wait()
	return out
}

func (s *Service) batchOne(ctx context.Context, op *BatchOp) BatchResult {
	switch {
	case op.Reserve != nil:
		return batchResult(s.Reserve(ctx, *op.Reserve))
	case op.Capture != nil:
		return batchResult(s.Capture(ctx, *op.Capture))
	case op.Release != nil:
		return batchResult(s.Release(ctx, *op.Release))
	case op.Extend != nil:
		return batchResult(s.Extend(ctx, *op.Extend))
	case op.Grant != nil:
		return batchResult(s.Grant(ctx, *op.Grant))
	}
	return BatchResult{Err: ledger.Errorf(ledger.EInvalid, "the operation names no write")}
}

func batchResult[T any](out Outcome[T], err error) BatchResult {
	return BatchResult{Status: out.Status, Body: out.Body, Replayed: out.Replayed, Err: err}
}
