package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/ledger"
)

// DefaultBuiltinMemoryBytes is the built-in worker's memory budget when
// none is configured: about three times what one 40-Mpx blur needs.
const DefaultBuiltinMemoryBytes = 512 << 20

// Builtin is the built-in worker's Handler (Handle): it serves
// imageops.Actions, and admits each job by the memory its images need, so
// that the jobs running at once never hold more than the budget.
//
// A job's need is imageops.MemoryBytes, estimated from the source image's
// header before anything is decoded. The job waits (first come, first
// served) until its need fits beside the jobs already admitted, runs
// decode, operation and encode, and gives the memory back; the source is
// downloaded before it waits and the outputs are uploaded after, so no
// memory is reserved while the network is. A job that needs more than the
// whole budget is admitted alone (its need counts as the budget): it runs,
// but only when nothing else does, and the memory in use is then its need.
// The budget bounds the images' live memory, not the process's: the
// source and outputs in transit (up to imageops.UploadBytesMax each) and
// garbage the Go runtime has not collected yet are outside it.
type Builtin struct {
	budget   int64
	sem      *semaphore.Weighted
	inFlight atomic.Int64

	// Test hooks: waiting runs before a job waits to be admitted, admitted
	// once it is (with the bytes admitted then, its own included).
	waiting  func(job Job, weight int64)
	admitted func(job Job, weight, inFlight int64)
}

// NewBuiltin returns the built-in worker's handler with a memory budget of
// memoryBytes (DefaultBuiltinMemoryBytes when 0 or less).
func NewBuiltin(memoryBytes int64) *Builtin {
	if memoryBytes <= 0 {
		memoryBytes = DefaultBuiltinMemoryBytes
	}
	return &Builtin{budget: memoryBytes, sem: semaphore.NewWeighted(memoryBytes)}
}

// MemoryBytes is the budget.
func (b *Builtin) MemoryBytes() int64 { return b.budget }

// Handle is a Handler: it reads params.source through input, runs
// imageops.Apply under the memory budget and returns job.Quantity outputs
// (identical PNGs: the operations are deterministic). Invalid params, a
// missing source and an image the operation refuses (a crop outside it,
// an output over the limits) are a final Failure; an unknown action too.
// Other errors (transport, internal) are retried.
func (b *Builtin) Handle(ctx context.Context, job Job, input func(assetID string) ([]byte, string, error)) ([]Output, error) {
	if !slices.Contains(imageops.Actions, job.Action) {
		return nil, Failure{Msg: fmt.Sprintf("the built-in worker does not serve action %q (it serves %s)",
			job.Action, strings.Join(imageops.Actions, ", "))}
	}
	if err := imageops.Validate(job.Action, job.Params); err != nil {
		return nil, invalid(err)
	}
	src, err := imageops.SourceID(job.Params)
	if err != nil {
		return nil, invalid(err)
	}
	data, _, err := input(src)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, Failure{Msg: fmt.Sprintf("params.source: asset %q not found", src)}
		}
		return nil, fmt.Errorf("read source %s: %w", src, err)
	}
	need, err := imageops.MemoryBytes(job.Action, job.Params, data)
	if err != nil {
		return nil, invalid(err)
	}
	weight, err := b.admit(ctx, job, need)
	if err != nil {
		return nil, err
	}
	out, info, err := imageops.Apply(job.Action, job.Params, data)
	b.release(weight)
	if err != nil {
		return nil, invalid(err)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	n := max(job.Quantity, 1)
	outs := make([]Output, n)
	for i := range outs {
		outs[i] = Output{Data: out, ContentType: info.ContentType}
	}
	return outs, nil
}

// admit waits until need bytes (at most the budget) fit and returns the
// weight to release.
func (b *Builtin) admit(ctx context.Context, job Job, need int64) (int64, error) {
	weight := min(need, b.budget)
	if b.waiting != nil {
		b.waiting(job, weight)
	}
	if err := b.sem.Acquire(ctx, weight); err != nil {
		return 0, err
	}
	n := b.inFlight.Add(weight)
	if b.admitted != nil {
		b.admitted(job, weight, n)
	}
	return weight, nil
}

func (b *Builtin) release(weight int64) {
	b.inFlight.Add(-weight)
	b.sem.Release(weight)
}

// invalid makes an invalid-input error from imageops a final Failure and
// passes other errors on (retried).
func invalid(err error) error {
	if ledger.ErrorCode(err) == ledger.EInvalid {
		return Failure{Msg: ledger.ErrorMessage(err)}
	}
	return err
}

// BuiltinConfigProblems is a check for ledger.LoadConfig when the
// built-in worker runs: every action it serves (imageops.Actions) must have
// a price, or its jobs could never be started and the worker would stop
// at once.
func BuiltinConfigProblems(cfg *ledger.Config) []string {
	var missing []string
	for _, a := range imageops.Actions {
		if !slices.ContainsFunc(cfg.Prices, func(p ledger.Price) bool { return p.Action == a }) {
			missing = append(missing, a)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("prices lacks %s, which the built-in worker serves: add them (a config that gives \"prices\" lists every priced action; lists replace lists) or start with --builtin-worker 0",
		strings.Join(missing, ", "))}
}

// RunBuiltin runs the built-in worker (a Builtin with a budget of
// memoryBytes, for every action in imageops.Actions) against the creditd
// at baseURL with the worker key, concurrency jobs at once (0:
// DefaultConcurrency), until ctx is done. It is what `creditd serve` runs
// in process. See Runner.Run for what it returns.
func RunBuiltin(ctx context.Context, baseURL, key string, concurrency int, memoryBytes int64, log *slog.Logger) error {
	b := NewBuiltin(memoryBytes)
	log.Info("built-in worker memory budget", "memory_bytes", b.MemoryBytes())
	r := &Runner{
		Client:      &Client{BaseURL: baseURL, Key: key},
		Actions:     slices.Clone(imageops.Actions),
		Handler:     b.Handle,
		Concurrency: concurrency,
		Logger:      log,
	}
	return r.Run(ctx)
}
