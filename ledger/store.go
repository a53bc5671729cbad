package ledger

import (
	"context"
	"time"
)

// Store is the persistence seam. Stores are plain persistence: one method
// per query, no business decisions, driver errors translated to *Error
// (sql.ErrNoRows → ErrNotFound; an error the data written caused, not the
// store, also carries ErrBadData). Times are stored with microsecond
// precision in UTC; a zero time.Time is stored as "none" and read back as
// the zero time. Every implementation passes store/storetest.
type Store interface {
	// Exclusive reports whether this process is the only writer (SQLite):
	// the engine may then trust its in-memory state without re-reading.
	// Otherwise other processes may write too (PostgreSQL), and the engine
	// coordinates with them through the store: it reads committed state
	// from the store, and its batches lock their accounts and idempotency
	// keys (Batch.LockAndBumpAccounts, Batch.LockIdempotencyKeys). The
	// answer is fixed for the store's life: the engine asks once.
	Exclusive() bool

	// Reads of committed data, outside any batch.
	GetAccount(ctx context.Context, id string) (*Account, error)
	LoadState(ctx context.Context, accountID string) (*State, error)
	GetHold(ctx context.Context, id string) (*Hold, error)
	ListEntries(ctx context.Context, p ListEntriesParams) ([]Entry, error)
	ListPendingHolds(ctx context.Context) ([]HoldExpiry, error)
	GetIdempotency(ctx context.Context, principal, key string) (*IdempotencyRecord, error)
	DeleteIdempotencyBefore(ctx context.Context, before time.Time) (int64, error)

	// Jobs and assets. GetJob/ListJobs read committed rows; ListActiveJobs
	// returns every queued or running job (for the lease queue at start).
	GetJob(ctx context.Context, id string) (*Job, error)
	ListJobs(ctx context.Context, p ListJobsParams) ([]Job, error)
	ListActiveJobs(ctx context.Context) ([]Job, error)
	// SaveAsset inserts an asset's metadata (its bytes are in a blob store)
	// and sets a.Seq. Assets are immutable until deleted, but for an
	// output's State (DeliverOutputs).
	SaveAsset(ctx context.Context, a *Asset) error
	// GetAsset reads an asset in any state.
	GetAsset(ctx context.Context, id string) (*Asset, error)
	// ListAssets lists only delivered assets (uploads and delivered outputs).
	ListAssets(ctx context.Context, p ListAssetsParams) ([]Asset, error)
	// DeliverOutputs sets State AssetDelivered on those of p.AssetIDs that
	// are outputs of job p.JobID; other ids are left alone. Marking an
	// output again changes nothing.
	DeliverOutputs(ctx context.Context, p DeliverOutputsParams) error
	// ListStagedOutputs lists staged outputs whose job is ended (not
	// queued or running in the committed jobs) or does not exist, oldest
	// first (by Seq) after p.AfterSeq, at most p.Limit (> 0).
	ListStagedOutputs(ctx context.Context, p ListStagedOutputsParams) ([]Asset, error)
	// SaveUpload inserts an upload's metadata as SaveAsset does, but only
	// after p.Admit accepted the account's upload usage before it. The
	// usage read, Admit and the insert are atomic against every other
	// SaveUpload of the account, on every node sharing the store; an error
	// from Admit is returned as is, with nothing inserted.
	SaveUpload(ctx context.Context, p SaveUploadParams) error
	// UploadUsage counts an account's uploads (kind "upload") and sums
	// their bytes; an account without any has zero usage. Outputs, staged
	// or delivered, do not count.
	UploadUsage(ctx context.Context, accountID string) (UploadUsage, error)
	// DeleteAsset deletes an asset's metadata (the caller deletes its
	// bytes from the blob store afterwards); a missing id is ErrNotFound.
	DeleteAsset(ctx context.Context, id string) error

	// Credential revocations (see CredentialRevocation), written outside
	// any batch, each in its own durable transaction.
	// RevokeAccountCredentials moves an account's credential generation up
	// by one (from 0 when it has none) and records at as its RevokedAt.
	RevokeAccountCredentials(ctx context.Context, accountID string, at time.Time) (*CredentialRevocation, error)
	// RevokeCredential records a revoked credential; revoking an id again
	// keeps the first record.
	RevokeCredential(ctx context.Context, c RevokedCredential) error
	// GetCredentialStatus reads an account's generation (0 when it never
	// revoked) and whether a credential id is revoked, in one query.
	GetCredentialStatus(ctx context.Context, p CredentialStatusParams) (CredentialStatus, error)
	// DeleteRevokedCredentialsBefore deletes the revoked credentials that
	// expired before before and returns how many.
	DeleteRevokedCredentialsBefore(ctx context.Context, before time.Time) (int64, error)

	// Help article feedback (see Feedback), written outside any batch,
	// each save in its own durable transaction.
	// SaveFeedback inserts an account's feedback on an article or
	// replaces it (Helpful, Comment, UpdatedAt; the stored CreatedAt of
	// the first answer is kept and set in f), and sets f.Seq greater than
	// every other feedback's.
	SaveFeedback(ctx context.Context, f *Feedback) error
	// GetFeedback reads an account's feedback on an article; none is
	// ErrNotFound.
	GetFeedback(ctx context.Context, k FeedbackKey) (*Feedback, error)
	// ListFeedback pages feedback by Seq descending.
	ListFeedback(ctx context.Context, p ListFeedbackParams) ([]Feedback, error)
	// Worker polls (WorkerPoll), written outside any batch. RecordWorkerPolls
	// raises each action's stored poll time to at least the given one (a
	// later time already stored is kept); ListWorkerPolls returns every
	// action's, in no particular order.
	RecordWorkerPolls(ctx context.Context, polls []WorkerPoll) error
	ListWorkerPolls(ctx context.Context) ([]WorkerPoll, error)

	// Webhook events (the outbox), written by batches (InsertEvents).
	// EventsAfter returns up to limit (> 0) committed events with Seq
	// above afterSeq, oldest first; GetEvent reads one by id (none is
	// ErrNotFound).
	EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]WebhookEvent, error)
	GetEvent(ctx context.Context, id string) (*WebhookEvent, error)
	// ListGrantDeadlines returns the buckets with remaining credits and an
	// expiry, other than daily ones, whose expiry is at or before before,
	// soonest first, for the sweeper of time-driven changes (expiries and
	// their notices). A zero before means all of them.
	ListGrantDeadlines(ctx context.Context, before time.Time) ([]Grant, error)

	// Reads for verify.
	ListAccountIDs(ctx context.Context, p ListAccountIDsParams) ([]string, error)
	LoadHistory(ctx context.Context, accountID string) (*History, error)

	// BeginBatch starts the write transaction of one batch.
	// Outbound webhooks (see WebhookStore).
	WebhookStore

	BeginBatch(ctx context.Context) (Batch, error)
	// Close releases the store; calling it again returns nil, and a read
	// after it fails.
	Close() error
}

// Batch is one write transaction. Save* methods upsert whole rows, except
// that a grant's AccountID, Source, Reference and CreatedAt are fixed when
// it is first saved: a store may keep those first values (SQLite does, so
// that an update does not rewrite the grant's index entries), and callers
// never change them.
//
// Every store implements every method. Those that coordinate writers
// (LockAccounts, LockAndBumpAccounts, LockIdempotencyKeys) lock nothing on
// an exclusive store, whose batches run one at a time, but still answer as
// documented; the engine calls the locks only on a store that is not
// Exclusive.
type Batch interface {
	// LockAccounts locks the rows of the existing accounts among ids (in
	// id order) and returns their stored versions: the lock alone, which
	// LockAndBumpAccounts, the engine's, extends.
	LockAccounts(ctx context.Context, ids []string) (map[string]int64, error)
	// LockAndBumpAccounts does what LockAccounts does and, in the same
	// batch, increments the stored version of every account it locked; it
	// returns the versions before the increment. The engine then saves an
	// account row only when more than its version changed: a charge, which
	// changes buckets and holds, costs no account write of its own.
	LockAndBumpAccounts(ctx context.Context, ids []string) (map[string]int64, error)
	// LockIdempotencyKeys locks idempotency keys (principal, key) until the
	// batch ends; keys come in any order, possibly repeated. A batch of
	// another node that locks one of them waits until this one commits or
	// rolls back. The engine locks its batch's keys after the accounts and
	// before it reads their records, so that two nodes' batches carrying
	// one key (for different accounts, whose row locks do not meet) apply
	// it once: the second waits for the first to commit, then finds its
	// record. An exclusive store has nothing to lock and returns nil.
	LockIdempotencyKeys(ctx context.Context, keys [][2]string) error
	LoadState(ctx context.Context, accountID string) (*State, error)
	// LoadStates is LoadState for many accounts, with the batch's own
	// writes on top; accounts that do not exist are absent from the map.
	// The engine uses it for the accounts of a batch it has no snapshot of,
	// before the batch writes anything; a store answers it in as few
	// rounds as it can.
	LoadStates(ctx context.Context, accountIDs []string) (map[string]*State, error)
	GetHold(ctx context.Context, id string) (*Hold, error)
	GetGrantByReference(ctx context.Context, p GrantReferenceParams) (*Grant, error)
	GetIdempotency(ctx context.Context, principal, key string) (*IdempotencyRecord, error)

	SaveAccounts(ctx context.Context, accounts []*Account) error
	SaveGrants(ctx context.Context, grants []*Grant) error
	SaveHolds(ctx context.Context, holds []*Hold) error
	InsertEntries(ctx context.Context, entries []Entry) error
	SaveIdempotency(ctx context.Context, records []*IdempotencyRecord) error
	// SaveJobs upserts jobs; a new job gets a Seq greater than every
	// existing job's, kept on update.
	SaveJobs(ctx context.Context, jobs []*Job) error
	GetJob(ctx context.Context, id string) (*Job, error)
	// InsertEvents appends webhook events (the outbox) and assigns their
	// seqs, written back to events[i].Seq: ascending in slice order, above
	// every seq committed before, in commit order (WebhookEvent.Seq).
	InsertEvents(ctx context.Context, events []WebhookEvent) error

	Commit() error
	Rollback() error
}

// ListEntriesParams pages an account's entries newest first. BeforeID 0
// starts at the newest.
type ListEntriesParams struct {
	AccountID string
	BeforeID  int64
	Limit     int
}

// SaveUploadParams is an upload to save within the account's budget.
type SaveUploadParams struct {
	Asset *Asset
	Admit func(UploadUsage) error
}

// ListAccountIDsParams pages account ids in ascending order.
type ListAccountIDsParams struct {
	After string
	Limit int
}

// GrantReferenceParams finds a grant by its (account, source, reference).
type GrantReferenceParams struct {
	AccountID string
	Source    Source
	Reference string
}

// HoldExpiry locates a pending hold for the expiry sweeper.
type HoldExpiry struct {
	HoldID    string
	AccountID string
	ExpiresAt time.Time
	// Scanned marks an entry the engine found in a shared-store scan (a
	// hold or lease another node may own); stores leave it false.
	Scanned bool
}

// IdempotencyRecord is a stored response for an Idempotency-Key.
type IdempotencyRecord struct {
	Principal   string
	Key         string
	Fingerprint string
	Status      int
	Body        []byte
	CreatedAt   time.Time
}

// History is everything stored for one account, for Verify: all grants
// (live or exhausted), all holds, and all entries in ascending id order.
type History struct {
	Account Account
	Grants  []*Grant
	Holds   []*Hold
	Entries []Entry
}
