package engine

import (
	"context"

	"github.com/creditd/creditd/ledger"
)

// IdempotencyKey names an idempotency key: the principal that used it,
// the key, and the fingerprint of the request it was used for.
type IdempotencyKey struct {
	Principal   string
	Key         string
	Fingerprint string
}

// Idempotency makes a write whose result is a T idempotent under
// (Principal, Key). Render turns the result into the response stored for
// the key (an HTTP status and body; the stored format of both stores). A
// later write with the same key and fingerprint gets that response back
// instead of running (Outcome.Replayed), and one with another fingerprint
// gets idempotency_mismatch.
type Idempotency[T any] struct {
	IdempotencyKey
	Render func(T) (status int, body []byte)
}

// Outcome is the answer to a write. Value is its result. With an
// idempotency key, Status and Body are the response stored under the key:
// rendered from Value by this write, or, when Replayed, stored by an
// earlier write with the same key and fingerprint, and Value is the zero
// T. Without a key, Status and Body are empty.
type Outcome[T any] struct {
	Value    T
	Replayed bool
	Status   int
	Body     []byte
}

// answer is the answer to an operation with key k whose key has a stored
// record: its stored response, or idempotency_mismatch when the record is
// another request's. It is the one check of a stored key: the committer
// makes it inside the batch (the check that decides, so that concurrent
// writes with one key run once), and write calls make it first
// (stored), so that a retry is answered without a trip through the
// committer.
func answer(rec *ledger.IdempotencyRecord, k *IdempotencyKey) result {
	if rec.Fingerprint != k.Fingerprint {
		return result{err: idemMismatch(k.Key)}
	}
	return result{replayed: true, status: rec.Status, body: rec.Body}
}

// stored answers a write from the response stored under its key, if
// there is one (see answer); ok is false when the write must run. It only
// saves a retry the trip through the committer: when the read fails, the
// write runs and its batch decides.
func stored[T any](ctx context.Context, e *Engine, idem *Idempotency[T]) (out Outcome[T], ok bool, err error) {
	if idem == nil {
		return out, false, nil
	}
	rec, err := e.store.GetIdempotency(ctx, idem.Principal, idem.Key)
	if err != nil {
		return out, false, nil
	}
	out, err = outcomeOf[T](answer(rec, &idem.IdempotencyKey))
	return out, true, err
}

// submitWrite queues a write with its idempotency (nil: none) and returns
// its outcome.
func submitWrite[T any](ctx context.Context, e *Engine, o *op, idem *Idempotency[T]) (Outcome[T], error) {
	if idem != nil {
		o.idem = &idem.IdempotencyKey
		o.render = func(v any) (int, []byte) { return idem.Render(v.(T)) }
	}
	return outcomeOf[T](e.submitResult(ctx, o))
}

func outcomeOf[T any](r result) (Outcome[T], error) {
	if r.err != nil {
		return Outcome[T]{}, r.err
	}
	out := Outcome[T]{Replayed: r.replayed, Status: r.status, Body: r.body}
	if v, ok := r.v.(T); ok {
		out.Value = v
	}
	return out, nil
}
