package app

import (
	"encoding/json"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// Idempotency is a write's idempotency key: the principal that sends it,
// the key, and the fingerprint of the request (a later request with the
// key and another fingerprint is idempotency_mismatch). Field names the
// key in messages ("Idempotency-Key", or a batch operation's
// "idempotency_key").
type Idempotency struct {
	Principal   string
	Key         string
	Fingerprint string
	Field       string
}

// Outcome is the answer to a write. Value is its result (the zero T when
// Replayed); Status and Body are the response it answers with, which is
// the response stored under its idempotency key: rendered from Value, or
// (Replayed) stored by an earlier write with the same key.
type Outcome[T any] = engine.Outcome[T]

// write runs an engine write with an idempotency key (nil: none) and
// returns its outcome with Status and Body filled in. It is the one
// idempotency path: the engine answers a used key from its stored
// response, both before the write is queued and inside its batch, and
// stores the response of a new one in the write's transaction.
func write[T any](s *Service, key *Idempotency, render func(T) (int, []byte), call func(*engine.Idempotency[T]) (engine.Outcome[T], error)) (Outcome[T], error) {
	var idem *engine.Idempotency[T]
	if key != nil {
		if err := ledger.CheckText(key.Field, key.Key, s.cfg.Limits.IdempotencyKeyBytesMax); err != nil {
			return Outcome[T]{}, err
		}
		idem = &engine.Idempotency[T]{
			IdempotencyKey: engine.IdempotencyKey{Principal: key.Principal, Key: key.Key, Fingerprint: key.Fingerprint},
			Render:         render,
		}
	}
	out, err := call(idem)
	if err != nil {
		return out, err
	}
	if idem == nil {
		out.Status, out.Body = render(out.Value)
	}
	return out, nil
}

// The responses of writes: their HTTP status and JSON body, which is what
// an idempotency key stores and replays byte for byte.

func renderAccount(res *engine.AccountResult) (int, []byte) {
	if res.Created {
		return 201, mustJSON(res.Account)
	}
	return 200, mustJSON(res.Account)
}

func renderGrant(res *engine.GrantResult) (int, []byte) {
	if res.Created {
		return 201, mustJSON(res.Grant)
	}
	return 200, mustJSON(res.Grant)
}

func renderHoldCreated(h *ledger.Hold) (int, []byte) { return 201, mustHoldJSON(h) }

func renderHold(h *ledger.Hold) (int, []byte) { return 200, mustHoldJSON(h) }

func renderJobCreated(j *ledger.Job) (int, []byte) { return 201, mustJSON(j) }

func renderJob(j *ledger.Job) (int, []byte) { return 200, mustJSON(j) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
