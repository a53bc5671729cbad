package sqlite

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/creditd/creditd/store/sqlite/journal"
)

// JournalStats describe the journal and its materializer (Store.JournalStats).
type JournalStats = journal.Stats

// JournalStats returns the journal's statistics; a read-only store has
// none.
func (s *Store) JournalStats() JournalStats {
	if s.j == nil {
		return JournalStats{}
	}
	return s.j.Stats()
}

// journalDir is the journal directory of the database at path.
func journalDir(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".journal"
}

// openJournal opens the journal of s, which replays what the tables lack,
// and reads the ids the next batch assigns.
func (s *Store) openJournal(ctx context.Context, files journal.FS) error {
	var applied int64
	if err := s.w.QueryRowContext(ctx, `SELECT applied_seq FROM journal_state WHERE id = 1`).Scan(&applied); err != nil {
		return wrap("read journal state", err, "")
	}
	pending, err := s.ListPendingHolds(ctx)
	if err != nil {
		return err
	}
	s.tablePending = make(map[string]struct{}, len(pending))
	for _, p := range pending {
		s.tablePending[p.HoldID] = struct{}{}
	}
	s.j, err = journal.Open(ctx, journal.Config{Dir: journalDir(s.path), Applied: applied, Materialize: s.materialize, Files: files})
	if err != nil {
		return err
	}
	if err := s.w.QueryRowContext(ctx, `SELECT next_entry_id FROM journal_state WHERE id = 1`).Scan(&s.nextEntry); err != nil {
		return wrap("read entry ids", err, "")
	}
	if err := s.w.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) + 1 FROM jobs`).Scan(&s.nextJobSeq); err != nil {
		return wrap("read job seqs", err, "")
	}
	if err := s.w.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) + 1 FROM webhook_events`).Scan(&s.nextEvent); err != nil {
		return wrap("read event seqs", err, "")
	}
	return nil
}
