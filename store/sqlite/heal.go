package sqlite

// Healing after a failed journal write.
//
// A failed write or fdatasync of a journal record leaves the record's fate
// unknown, so the journal takes no more appends (BeginBatch and Commit
// answer unavailable). Instead of waiting for a restart, the store heals
// itself: a goroutine retries journal.Journal.Heal with a growing delay
// (healDelayMin doubling up to healDelayMax) until it succeeds. Heal cuts
// the journal back to the last acknowledged record, so the batch that was
// answered unavailable never becomes visible, not even when its record
// reached the disk; reopens the segment files; and checks that the disk
// takes new blocks. From then on batches commit again. The SQLite
// connections need no reopening: a failed materializer transaction rolls
// back and is retried on its own (journal.materializeRetry).
//
// The engine above sees the failed commit's error and drops its cached
// account states, so it reads them from the store again.

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/sqlite/journal"
)

const (
	healDelayMin = 50 * time.Millisecond
	healDelayMax = 2 * time.Second
)

// options are the test seams of open.
type options struct {
	files journal.FS                           // the journal's segment files (nil: the operating system's)
	after func(time.Duration) <-chan time.Time // the healer's timer (nil: time.After)
	// healed, if set, is called after each heal attempt with its error.
	healed func(error)
}

// healer is the state of the healing goroutine.
type healer struct {
	opts    options
	stop    chan struct{} // closed by Close
	running bool          // a goroutine heals; guarded by the store's healMu
}

// journalFailed is called with the error of a failed journal append; it
// starts healing unless it runs already.
func (s *Store) journalFailed(err error) {
	s.healMu.Lock()
	defer s.healMu.Unlock()
	if s.heal.running {
		return
	}
	select {
	case <-s.heal.stop:
		return // closing
	default:
	}
	s.heal.running = true
	slog.Error("sqlite: a journal write failed; writes are refused until the journal heals", "err", err)
	go s.healLoop()
}

// healLoop retries Heal with a growing delay until it succeeds or the store
// closes.
func (s *Store) healLoop() {
	after := s.heal.opts.after
	if after == nil {
		after = time.After
	}
	delay := healDelayMin
	for {
		select {
		case <-after(delay):
		case <-s.heal.stop:
			s.healDone()
			return
		}
		err := s.j.Heal()
		if f := s.heal.opts.healed; f != nil {
			f(err)
		}
		if err == nil {
			slog.Info("sqlite: the journal healed; writes are taken again")
			s.healDone()
			return
		}
		slog.Warn("sqlite: the journal cannot heal yet", "err", err, "retry_in", delay)
		delay = min(2*delay, healDelayMax)
	}
}

func (s *Store) healDone() {
	s.healMu.Lock()
	s.heal.running = false
	s.healMu.Unlock()
}

// Writable reports whether the store takes writes now: nil, or why not
// (read-only; a journal write failed and the journal has not healed yet;
// the journal is full and the tables cannot take its batches). It does no
// I/O, so a readiness check may call it as often as it likes; an idle store
// learns of a full disk only from a write that fails.
func (s *Store) Writable() error {
	if s.readOnly {
		return fmt.Errorf("sqlite: %w", ErrReadOnly)
	}
	if err := s.j.Writable(); err != nil {
		return fmt.Errorf("sqlite: %w: %w", ledger.Errorf(ledger.EUnavailable, "the database cannot take writes now"), err)
	}
	return nil
}
