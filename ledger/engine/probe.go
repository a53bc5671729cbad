package engine

import (
	"context"
	"fmt"

	"github.com/creditd/creditd/ledger"
)

// The write probe's idempotency record: no caller's principal ("kind:id"
// for API callers, a scope name for ConsumeOnce), so no request meets it,
// and no account's: it moves no credits and no account's version.
const (
	probePrincipal = "~probe"
	probeKey       = "store-writable"
)

// probeBodyBytes is the size of the probe record's body: a page, so that
// each probe grows an append-only journal by at least one block, as the
// writes under load do. A smaller record fits in the block the journal
// already holds, and an idle node would learn of a full disk only after
// dozens of probes.
const probeBodyBytes = 4096

var probeBody = make([]byte, probeBodyBytes)

// ProbeWrite commits one batch through the store's real write path (on
// SQLite a journal record and its fdatasync, on PostgreSQL a transaction)
// that upserts the probe's own idempotency record and nothing else. It
// returns nil once the store has made the batch durable: the store takes
// writes now. Package readiness calls it periodically.
func (e *Engine) ProbeWrite(ctx context.Context) error {
	b, err := e.store.BeginBatch(ctx)
	if err != nil {
		return err
	}
	defer b.Rollback()
	rec := &ledger.IdempotencyRecord{Principal: probePrincipal, Key: probeKey, Fingerprint: "probe",
		Status: 204, Body: probeBody, CreatedAt: e.clock.Now()}
	if err := b.SaveIdempotency(ctx, []*ledger.IdempotencyRecord{rec}); err != nil {
		return fmt.Errorf("write probe: %w", err)
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("write probe: commit: %w", err)
	}
	return nil
}
