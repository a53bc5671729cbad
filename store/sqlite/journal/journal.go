// Package journal is the write-ahead journal of the SQLite store: how a
// batch becomes durable with one record write, and how journaled batches
// reach the tables later, many at a time.
//
// A batch's rows (accounts, grants, holds, entries, idempotency records,
// jobs) form a ChangeSet. Append encodes it into one record (codec.go) and
// appends it to plain segment files in a directory beside the database
// (file.go) with one write and one fdatasync. From then on the batch is
// durable and visible: its rows sit in an in-memory overlay (overlay.go)
// that every read of the store consults before the tables.
//
// A materializer goroutine (materializer.go) then hands the journaled
// batches to the store's MaterializeFunc, which writes them into the tables
// many batches per transaction and records the last batch it covers
// (the tables' applied seq) in the same transaction. After it commits,
// those batches leave the overlay, and the next Append retires the
// segments they filled.
//
// Meanwhile a pending batch whose rows later batches rewrite is replaced by
// a copy of its live rows once a quarter of them are rewritten
// (compact.go), so a hot account costs the journal's bound one row, not one
// per batch.
//
// Crash safety: a journaled batch is in the tables exactly when its seq is
// at most the applied seq, which is written in the same transaction as the
// rows. Open replays every record past it before the journal is used, so a
// batch is never lost nor applied twice.
//
// A failed write or fdatasync leaves the record's fate unknown; the journal
// then takes no appends until Heal has cut the files back to the last
// acknowledged record and reopened them (heal.go).
//
// docs/sqlite-journal.md describes the format and the whole cycle.
package journal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/creditd/creditd/ledger"
)

// PendingRowsMax bounds the rows journaled but not yet materialized (the
// overlay); beyond it WaitRoom waits for the materializer.
const PendingRowsMax = 1 << 18

// The materializer waits until materializeRowsMin rows are journaled or
// materializeDelay has passed since its last run, so that each of its
// transactions covers many batches, unless a read or a waiting batch needs
// it now: over many accounts a transaction's cost is pages, not rows, and a
// longer window writes fewer pages per batch. The cost is a read-only
// store's lag, the overlay's memory and the time a range read waits when it
// arrives with a full window pending (docs/sqlite-journal.md,
// docs/performance.md).
//
// A transaction must also start early enough that the rows arriving while
// it writes fit below PendingRowsMax: a batch that finds the journal full
// waits for the whole transaction, and so does every operation behind it.
// So the materializer starts at materializeRowsMin pending rows or, if
// lower, at PendingRowsMax minus twice the rows that arrived during its
// last transaction (startRows).
const (
	materializeRowsMin = 250000
	materializeDelay   = 2 * time.Second
)

// materializeRetry is how long the materializer waits before retrying a
// failed transaction (the batches stay journaled meanwhile).
const materializeRetry = time.Second

// MaterializeFunc writes journaled batches, in seq order, into the tables
// in one transaction that also records the last one's seq as applied.
type MaterializeFunc func(ctx context.Context, sets []*ChangeSet) error

// Config is what Open needs.
type Config struct {
	Dir         string          // the journal's directory
	Applied     int64           // the last seq the tables hold
	Materialize MaterializeFunc // writes batches into the tables
	// Files opens the journal's segment files; nil means the operating
	// system's. Tests inject faults through it.
	Files FS
}

// Tuning holds the journal's bounds; tests lower them (Tune).
type Tuning struct {
	PendingRowsMax int           // PendingRowsMax
	ChunkRows      int           // materializeRowsMin: rows a transaction stops after
	Delay          time.Duration // materializeDelay
}

// Journal is the write-ahead part of a read-write store. Appends must not
// run concurrently (the store runs one batch at a time); everything else
// may.
type Journal struct {
	fileMu   sync.Mutex // guards f
	f        *file
	dir      string // the journal's directory
	fs       FS     // opens its segment files
	segBytes int64  // segmentBytes
	closed   bool   // Close has closed f; guarded by fileMu

	mu          sync.Mutex
	committed   int64 // last journaled seq
	applied     int64 // last seq in the tables
	pending     []*ChangeSet
	pendingRows int
	tuning      Tuning
	headroom    int // rows kept free below PendingRowsMax for a transaction's arrivals (startRows)
	ov          overlay
	inflight    int64         // last seq of the batches the running transaction writes (0: none)
	due         []*ChangeSet  // pending sets queued by superseded during an Append (compactDue)
	err         error         // last materializer failure, cleared on success
	closing     bool          // Close has begun
	urgent      bool          // a reader or a batch waits for the materializer
	started     bool          // the materializer runs
	advanced    chan struct{} // closed and replaced whenever applied moves (or err is set)
	kick        chan struct{} // wakes the materializer (buffer 1)
	stopped     chan struct{} // closed when the materializer has exited
	materialize MaterializeFunc
	stats       Stats // the counters; Stats reads the gauges
}

// Stats describe the journal and its materializer.
type Stats struct {
	PendingRows    int     // rows journaled but not yet in the tables (the overlay)
	PendingRowsMax int     // PendingRowsMax: beyond it batches wait
	PendingBatches int     // batches journaled but not yet in the tables
	Transactions   int64   // materializer transactions committed
	Rows           int64   // journaled rows they covered (a row changed twice counts twice)
	Seconds        float64 // time spent in them
	Failures       int64   // materializer transactions that failed (retried)
	Superseded     int64   // pending rows dropped from memory because a later batch rewrote them (compact)
	FullWaits      int64   // batches that waited because the journal was full
	StartRows      int     // pending rows at which a transaction starts without waiting for the window (startRows)
	Heals          int64   // times the files were cut back and reopened after a failed append (Heal)
}

// Open opens the journal in cfg.Dir, replays what the tables lack through
// cfg.Materialize, and starts the materializer.
func Open(ctx context.Context, cfg Config) (*Journal, error) {
	j := &Journal{
		ov:          newOverlay(),
		tuning:      Tuning{PendingRowsMax: PendingRowsMax, ChunkRows: materializeRowsMin, Delay: materializeDelay},
		applied:     cfg.Applied,
		advanced:    make(chan struct{}),
		kick:        make(chan struct{}, 1),
		stopped:     make(chan struct{}),
		materialize: cfg.Materialize,
		dir:         cfg.Dir,
		fs:          cfg.Files,
		segBytes:    segmentBytes,
	}
	if j.fs == nil {
		j.fs = osFS{}
	}
	f, recs, err := openFile(j.fs, cfg.Dir, cfg.Applied, noCut, segmentBytes)
	if err != nil {
		return nil, err
	}
	j.f = f
	if err := j.replay(ctx, recs); err != nil {
		f.close()
		return nil, err
	}
	if err := f.release(j.applied); err != nil {
		f.close()
		return nil, err
	}
	j.committed = j.applied
	j.started = true
	go j.run()
	return j, nil
}

// replay materializes the records the tables lack, a bounded number of
// rows per transaction.
func (j *Journal) replay(ctx context.Context, recs []record) error {
	var sets []*ChangeSet
	rows := 0
	for i, r := range recs {
		c, err := DecodeChangeSet(r.data)
		if err != nil {
			return fmt.Errorf("journal: record %d: %w", r.seq, err)
		}
		if c.Seq != r.seq {
			return fmt.Errorf("journal: record %d claims seq %d", r.seq, c.Seq)
		}
		sets = append(sets, c)
		rows += c.Rows()
		if rows >= materializeRowsMin || i == len(recs)-1 {
			if err := j.materialize(ctx, sets); err != nil {
				return fmt.Errorf("journal: replay: %w", err)
			}
			j.applied = sets[len(sets)-1].Seq
			sets, rows = sets[:0], 0
		}
	}
	return nil
}

// Append journals c (one record, one fdatasync) with the next seq, written
// to c.Seq; once it returns nil the batch is durable and every overlay read
// sees it. c must not be changed afterwards. A failed Append leaves nothing
// visible, and every later one fails until Heal succeeds.
func (j *Journal) Append(c *ChangeSet) error {
	j.fileMu.Lock()
	defer j.fileMu.Unlock()
	j.mu.Lock()
	c.Seq = j.committed + 1
	applied := j.applied
	j.mu.Unlock()
	data, err := EncodeChangeSet(c)
	if err != nil {
		return fmt.Errorf("journal: encode: %w", err)
	}
	if err := j.f.release(applied); err != nil {
		return err
	}
	if err := j.f.append(c.Seq, data); err != nil {
		return err
	}
	j.mu.Lock()
	j.committed = c.Seq
	c.journaled = c.Rows()
	j.pending = append(j.pending, c)
	j.pendingRows += c.journaled
	j.ov.add(c, j.superseded)
	j.compactDue()
	j.mu.Unlock()
	j.wake()
	return nil
}

// ErrFailed is wrapped by the errors of appends refused after a failed one
// (Failed, WaitRoom) until Heal succeeds.
var ErrFailed = errors.New("a journal write failed")

// Failed returns the error of the failed append that stops the journal
// from taking more, or nil.
func (j *Journal) Failed() error {
	j.fileMu.Lock()
	defer j.fileMu.Unlock()
	if j.f.err != nil {
		return fmt.Errorf("%w: %w", ErrFailed, j.f.err)
	}
	return nil
}

// WaitRoom waits until the overlay has room for a batch: the materializer
// is less than PendingRowsMax rows behind. It fails at once, unavailable,
// after a failed append, and when the journal is full and the tables
// cannot take it.
func (j *Journal) WaitRoom(ctx context.Context) error {
	if err := j.Failed(); err != nil {
		return fmt.Errorf("%w: %w", ledger.Errorf(ledger.EUnavailable,
			"the database cannot take writes now; retry shortly"), err)
	}
	for waited := false; ; waited = true {
		j.mu.Lock()
		full := j.pendingRows >= j.tuning.PendingRowsMax
		ch, failing := j.advanced, j.err
		if full && !waited {
			j.stats.FullWaits++
		}
		if full && failing == nil {
			j.urgent = true
		}
		j.mu.Unlock()
		if !full {
			return nil
		}
		if failing != nil {
			// The journal is full and the tables cannot take it: refuse
			// writes rather than wait for ever.
			return fmt.Errorf("%w: %w", ledger.Errorf(ledger.EUnavailable,
				"the database cannot take writes now"), failing)
		}
		j.wake()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns the journal's statistics.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := j.stats
	st.PendingRows, st.PendingRowsMax, st.PendingBatches = j.pendingRows, j.tuning.PendingRowsMax, len(j.pending)
	st.StartRows = j.startRows()
	return st
}

// Close materializes what is pending, stops the materializer and closes
// the files. Batches it could not materialize stay journaled for the next
// Open, and the error says so.
func (j *Journal) Close() error {
	j.mu.Lock()
	j.closing = true
	j.mu.Unlock()
	j.wake()
	<-j.stopped
	var errs []error
	j.mu.Lock()
	if len(j.pending) > 0 {
		errs = append(errs, fmt.Errorf("%d batches stay in the journal for the next Open: %w", len(j.pending), j.err))
	}
	applied := j.applied
	j.mu.Unlock()
	j.fileMu.Lock()
	defer j.fileMu.Unlock()
	if j.f.err == nil {
		errs = append(errs, j.f.release(applied))
	}
	errs = append(errs, j.f.close())
	j.closed = true
	return errors.Join(errs...)
}
