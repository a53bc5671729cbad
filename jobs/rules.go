package jobs

import (
	"encoding/json"
	"slices"

	"github.com/creditd/creditd/ledger"
)

// Repeat answers a job operation (op: "complete", "cancel", "fail",
// "heartbeat" or "update") on j, a job that is no longer active: the same
// job when the operation repeats how it ended (a complete with the same
// outputs, a cancel of a cancelled job, a fail of a failed or interrupted
// one) or is a heartbeat (the worker learns that the job ended), else a
// conflict whose details carry the job. Nothing is charged again.
func Repeat(j *ledger.Job, op string, outputs []string) (*ledger.Job, error) {
	switch {
	case op == "complete" && j.Status == ledger.JobSucceeded && slices.Equal(j.Outputs, outputs):
		return j, nil
	case op == "cancel" && j.Status == ledger.JobCancelled:
		return j, nil
	case op == "fail" && (j.Status == ledger.JobFailed || j.Status == ledger.JobInterrupted):
		return j, nil
	case op == "heartbeat":
		return j, nil
	}
	e := ledger.Errorf(ledger.EConflict, "job %s is %s", j.ID, j.Status)
	if op == "complete" && j.Status == ledger.JobCancelled {
		e.Message = "job " + j.ID + " was cancelled; the result is discarded and not charged"
	}
	e.Details = map[string]any{"job": j}
	return nil, e
}

// ParamsName reports whether a job's params hold the string id as a value,
// at any depth (object keys do not count): the assets a leased job's
// worker may read as its inputs.
func ParamsName(params json.RawMessage, id string) bool {
	var v any
	if id == "" || json.Unmarshal(params, &v) != nil {
		return false
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case string:
			return x == id
		case []any:
			return slices.ContainsFunc(x, walk)
		case map[string]any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}
