package jobs_test

import (
	"encoding/json"
	"testing"

	"github.com/creditd/creditd/jobs"
	"github.com/creditd/creditd/ledger"
)

func TestRepeat(t *testing.T) {
	done := &ledger.Job{ID: "job_1", Status: ledger.JobSucceeded, Outputs: []string{"a", "b"}}
	cancelled := &ledger.Job{ID: "job_2", Status: ledger.JobCancelled}
	failed := &ledger.Job{ID: "job_3", Status: ledger.JobFailed}
	interrupted := &ledger.Job{ID: "job_4", Status: ledger.JobInterrupted}
	for _, c := range []struct {
		j       *ledger.Job
		op      string
		outputs []string
		ok      bool
	}{
		{done, "complete", []string{"a", "b"}, true},
		{done, "complete", []string{"a"}, false},
		{done, "cancel", nil, false},
		{done, "fail", nil, false},
		{done, "update", nil, false},
		{done, "heartbeat", nil, true},
		{cancelled, "cancel", nil, true},
		{cancelled, "complete", []string{"a"}, false},
		{cancelled, "heartbeat", nil, true},
		{failed, "fail", nil, true},
		{interrupted, "fail", nil, true},
		{interrupted, "cancel", nil, false},
	} {
		got, err := jobs.Repeat(c.j, c.op, c.outputs)
		if c.ok {
			if err != nil || got != c.j {
				t.Errorf("%s of a %s job: %v, %v; want the job", c.op, c.j.Status, got, err)
			}
			continue
		}
		var e *ledger.Error
		if got != nil || ledger.ErrorCode(err) != ledger.EConflict {
			t.Errorf("%s of a %s job: %v, %v; want a conflict", c.op, c.j.Status, got, err)
		} else if e, _ = err.(*ledger.Error); e.Details["job"] != c.j {
			t.Errorf("%s of a %s job: details %v lack the job", c.op, c.j.Status, e.Details)
		}
	}
	_, err := jobs.Repeat(cancelled, "complete", []string{"a"})
	if want := "job job_2 was cancelled; the result is discarded and not charged"; ledger.ErrorMessage(err) != want {
		t.Errorf("complete of a cancelled job: %q, want %q", ledger.ErrorMessage(err), want)
	}
}

func TestParamsName(t *testing.T) {
	params := json.RawMessage(`{"source":"asset_1","layers":[{"mask":"asset_2"}],"asset_3":"key only","n":4}`)
	for id, want := range map[string]bool{
		"asset_1": true, "asset_2": true, "asset_3": false, "key only": true, "": false, "asset_4": false, "4": false,
	} {
		if got := jobs.ParamsName(params, id); got != want {
			t.Errorf("ParamsName(%q) = %v, want %v", id, got, want)
		}
	}
	if jobs.ParamsName(json.RawMessage(`{`), "asset_1") {
		t.Error("ParamsName of bad JSON names an asset")
	}
}
