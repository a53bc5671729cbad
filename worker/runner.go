package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Runner timings.
const (
	// DefaultLeaseWait is the long-poll of one lease call when
	// Runner.LeaseWait is zero.
	DefaultLeaseWait = 20 * time.Second
	// DefaultConcurrency is how many jobs run at once when
	// Runner.Concurrency is zero.
	DefaultConcurrency = 2

	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
	// pollMin spaces lease calls answered 204 at once (wait_seconds 0),
	// so an idle worker does not spin.
	pollMin = 100 * time.Millisecond
	// heartbeatMin and heartbeatMax clamp lease/3.
	heartbeatMin = 10 * time.Millisecond
	heartbeatMax = 10 * time.Second
	// heartbeatSkewed is the interval used when lease_expires_at is
	// already past by this worker's clock (clock skew).
	heartbeatSkewed = time.Second
	// transferTries bounds attempts of one input download or output upload
	// on transport errors and 5xx.
	transferTries = 4
)

// Output is one result image: Data encoded as ContentType (image/png,
// image/jpeg or image/webp; detected from Data when empty).
type Output struct {
	Data        []byte
	ContentType string
}

// Handler does one attempt of a job: it reads its inputs through input
// (an asset id such as params.source → bytes and Content-Type) and returns
// up to job.Quantity outputs; the Runner uploads them and completes the
// job, and the server charges for each output delivered. ctx is cancelled
// when the attempt must stop (job cancelled, lease lost, params changed,
// Run stopping); the handler should then return promptly (its result is
// ignored). An error fails the job: return a Failure to choose whether it
// is retried; otherwise an invalid-params error (*ledger.Error with code
// ledger.EInvalid, as imageops returns) is final and any other error is
// retried. A restarted attempt gets job with the new Params and
// ParamsVersion.
type Handler func(ctx context.Context, job Job, input func(assetID string) ([]byte, string, error)) ([]Output, error)

// Failure is a handler error that says whether the job should be retried
// (requeued while the server's attempts remain) or fail now. Both Failure
// and *Failure work as errors, wrapped or not.
type Failure struct {
	Msg       string
	Retryable bool
}

func (f Failure) Error() string { return f.Msg }

// Runner leases jobs for Actions and runs Handler on each, at most
// Concurrency at once. See Run.
type Runner struct {
	Client  *Client
	Actions []string
	Handler Handler
	// Concurrency is how many jobs run at once (default 2).
	Concurrency int
	// Logger receives one line per job event (default slog.Default()).
	Logger *slog.Logger
	// LeaseWait is the long-poll of each lease call (default 20 s, at most
	// 30 s; the protocol counts whole seconds, so under 1 s asks for an
	// immediate answer).
	LeaseWait time.Duration
}

// Run leases jobs until ctx is done. For each job it runs the Handler in
// its own goroutine and heartbeats every lease/3 (from lease_expires_at).
// A heartbeat that reports the job cancelled, or a 409 (lease lost),
// cancels the handler and drops the job; one that reports changed params
// (or a newer params_version) cancels the attempt and restarts the handler
// with the new params. A finished attempt's outputs are uploaded and the
// job completed; a 409 on complete triggers a heartbeat, which normally
// restarts the attempt with the changed params. A handler error is
// reported with fail (see Handler for retryable) after a heartbeat, which
// restarts the attempt instead when the params changed meanwhile (the
// error may be theirs: an input the new params no longer name is a 404).
// Transport errors and 5xx answers are retried with a backoff of
// 100 ms..5 s (heartbeat, complete and fail only while the lease lasts).
//
// When ctx is done Run stops leasing, cancels the running handlers, stops
// heartbeating, waits for the handlers to return and returns nil: the
// server requeues the abandoned jobs when their leases pass. Run returns an
// error only when the Runner is misconfigured or the server refuses the
// lease call itself (a 4xx such as a wrong key or an unknown action).
func (r *Runner) Run(ctx context.Context) error {
	if r.Client == nil || r.Handler == nil || len(r.Actions) == 0 {
		return errors.New("worker: Runner needs a Client, a Handler and Actions")
	}
	n := r.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	wait := r.LeaseWait
	if wait == 0 {
		wait = DefaultLeaseWait
	}
	log := r.logger()
	log.Info("worker started", "server", r.Client.BaseURL, "actions", r.Actions, "concurrency", n)
	defer log.Info("worker stopped")

	slots := make(chan struct{}, n)
	var wg sync.WaitGroup
	defer wg.Wait()
	var bo backoff
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		start := time.Now()
		l, err := r.Client.Lease(ctx, r.Actions, wait)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			<-slots
			var ae *APIError
			if errors.As(err, &ae) && !Temporary(err) {
				return fmt.Errorf("worker: lease refused: %w", err)
			}
			d := bo.next()
			log.Warn("lease failed; retrying", "error", err.Error(), "retry_in", d.String())
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		bo.reset()
		if l == nil {
			<-slots
			if !sleep(ctx, pollMin-time.Since(start)) {
				return nil
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			r.runJob(ctx, l, log)
		}()
	}
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// jobRun is one leased job; only runJob's goroutine touches it.
type jobRun struct {
	r       *Runner
	log     *slog.Logger
	job     Job // with the params of the current attempt
	leaseID string
	expires time.Time
	version int64
	bo      backoff // heartbeat retries
}

// attempt is one run of the handler (and uploads) for a params version.
type attempt struct {
	cancel context.CancelFunc
	// done is closed when the attempt's goroutine has returned; it only
	// closes after the previous attempt's done, so the last attempt's done
	// means every attempt of the job has returned.
	done   chan struct{}
	result chan attemptResult // buffered; nothing is sent when cancelled
}

type attemptResult struct {
	assets []string
	err    error
}

// verdict is what a heartbeat decided.
type verdict int

const (
	keepGoing verdict = iota
	retryBeat         // the heartbeat failed for now; retry soon
	stopJob
	restartJob
)

func (r *Runner) runJob(ctx context.Context, l *Lease, log *slog.Logger) {
	j := &jobRun{
		r: r, job: l.Job, leaseID: l.LeaseID, expires: l.LeaseExpiresAt, version: l.ParamsVersion,
		log: log.With("job", l.Job.ID, "action", l.Job.Action, "attempt", l.Job.Attempts),
	}
	if j.version == 0 {
		j.version = l.Job.ParamsVersion
	}
	j.job.ParamsVersion = j.version
	j.log.Info("job leased", "account", l.Job.AccountID, "quantity", l.Job.Quantity,
		"params_version", j.version, "lease_expires_at", l.LeaseExpiresAt)

	cur := j.start(ctx, nil)
	defer func() {
		cur.cancel()
		<-cur.done
	}()
	timer := time.NewTimer(j.interval())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			j.log.Info("worker stopping: job abandoned; the server requeues it after its lease")
			return
		case <-timer.C:
			switch j.beat(ctx) {
			case stopJob:
				return
			case restartJob:
				cur = j.restart(ctx, cur)
				timer.Reset(j.interval())
			case retryBeat:
				timer.Reset(max(min(j.bo.next(), time.Until(j.expires)), heartbeatMin))
			default:
				timer.Reset(j.interval())
			}
		case res := <-cur.result:
			if !j.settle(ctx, res) {
				return
			}
			cur = j.restart(ctx, cur)
			timer.Reset(j.interval())
		}
	}
}

// settle delivers an attempt's result: it completes the job or fails it,
// and reports true when a heartbeat says the params changed, so the job
// must restart; false when the job is over for this worker.
func (j *jobRun) settle(ctx context.Context, res attemptResult) (restart bool) {
	if res.err != nil {
		// An attempt can fail only because its params are stale (an input
		// the new params no longer name is 404): a heartbeat says whether
		// to restart instead.
		switch j.beat(ctx) {
		case restartJob:
			return true
		case stopJob:
			return false
		}
		if IsConflict(res.err) {
			j.log.Warn("lease lost while delivering; job dropped", "error", res.err.Error())
			return false
		}
		j.fail(ctx, res.err)
		return false
	}
	job, err := j.complete(ctx, res.assets)
	if err == nil {
		j.log.Info("job completed", "status", job.Status, "outputs", len(job.Outputs), "charged", job.Charged)
		return false
	}
	if !IsConflict(err) {
		if ctx.Err() == nil {
			j.fail(ctx, Failure{Msg: "complete refused: " + errMessage(err), Retryable: Temporary(err)})
		}
		return false
	}
	// 409: cancelled, lease lost, or params changed since the last
	// heartbeat. A heartbeat says which.
	j.log.Info("complete refused; checking the job", "error", err.Error())
	switch j.beat(ctx) {
	case restartJob:
		return true
	case keepGoing:
		j.fail(ctx, Failure{Msg: "complete refused: " + errMessage(err), Retryable: true})
	}
	return false
}

// interval is lease/3 from lease_expires_at.
func (j *jobRun) interval() time.Duration {
	d := time.Until(j.expires)
	if d <= 0 {
		return heartbeatSkewed
	}
	return min(max(d/3, heartbeatMin), heartbeatMax)
}

// start runs the handler for the current params in a new goroutine, after
// prev (already cancelled) has returned.
func (j *jobRun) start(ctx context.Context, prev *attempt) *attempt {
	actx, cancel := context.WithCancel(ctx)
	a := &attempt{cancel: cancel, done: make(chan struct{}), result: make(chan attemptResult, 1)}
	job := j.job
	go func() {
		defer close(a.done)
		if prev != nil {
			<-prev.done
		}
		if actx.Err() != nil {
			return
		}
		assets, err := j.r.attempt(actx, job, j.leaseID, j.log)
		if actx.Err() != nil {
			return
		}
		a.result <- attemptResult{assets, err}
	}()
	return a
}

func (j *jobRun) restart(ctx context.Context, cur *attempt) *attempt {
	j.log.Info("params changed; restarting", "params_version", j.version)
	cur.cancel()
	return j.start(ctx, cur)
}

// attempt runs the handler and uploads its outputs.
func (r *Runner) attempt(ctx context.Context, job Job, leaseID string, log *slog.Logger) ([]string, error) {
	input := func(assetID string) ([]byte, string, error) {
		var data []byte
		var ct string
		err := retry(ctx, time.Time{}, transferTries, func() error {
			var err error
			data, ct, err = r.Client.Input(ctx, job.ID, leaseID, assetID)
			return err
		})
		return data, ct, err
	}
	outs, err := callHandler(ctx, r.Handler, job, input)
	if err != nil || ctx.Err() != nil {
		return nil, err
	}
	if len(outs) == 0 {
		return nil, Failure{Msg: "the worker produced no outputs"}
	}
	if q := int(job.Quantity); q > 0 && len(outs) > q {
		log.Warn("handler returned more outputs than the job's quantity; extra dropped", "outputs", len(outs), "quantity", q)
		outs = outs[:q]
	}
	ids := make([]string, 0, len(outs))
	for i, o := range outs {
		ct := o.ContentType
		if ct == "" {
			ct = http.DetectContentType(o.Data)
		}
		var a *Asset
		err := retry(ctx, time.Time{}, transferTries, func() error {
			var err error
			a, err = r.Client.UploadOutput(ctx, job.ID, leaseID, o.Data, ct)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("upload output %d: %w", i+1, err)
		}
		ids = append(ids, a.ID)
	}
	return ids, nil
}

// callHandler runs h, turning a panic into a final failure.
func callHandler(ctx context.Context, h Handler, job Job, input func(string) ([]byte, string, error)) (outs []Output, err error) {
	defer func() {
		if p := recover(); p != nil {
			outs, err = nil, Failure{Msg: fmt.Sprintf("worker handler panicked: %v", p)}
		}
	}()
	return h(ctx, job, input)
}

// beat heartbeats once and applies the answer to j.
func (j *jobRun) beat(ctx context.Context) verdict {
	hb, err := j.r.Client.Heartbeat(ctx, j.job.ID, j.leaseID)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return stopJob
		case Temporary(err):
			if !time.Now().Before(j.expires) {
				j.log.Warn("lease expired before a heartbeat got through; job dropped", "error", err.Error())
				return stopJob
			}
			j.log.Warn("heartbeat failed; retrying", "error", err.Error())
			return retryBeat
		case IsConflict(err):
			j.log.Warn("lease lost; job dropped", "error", errMessage(err))
		default:
			j.log.Warn("heartbeat refused; job dropped", "error", err.Error())
		}
		return stopJob
	}
	j.bo.reset()
	if !hb.LeaseExpiresAt.IsZero() {
		j.expires = hb.LeaseExpiresAt
	}
	if hb.Cancelled {
		j.log.Info("job cancelled; work dropped")
		return stopJob
	}
	if s := hb.Job.Status; s != "" && s != string(ledger.JobRunning) {
		j.log.Info("job no longer running; work dropped", "status", s)
		return stopJob
	}
	if hb.Changed || hb.ParamsVersion > j.version {
		if hb.Job.ID != "" {
			j.job = hb.Job
		}
		if len(hb.Params) > 0 {
			j.job.Params = hb.Params
		}
		j.version = max(hb.ParamsVersion, j.version)
		j.job.ParamsVersion = j.version
		return restartJob
	}
	return keepGoing
}

// complete reports the outputs, retrying transport errors while the lease
// lasts (a repeat returns the same job).
func (j *jobRun) complete(ctx context.Context, assets []string) (*Job, error) {
	var job *Job
	err := retry(ctx, j.expires, 0, func() error {
		var err error
		job, err = j.r.Client.Complete(ctx, j.job.ID, j.leaseID, assets)
		return err
	})
	return job, err
}

// fail reports a failed attempt (nothing is charged).
func (j *jobRun) fail(ctx context.Context, cause error) {
	// The server keeps ledger.JobErrorBytesMax bytes of text without
	// invalid UTF-8 or NUL, and refuses a message with either.
	msg, again := ledger.CleanText(errMessage(cause), ledger.JobErrorBytesMax), retryable(cause)
	var job *Job
	err := retry(ctx, j.expires, 0, func() error {
		var err error
		job, err = j.r.Client.Fail(ctx, j.job.ID, j.leaseID, msg, again)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			j.log.Warn("fail not recorded; the server requeues the job after its lease", "cause", msg, "error", err.Error())
		}
		return
	}
	j.log.Info("job failed", "error", msg, "retryable", again, "status", job.Status)
}

// retryable decides a handler error's retry flag: a Failure says so; an
// invalid-params *ledger.Error or a 4xx answer (other than 408, 409, 429)
// is final; anything else is retried.
func retryable(err error) bool {
	var f Failure
	if errors.As(err, &f) {
		return f.Retryable
	}
	var fp *Failure
	if errors.As(err, &fp) && fp != nil {
		return fp.Retryable
	}
	var le *ledger.Error
	if errors.As(err, &le) {
		return le.Code != ledger.EInvalid
	}
	var ae *APIError
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
		return Temporary(err)
	}
	return true
}

// errMessage is the message reported with fail: a bare *ledger.Error or
// *APIError gives its message without the code; anything else (a Failure,
// whose Error is its Msg, or a wrapped error) its Error.
func errMessage(err error) string {
	switch e := err.(type) {
	case *ledger.Error:
		return e.Message
	case *APIError:
		return e.Message
	}
	return err.Error()
}

// retry calls fn until it succeeds or fails for good: a non-temporary
// error, ctx done, tries used up (0: no limit) or until passed (zero: no
// limit).
func retry(ctx context.Context, until time.Time, tries int, fn func() error) error {
	var bo backoff
	for i := 1; ; i++ {
		err := fn()
		if err == nil || !Temporary(err) || ctx.Err() != nil || (tries > 0 && i >= tries) {
			return err
		}
		d := bo.next()
		if !until.IsZero() && time.Now().Add(d).After(until) {
			return err
		}
		if !sleep(ctx, d) {
			return err
		}
	}
}

// backoff is a bounded exponential backoff with jitter.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = backoffMin
	} else {
		b.d = min(2*b.d, backoffMax)
	}
	return max(backoffMin, b.d/2+rand.N(b.d/2+1))
}

func (b *backoff) reset() { b.d = 0 }

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
