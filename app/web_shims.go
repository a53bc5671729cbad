package app

// Use cases of the web app that the JSON API does not have, in the shape
// the pages call them.

import (
	"context"
	"encoding/json"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// LiveActions reports the actions a worker serves now.
func (s *Service) LiveActions(ctx context.Context) map[string]bool { return s.eng.LiveActions(ctx) }

// EnsureAccount creates an account with the usual sign-up and daily
// credits when it does not exist yet, and leaves an existing one as it is.
func (s *Service) EnsureAccount(ctx context.Context, id string) error {
	if _, err := s.eng.GetAccount(ctx, id); err == nil || ledger.ErrorCode(err) != ledger.ENotFound {
		return err
	}
	_, err := s.PutAccount(ctx, PutAccountRequest{ID: id})
	return err
}

// SetTimezone sets an existing account's time zone (an IANA name; its days
// and daily credits follow it).
func (s *Service) SetTimezone(ctx context.Context, accountID, tz string) error {
	_, err := s.PutAccount(ctx, PutAccountRequest{ID: accountID, Timezone: tz})
	return err
}

// SetLowBalanceThreshold sets an existing account's low_balance_threshold
// (0..ledger.LowBalanceThresholdMax; what PUT /v1/accounts/{id} sets): the
// line of its credits.low alert and of the web app's low-balance banner.
// An unknown account is not_found, not created.
func (s *Service) SetLowBalanceThreshold(ctx context.Context, accountID string, threshold int64) error {
	if _, err := s.eng.GetAccount(ctx, accountID); err != nil {
		return err
	}
	_, err := s.PutAccount(ctx, PutAccountRequest{ID: accountID, LowBalanceThreshold: &threshold})
	return err
}

// CreateJobOnce creates a job of an account and holds its price, and
// returns its id. With a key (a form's one-time key, in the caller's
// namespace), the same key again for the same job returns the first job's
// id instead of creating another; for another job it is
// idempotency_mismatch. The caller validated the params
// (ValidateJobParams) under LockAssetsForJob.
func (s *Service) CreateJobOnce(ctx context.Context, accountID string, p ledger.CreateJobParams, key string) (jobID string, err error) {
	var idem *Idempotency
	if key != "" {
		fp, err := json.Marshal(p)
		if err != nil {
			return "", err
		}
		idem = &Idempotency{Principal: "user:" + accountID, Key: key, Fingerprint: "web " + string(fp), Field: "idem"}
	}
	out, err := write(s, idem, renderJobStatus(201), func(i *engine.Idempotency[*ledger.Job]) (engine.Outcome[*ledger.Job], error) {
		return s.eng.CreateJob(ctx, engine.CreateJobParams{AccountID: accountID, CreateJobParams: p, Idem: i})
	})
	if err != nil {
		return "", err
	}
	if !out.Replayed {
		return out.Value.ID, nil
	}
	var j struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(out.Body, &j)
	return j.ID, nil
}

// renderJobStatus renders a job with a status.
func renderJobStatus(status int) func(*ledger.Job) (int, []byte) {
	return func(j *ledger.Job) (int, []byte) { return status, mustJSON(j) }
}

// CancelJobByID cancels a job (its hold is released).
func (s *Service) CancelJobByID(ctx context.Context, jobID string) error {
	_, err := s.CancelJob(ctx, CancelJobRequest{JobID: jobID})
	return err
}

// ChangeJobParams changes a queued or running job's params, validated by
// the caller with ValidateJobParams under LockAssetsForJob.
func (s *Service) ChangeJobParams(ctx context.Context, jobID string, params json.RawMessage) error {
	_, err := s.eng.UpdateJobParams(ctx, engine.JobOp{JobID: jobID, Params: params})
	return err
}

// Feedback reads an account's answer on a help article (ok false
// when it has none).
func (s *Service) Feedback(ctx context.Context, accountID, article string) (ledger.Feedback, bool, error) {
	return s.eng.Feedback(ctx, accountID, article)
}

// SaveFeedback records an account's answer on a help article (whether it
// helped, and a comment), replacing its earlier one.
func (s *Service) SaveFeedback(ctx context.Context, accountID, article string, helpful bool, comment string) (ledger.Feedback, error) {
	return s.eng.SaveFeedback(ctx, engine.SaveFeedbackParams{AccountID: accountID, Article: article, Helpful: helpful, Comment: comment})
}
