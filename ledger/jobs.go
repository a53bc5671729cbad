package ledger

import (
	"encoding/json"
	"time"
)

// JobStatus is the state of a generation job.
//
//	queued ──lease──► running ──complete──► succeeded (hold captured for the outputs delivered)
//	  ▲                 │ │ └──fail (final)──► failed (hold released)
//	  └─lease lost or ──┘ └──lease lost, attempts used up──► interrupted (hold released)
//	    retryable fail
//	queued | running ──cancel──► cancelled (hold released)
type JobStatus string

const (
	JobQueued      JobStatus = "queued"
	JobRunning     JobStatus = "running"
	JobSucceeded   JobStatus = "succeeded"
	JobFailed      JobStatus = "failed"
	JobCancelled   JobStatus = "cancelled"
	JobInterrupted JobStatus = "interrupted"
)

// Active reports whether the job still holds credits.
func (s JobStatus) Active() bool { return s == JobQueued || s == JobRunning }

// Job is a generation or edit. Its credits are a hold: reserved at start,
// captured for the outputs delivered, released on every other ending.
type Job struct {
	ID             string          `json:"id"`
	AccountID      string          `json:"account_id"`
	Action         string          `json:"action"`
	Category       Category        `json:"category"`
	Quantity       int64           `json:"quantity"`
	Params         json.RawMessage `json:"params"`
	ParamsVersion  int64           `json:"params_version"`
	Status         JobStatus       `json:"status"`
	HoldID         string          `json:"hold_id"`
	CostCredits    int64           `json:"cost"`
	ChargedCredits int64           `json:"charged"`
	Attempts       int64           `json:"attempts"`
	LeaseID        string          `json:"-"`
	LeaseExpiresAt time.Time       `json:"-"`
	// LeaseParamsVersion is the params version last delivered to the
	// worker holding the lease (at lease or heartbeat).
	LeaseParamsVersion int64     `json:"-"`
	Outputs            []string  `json:"outputs"`
	Error              string    `json:"error,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
	FinishedAt         time.Time `json:"-"`
	// Seq orders an account's jobs for pagination (assigned by the store).
	Seq int64 `json:"-"`
}

// MarshalJSON renders finished_at (null while active).
func (j Job) MarshalJSON() ([]byte, error) {
	type plain Job
	if j.Outputs == nil {
		j.Outputs = []string{}
	}
	return json.Marshal(struct {
		plain
		FinishedAt *time.Time `json:"finished_at"`
	}{plain(j), timePtr(j.FinishedAt)})
}

// Asset is a stored image: an upload or a job's output.
type Asset struct {
	ID          string    `json:"id"`
	AccountID   string    `json:"account_id"`
	JobID       string    `json:"job_id,omitempty"`
	Kind        string    `json:"kind"` // "upload" or "output"
	ContentType string    `json:"content_type"`
	Width       int64     `json:"width"`
	Height      int64     `json:"height"`
	Bytes       int64     `json:"bytes"`
	SHA256      string    `json:"sha256"`
	CreatedAt   time.Time `json:"created_at"`
	// Seq orders an account's assets for pagination (assigned by the store).
	Seq int64 `json:"-"`
}

// ListJobsParams pages an account's jobs newest first (by Seq).
type ListJobsParams struct {
	AccountID string
	BeforeSeq int64
	Limit     int
}

// ListAssetsParams pages an account's assets newest first (by Seq).
type ListAssetsParams struct {
	AccountID string
	BeforeSeq int64
	Limit     int
}
