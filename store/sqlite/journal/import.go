package journal

import (
	"errors"
	"fmt"
)

// Record is a journal record: an encoded ChangeSet and its seq.
type Record struct {
	Seq  int64
	Data []byte
}

// Import appends records, in seq order, to the journal in dir, whose
// tables hold batches up to applied: the upgrade of a journal kept in an
// older format. Records the journal already has (an Import cut short by a
// crash, run again) are skipped; the rest must follow on. Each must decode
// as the ChangeSet of its seq.
func Import(dir string, applied int64, recs []Record) error {
	f, have, err := openFile(nil, dir, applied, noCut, segmentBytes)
	if err != nil {
		return err
	}
	next := applied + 1
	if len(have) > 0 {
		next = have[len(have)-1].seq + 1
	}
	for _, r := range recs {
		if r.Seq < next {
			continue
		}
		c, err := DecodeChangeSet(r.Data)
		if err == nil && (r.Seq != next || c.Seq != r.Seq) {
			err = fmt.Errorf("record %d (seq %d) found where %d was expected", r.Seq, c.Seq, next)
		}
		if err == nil {
			err = f.append(r.Seq, r.Data)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("journal: import: %w", err), f.close())
		}
		next++
	}
	return f.close()
}
