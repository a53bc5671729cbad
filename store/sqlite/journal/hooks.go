package journal

import "fmt"

// Tune changes the journal's bounds (tests lower them).
func (j *Journal) Tune(f func(*Tuning)) {
	j.mu.Lock()
	f(&j.tuning)
	j.mu.Unlock()
	j.wake()
}

// WrapMaterialize replaces the journal's MaterializeFunc by wrap of it
// (tests stall or fail the materializer with it). Call it before the
// batches it should see are appended.
func (j *Journal) WrapMaterialize(wrap func(MaterializeFunc) MaterializeFunc) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.materialize = wrap(j.materialize)
}

// Progress returns a channel closed when the materializer next finishes a
// transaction, and its last failure (nil after a success).
func (j *Journal) Progress() (advanced <-chan struct{}, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.advanced, j.err
}

// Segments returns the journal's live segments, oldest first.
func (j *Journal) Segments() []Segment {
	j.fileMu.Lock()
	defer j.fileMu.Unlock()
	return j.f.segments()
}

// CheckPending checks the journal's bookkeeping: pending batches have
// consecutive seqs, the pending rows count is theirs, and every overlay row
// points into the pending batch its seq names.
func (j *Journal) CheckPending() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	rows := 0
	for i, c := range j.pending {
		if c.Seq != j.pending[0].Seq+int64(i) {
			return fmt.Errorf("pending batch %d has seq %d after %d", i, c.Seq, j.pending[0].Seq)
		}
		rows += c.Rows()
	}
	if rows != j.pendingRows {
		return fmt.Errorf("pendingRows = %d, the pending batches hold %d", j.pendingRows, rows)
	}
	batch := func(seq int64) *ChangeSet {
		if len(j.pending) == 0 || seq < j.pending[0].Seq || seq > j.pending[len(j.pending)-1].Seq {
			return nil
		}
		return j.pending[seq-j.pending[0].Seq]
	}
	for id, v := range j.ov.accounts {
		if c := batch(v.seq); c == nil || !pointsInto(c.Accounts, v.v) {
			return fmt.Errorf("overlay account %s does not point into batch %d", id, v.seq)
		}
	}
	for id, v := range j.ov.holds {
		if c := batch(v.seq); c == nil || !pointsInto(c.Holds, v.v) {
			return fmt.Errorf("overlay hold %s does not point into batch %d", id, v.seq)
		}
	}
	return nil
}

// pointsInto reports whether p is the address of an element of rows.
func pointsInto[T any](rows []T, p *T) bool {
	for i := range rows {
		if &rows[i] == p {
			return true
		}
	}
	return false
}
