package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/ledger"
)

// BuiltinHandler is the Handler of the built-in worker: it serves
// imageops.Actions. It reads params.source through input, runs
// imageops.Apply and returns job.Quantity outputs (identical PNGs: the
// operations are deterministic). Invalid params, a missing source and an
// image the operation refuses (a crop outside it, an output over the
// limits) are a final Failure; an unknown action too. Other errors
// (transport, internal) are retried.
func BuiltinHandler(ctx context.Context, job Job, input func(assetID string) ([]byte, string, error)) ([]Output, error) {
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
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	out, info, err := imageops.Apply(job.Action, job.Params, data)
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

// invalid makes an invalid-input error from imageops a final Failure and
// passes other errors on (retried).
func invalid(err error) error {
	if ledger.ErrorCode(err) == ledger.EInvalid {
		return Failure{Msg: ledger.ErrorMessage(err)}
	}
	return err
}

// RunBuiltin runs the built-in worker (BuiltinHandler for every action in
// imageops.Actions) against the creditd at baseURL with the worker key,
// concurrency jobs at once (0: DefaultConcurrency), until ctx is done. It
// is what `creditd worker` runs, and what `creditd serve` can run in
// process. See Runner.Run for what it returns.
func RunBuiltin(ctx context.Context, baseURL, key string, concurrency int, log *slog.Logger) error {
	r := &Runner{
		Client:      &Client{BaseURL: baseURL, Key: key},
		Actions:     slices.Clone(imageops.Actions),
		Handler:     BuiltinHandler,
		Concurrency: concurrency,
		Logger:      log,
	}
	return r.Run(ctx)
}
