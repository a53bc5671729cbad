package ledger

import (
	"encoding/json"
	"slices"
	"time"
)

// JobStatus is the state of a generation job.
//
//	queued ──lease──► running ──complete──► succeeded (hold captured for the outputs delivered)
//	  ▲                 │ │ └──fail (final)──► failed (hold released)
//	  └─lease lost or ──┘ └──lease lost, attempts used up──► interrupted (hold released)
//	    retryable fail
//	queued | running ──cancel──► cancelled (hold released)
//	queued ──no worker for its action (job_no_worker_seconds_max)──► interrupted (hold released)
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

// WorkerPoll is when a worker last asked for work of an action (a lease
// poll listing it, or a heartbeat of a job of it), on any node.
type WorkerPoll struct {
	Action string
	At     time.Time
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
	// State is AssetStaged for a job's output until the job's complete
	// lists it, then AssetDelivered; an upload is delivered when saved.
	// Only delivered assets are the user's (Visible).
	State string `json:"-"`
	// Seq orders an account's assets for pagination (assigned by the store).
	Seq int64 `json:"-"`
}

// ListJobsParams pages an account's jobs newest first (by Seq).
type ListJobsParams struct {
	AccountID string
	BeforeSeq int64
	Limit     int
}

// ListAssetsParams pages an account's visible assets newest first (by Seq).
type ListAssetsParams struct {
	AccountID string
	BeforeSeq int64
	Limit     int
}

// DeliverOutputsParams marks outputs of a job delivered.
type DeliverOutputsParams struct {
	JobID    string
	AssetIDs []string
}

// ListStagedOutputsParams pages the staged outputs of ended (or missing)
// jobs, oldest first (by Seq), after AfterSeq.
type ListStagedOutputsParams struct {
	AfterSeq int64
	Limit    int
}

// Asset kinds.
const (
	AssetUpload = "upload"
	AssetOutput = "output"
)

// Asset states. An output is staged from its upload until its job's
// complete lists it (then delivered, and charged for in the same step as
// far as the user can tell: the job's outputs list is the authority). An
// output its job ended without listing — failed, cancelled, interrupted,
// superseded by a params change or simply not listed — stays staged, is
// never shown, and is deleted with its bytes by the engine's sweep.
const (
	AssetStaged    = "staged"
	AssetDelivered = "delivered"
)

// Visible reports whether the asset is its account's to see, list,
// download, delete and use as a job's source: uploads and delivered
// outputs, never staged ones.
func (a *Asset) Visible() bool { return a.State == AssetDelivered }

// StateOrDefault is the state a store saves: a.State, or when empty the
// state a new asset of its kind starts in (an output staged, an upload
// delivered).
func (a *Asset) StateOrDefault() string {
	switch {
	case a.State != "":
		return a.State
	case a.Kind == AssetOutput:
		return AssetStaged
	}
	return AssetDelivered
}

// Delivers reports whether the ended job j delivered output a: j
// succeeded and its outputs list a. An output of an active job is
// undecided; of any other ended job, it was never the user's.
func (j *Job) Delivers(a *Asset) bool {
	return j.ID == a.JobID && j.Status == JobSucceeded && slices.Contains(j.Outputs, a.ID)
}

// UploadUsage is what an account's uploads take: their number and the sum
// of their sizes in bytes.
type UploadUsage struct {
	Count int64 `json:"count"`
	Bytes int64 `json:"bytes"`
}

// AdmitUpload checks that one more upload of size bytes fits the account's
// upload budget (limits assets_per_account_max and
// asset_bytes_per_account_max), given its usage before it. Over either,
// the error has code quota_exceeded.
func (l *Limits) AdmitUpload(u UploadUsage, bytes int64) error {
	var e *Error
	switch {
	case u.Count >= l.AssetsPerAccountMax:
		e = Errorf(EQuotaExceeded, "the account already keeps the most uploads it may (%d); delete some to upload more", l.AssetsPerAccountMax)
	case bytes > l.AssetBytesPerAccountMax-u.Bytes:
		e = Errorf(EQuotaExceeded, "the account's uploads take %d of its %d bytes; this image of %d bytes does not fit; delete some to upload more",
			u.Bytes, l.AssetBytesPerAccountMax, bytes)
	default:
		return nil
	}
	e.Details = map[string]any{
		"uploads": u.Count, "uploads_max": l.AssetsPerAccountMax,
		"upload_bytes": u.Bytes, "upload_bytes_max": l.AssetBytesPerAccountMax,
	}
	return e
}

// UsesAsset reports whether the job needs the asset: the asset is one of
// the job's outputs, or a string anywhere in its params (params.source of
// the built-in actions, or any field of another action's params) is the
// asset's id. While the job is active, such an asset may not be deleted.
func (j *Job) UsesAsset(a *Asset) bool {
	if a.JobID == j.ID {
		return true
	}
	var params any
	if err := json.Unmarshal(j.Params, &params); err != nil {
		return false
	}
	return containsString(params, a.ID)
}

// containsString reports whether a decoded JSON value holds the string s
// (as a string value, at any depth; object keys do not count).
func containsString(v any, s string) bool {
	switch x := v.(type) {
	case string:
		return x == s
	case []any:
		for _, e := range x {
			if containsString(e, s) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if containsString(e, s) {
				return true
			}
		}
	}
	return false
}
