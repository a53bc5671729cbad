package sqlite

// journalFailed is called with the error of a failed journal append. The
// journal refuses appends from then on (journal.Journal.Failed).
func (s *Store) journalFailed(error) {}
