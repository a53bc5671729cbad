package web

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/internal/httpx"
	"github.com/creditd/creditd/ledger"
)

// notices are the messages a redirect can ask the next page to show.
var notices = map[string]string{
	"uploaded":    "Image uploaded.",
	"updated":     "Settings changed. The new version is on its way; changing costs nothing.",
	"deleted":     "Image deleted.",
	"timezone":    "Time zone saved. Today's free credits keep their refresh time; from the next refresh, they follow the new time zone.",
	"low-balance": "Low-balance warning saved.",
}

// createData is the Create page.
type createData struct {
	Actions []action
	Action  *action
	Source  *ledger.Asset
	Recent  []ledger.Asset
	Values  map[string]string
	// Quote prices the chosen action (quantity 1 until chosen otherwise).
	Quote    *ledger.Quote
	Quantity int64
	Idem     string
	CSRF     string
}

// Ready reports whether everything needed to start is there.
func (d *createData) Ready() bool {
	return d.Action != nil && (!d.Action.Image || d.Source != nil)
}

// UploadBytesMax bounds one uploaded image.
func (d *createData) UploadBytesMax() int64 { return imageops.UploadBytesMax }

// Unavailable reports whether the chosen action has no worker right now.
func (d *createData) Unavailable() bool { return d.Action != nil && !d.Action.Available }

// Affordable reports whether the balance covers the cost.
func (d *createData) Affordable() bool { return d.Quote == nil || d.Quote.Affordable }

// QuantityOptions lists the choices for the number of outputs.
func (d *createData) QuantityOptions() []int64 {
	var out []int64
	for i := int64(1); d.Action != nil && i <= d.Action.QuantityMax; i++ {
		out = append(out, i)
	}
	return out
}

func (a *App) create(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	d := &createData{Action: a.action(q.Get("action"))}
	if src := q.Get("source"); src != "" {
		d.Source = a.ownAsset(r, s, src)
	}
	if d.Action != nil {
		d.Values = d.Action.defaults(d.Source)
		d.Action.fromQuery(d.Values, q)
	}
	d.Quantity, _ = strconv.ParseInt(q.Get("quantity"), 10, 64)
	a.renderCreate(w, r, s, http.StatusOK, d, view{Notice: notices[q.Get("notice")]})
}

// renderCreate fills in what the Create page shows around the form.
func (a *App) renderCreate(w http.ResponseWriter, r *http.Request, s *session, status int, d *createData, v view) {
	d.Actions = a.actions()
	live := a.svc.LiveActions(r.Context())
	for i := range d.Actions {
		d.Actions[i].Available = live[d.Actions[i].Name]
	}
	if d.Action != nil {
		d.Action.Available = live[d.Action.Name]
	}
	d.CSRF = s.CSRF
	d.Idem = rand.Text()
	if d.Values == nil {
		d.Values = map[string]string{}
	}
	if d.Action != nil {
		if d.Quantity < 1 || d.Quantity > d.Action.QuantityMax {
			d.Quantity = 1
		}
		if quote, err := a.svc.Quote(r.Context(), app.QuoteRequest{AccountID: s.Account, Action: d.Action.Name, Quantity: d.Quantity}); err == nil {
			d.Quote = &quote
		}
	}
	if pg, err := a.svc.Assets(r.Context(), app.PageRequest{AccountID: s.Account, Limit: recentImagesMax}); err == nil {
		d.Recent = pg.Items
	}
	v.Title, v.Nav, v.Page = "Create", "create", d
	a.render(w, r, status, "create", s, v)
}

// ownAsset returns a visible asset of the session's account (never a
// staged output), or nil.
func (a *App) ownAsset(r *http.Request, s *session, id string) *ledger.Asset {
	as, err := a.svc.Asset(r.Context(), id, func(acct string) bool { return acct == s.Account })
	if err != nil {
		return nil
	}
	return as
}

func (a *App) upload(w http.ResponseWriter, r *http.Request, s *session) {
	ac := a.action(r.PostFormValue("action"))
	// The upload rate is taken once the account is known, before the
	// image is read.
	as, err := a.svc.Upload(r.Context(), app.UploadRequest{AccountID: s.Account, Read: func() ([]byte, string, error) {
		if err := a.svc.LimitUpload(s.Account); err != nil {
			return nil, "", err
		}
		return readUpload(r)
	}})
	if err != nil {
		httpx.SetRetryAfter(w, err)
		if ledger.ErrorCode(err) == ledger.EQuotaExceeded {
			err = ledger.Errorf(ledger.EQuotaExceeded, "Your uploads are full (at most %d images, %s in all). Delete uploads you no longer need in Gallery, Your uploads, then try again.",
				a.cfg.Limits.AssetsPerAccountMax, kib(a.cfg.Limits.AssetBytesPerAccountMax))
		}
		to := url.Values{}
		if ac != nil {
			to.Set("action", ac.Name)
		}
		a.back(w, r, withValues("/app/create", to, nil), err)
		return
	}
	to := url.Values{"source": {as.ID}, "notice": {"uploaded"}}
	if ac != nil {
		to.Set("action", ac.Name)
	}
	http.Redirect(w, r, "/app/create?"+to.Encode(), http.StatusSeeOther)
}

func (a *App) startJob(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	d := &createData{Action: a.action(f.Get("action")), Values: map[string]string{}}
	for k := range f {
		d.Values[k] = f.Get(k)
	}
	if src := f.Get("source"); src != "" {
		d.Source = a.ownAsset(r, s, src)
	}
	d.Quantity, _ = strconv.ParseInt(f.Get("quantity"), 10, 64)
	again := func(err error) {
		// Back to the form, with what was sent.
		a.back(w, r, withValues("/app/create", url.Values{}, f), err)
	}
	if d.Action == nil {
		again(ledger.Errorf(ledger.EInvalid, "Choose what you want to do first."))
		return
	}
	if d.Quantity < 1 || d.Quantity > d.Action.QuantityMax {
		d.Quantity = 1
	}
	source := ""
	if d.Source != nil {
		source = d.Source.ID
	}
	defer a.svc.LockAssetsForJob(s.Account)()
	params, err := d.Action.params(f, source)
	if err == nil {
		params, err = a.svc.ValidateJobParams(r.Context(), s.Account, d.Action.Name, params)
	}
	if err != nil {
		again(err)
		return
	}
	jp := ledger.CreateJobParams{Action: d.Action.Name, Quantity: d.Quantity, Params: params}
	// The form's one-time key makes a double submit start one job.
	key := ""
	if k := f.Get("idem"); k != "" && len(k) <= 64 {
		key = "web-start:" + k
	}
	id, err := a.svc.CreateJobOnce(r.Context(), s.Account, jp, key)
	if ledger.ErrorCode(err) == ledger.EIdempotencyMismatch {
		// An old form sent again with other settings: a new job.
		id, err = a.svc.CreateJobOnce(r.Context(), s.Account, jp, "")
	}
	if err != nil {
		if ledger.ErrorCode(err) == ledger.EInsufficient {
			err = ledger.Errorf(ledger.EInsufficient, "You don't have enough credits for this: it costs %d.", d.Action.UnitPrice*d.Quantity)
		}
		again(err)
		return
	}
	http.Redirect(w, r, "/app/jobs/"+url.PathEscape(id), http.StatusSeeOther)
}

// jobData is the job page.
type jobData struct {
	Job     ledger.Job
	Action  *action
	Label   string
	Summary string
	Source  *ledger.Asset
	Outputs []ledger.Asset
	Values  map[string]string
	CSRF    string
	// Unserved: the job is queued and no worker serves its action now;
	// NoWorkerMinutes is limits.job_no_worker_seconds_max in minutes.
	Unserved        bool
	NoWorkerMinutes int64
}

// jobStep is one step of a job's timeline.
type jobStep struct {
	Name, Label string
	// State is done, current, pending (not yet) or skipped (never
	// reached: the job ended before a worker took it).
	State string
	// Class is the final step's outcome class (ok, off).
	Class string
}

// Steps is the job's timeline: queued, working, and how it ended. A job
// that ended before any worker took it (cancelled while queued, or
// interrupted waiting) skips "Working".
func (d *jobData) Steps() []jobStep {
	j := d.Job
	queued := jobStep{Name: "queued", Label: "Queued", State: "done"}
	working := jobStep{Name: "working", Label: "Working", State: "done"}
	end := jobStep{Name: "end", Label: "Done", State: "pending"}
	switch j.Status {
	case ledger.JobQueued:
		queued.State, working.State = "current", "pending"
	case ledger.JobRunning:
		working.State = "current"
	default:
		end.State, end.Label, end.Class = "current", statusLabel(j.Status), statusClass(j.Status)
		if j.Attempts == 0 {
			working.State = "skipped"
		}
		if j.Status == ledger.JobSucceeded && int64(len(j.Outputs)) < j.Quantity {
			end.Label = fmt.Sprintf("Delivered %d of %d", len(j.Outputs), j.Quantity)
		}
	}
	return []jobStep{queued, working, end}
}

// Returned is what an ended job gave back of what it reserved (the price
// of the results it did not deliver).
func (d *jobData) Returned() int64 {
	if d.Job.Status.Active() {
		return 0
	}
	return d.Job.CostCredits - d.Job.ChargedCredits
}

// outcome is the one sentence that says how an ended job ended.
type outcome struct {
	Class, Text string
}

// Outcome says how the job ended and what it cost, once; nil while it is
// active or when it delivered everything (the results say it).
func (d *jobData) Outcome() *outcome {
	j := d.Job
	switch j.Status {
	case ledger.JobSucceeded:
		if back := d.Returned(); back > 0 {
			missing := j.Quantity - int64(len(j.Outputs))
			return &outcome{"notice", fmt.Sprintf("Delivered %d of %d. You were charged %s credits for what you got; the %s credits reserved for the %s not delivered came back to you.",
				len(j.Outputs), j.Quantity, credits(j.ChargedCredits), credits(back), strconv.FormatInt(missing, 10)+" "+plural(missing, "result", "results"))}
		}
	case ledger.JobFailed:
		text := "This didn't work"
		if j.Error != "" {
			text += ": " + j.Error
		}
		return &outcome{"alert", text + ". You were not charged."}
	case ledger.JobCancelled:
		if j.Attempts == 0 {
			return &outcome{"notice", "Cancelled before it started. You were not charged."}
		}
		return &outcome{"notice", "Cancelled while it was being made. You were not charged; a result that arrives now is discarded."}
	case ledger.JobInterrupted:
		if j.Attempts == 0 {
			return &outcome{"alert", "This was stopped before anyone started it. You were not charged; try again."}
		}
		return &outcome{"alert", "This was interrupted before it finished. You were not charged; try again."}
	}
	return nil
}

// Active reports whether the job may still change.
func (d *jobData) Active() bool { return d.Job.Status.Active() }

// NoWorker reports whether the job ended because no worker served its
// action (ledger.JobErrorNoWorker).
func (d *jobData) NoWorker() bool {
	return d.Job.Status == ledger.JobInterrupted && d.Job.Error == ledger.JobErrorNoWorker
}

// ownJob reads a job of the session's account; other accounts' jobs are
// not found.
func (a *App) ownJob(r *http.Request, s *session) (ledger.Job, error) {
	id := r.PathValue("id")
	return a.svc.Job(r.Context(), id, func(acct string) bool { return acct == s.Account })
}

func (a *App) jobPage(w http.ResponseWriter, r *http.Request, s *session) {
	j, err := a.ownJob(r, s)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	var values map[string]string
	if ac := a.action(j.Action); ac != nil && ac.inQuery(r.URL.Query()) {
		// The change form sent back with its values (a refused change).
		values = ac.values(j.Params)
		ac.fromQuery(values, r.URL.Query())
	}
	a.renderJob(w, r, s, http.StatusOK, j, values, view{Notice: notices[r.URL.Query().Get("notice")]})
}

func (a *App) renderJob(w http.ResponseWriter, r *http.Request, s *session, status int, j ledger.Job, values map[string]string, v view) {
	d := &jobData{Job: j, Action: a.action(j.Action), Label: actionLabel(j.Action), CSRF: s.CSRF}
	if d.Action != nil {
		d.Summary = d.Action.summary(j.Params)
		if values == nil {
			values = d.Action.values(j.Params)
		}
		if src := d.Action.values(j.Params)["source"]; src != "" {
			d.Source = a.ownAsset(r, s, src)
		}
	}
	d.Values = values
	if j.Status == ledger.JobQueued {
		d.Unserved = !a.svc.LiveActions(r.Context())[j.Action]
		d.NoWorkerMinutes = max(1, a.cfg.Limits.JobNoWorkerSecondsMax/60)
	}
	for _, id := range j.Outputs {
		if as := a.ownAsset(r, s, id); as != nil {
			d.Outputs = append(d.Outputs, *as)
		}
	}
	v.Title, v.Nav, v.Page = d.Label, "create", d
	if d.Active() {
		v.Refresh = 3
	}
	a.render(w, r, status, "job", s, v)
}

func (a *App) cancelJob(w http.ResponseWriter, r *http.Request, s *session) {
	j, err := a.ownJob(r, s)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	if err := a.svc.CancelJobByID(r.Context(), j.ID); err != nil {
		if fresh, gerr := a.ownJob(r, s); gerr == nil {
			j = fresh
		}
		if statusOf(err) < 500 {
			err = ledger.Errorf(ledger.ErrorCode(err), "This job could not be cancelled: it has already %s.", endedWord(j.Status))
		}
		a.back(w, r, "/app/jobs/"+url.PathEscape(j.ID), err)
		return
	}
	// The job page says it was cancelled (no notice: it would say it twice).
	http.Redirect(w, r, "/app/jobs/"+url.PathEscape(j.ID), http.StatusSeeOther)
}

func (a *App) changeJob(w http.ResponseWriter, r *http.Request, s *session) {
	j, err := a.ownJob(r, s)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	ac := a.action(j.Action)
	again := func(err error) {
		a.back(w, r, withValues("/app/jobs/"+url.PathEscape(j.ID), url.Values{}, r.PostForm), err)
	}
	if ac == nil {
		again(ledger.Errorf(ledger.EInvalid, "The settings of this job cannot be changed here."))
		return
	}
	defer a.svc.LockAssetsForJob(s.Account)()
	params, err := ac.params(r.PostForm, ac.values(j.Params)["source"])
	if err == nil {
		params, err = a.svc.ValidateJobParams(r.Context(), s.Account, j.Action, params)
	}
	if err == nil {
		err = a.svc.ChangeJobParams(r.Context(), j.ID, params)
	}
	if err != nil {
		if ledger.ErrorCode(err) == ledger.EConflict {
			if fresh, gerr := a.ownJob(r, s); gerr == nil {
				j = fresh
			}
			err = ledger.Errorf(ledger.EConflict, "This job has already %s, so its settings can no longer change.", endedWord(j.Status))
		}
		again(err)
		return
	}
	http.Redirect(w, r, "/app/jobs/"+url.PathEscape(j.ID)+"?notice=updated", http.StatusSeeOther)
}

func endedWord(st ledger.JobStatus) string {
	switch st {
	case ledger.JobSucceeded:
		return "finished"
	case ledger.JobCancelled:
		return "been cancelled"
	case ledger.JobFailed:
		return "failed"
	case ledger.JobInterrupted:
		return "been interrupted"
	}
	return "ended"
}

// galleryData is the gallery page: the account's results, or its uploads
// with what they take of the upload budget.
type galleryData struct {
	Items   []galleryItem
	Uploads bool
	Older   string // cursor of the next page, "" on the last
	First   bool
	CSRF    string
	// Usage and its limits, on the uploads view.
	Usage      ledger.UploadUsage
	CountMax   int64
	BytesMax   int64
	UsageKnown bool
}

type galleryItem struct {
	Asset ledger.Asset
	Label string
}

// Show is the view's query value.
func (d *galleryData) Show() string {
	if d.Uploads {
		return "uploads"
	}
	return "results"
}

func (a *App) gallery(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	cursor, _ := strconv.ParseInt(q.Get("cursor"), 10, 64)
	a.renderGallery(w, r, s, http.StatusOK, q.Get("show") == "uploads", cursor, view{Notice: notices[q.Get("notice")]})
}

// renderGallery renders a page of results (or of uploads) older than
// cursor (0: the newest).
func (a *App) renderGallery(w http.ResponseWriter, r *http.Request, s *session, status int, uploads bool, cursor int64, v view) {
	d := &galleryData{Uploads: uploads, First: cursor == 0, CSRF: s.CSRF}
	kind, fallback := ledger.AssetOutput, "Result"
	if uploads {
		kind, fallback = ledger.AssetUpload, "Upload"
		d.CountMax, d.BytesMax = a.cfg.Limits.AssetsPerAccountMax, a.cfg.Limits.AssetBytesPerAccountMax
		if u, err := a.svc.UploadUsage(r.Context(), s.Account); err == nil {
			d.Usage, d.UsageKnown = u, true
		}
	}
	labels := map[string]string{}
	if pg, err := a.svc.Jobs(r.Context(), app.PageRequest{AccountID: s.Account, Limit: a.cfg.Limits.PageSizeMax}); err == nil {
		for _, j := range pg.Items {
			labels[j.ID] = actionLabel(j.Action)
		}
	}
	// Read pages of assets until one page of the chosen kind is full.
	scanned := 0
	for scanned < assetScanMax {
		pg, err := a.svc.Assets(r.Context(), app.PageRequest{AccountID: s.Account, Cursor: cursor, Limit: a.cfg.Limits.PageSizeDefault})
		if err != nil {
			a.fail(w, r, s, err)
			return
		}
		as := pg.Items
		for _, as := range as {
			scanned++
			cursor = as.Seq
			if as.Kind != kind {
				continue
			}
			label := labels[as.JobID]
			if label == "" {
				label = fallback
			}
			d.Items = append(d.Items, galleryItem{Asset: as, Label: label})
			if len(d.Items) == galleryPageSize {
				break
			}
		}
		if len(d.Items) == galleryPageSize || len(as) < a.cfg.Limits.PageSizeDefault {
			if len(d.Items) == galleryPageSize {
				d.Older = strconv.FormatInt(cursor, 10)
			}
			break
		}
	}
	v.Title, v.Nav, v.Page = "Gallery", "gallery", d
	a.render(w, r, status, "gallery", s, v)
}

// deleteAsset deletes an image of the account and returns to its view of
// the gallery; an image a running job uses stays, with a message.
func (a *App) deleteAsset(w http.ResponseWriter, r *http.Request, s *session) {
	as := a.ownAsset(r, s, r.PathValue("id"))
	if as == nil {
		a.notFound(w, r, s)
		return
	}
	uploads := as.Kind == ledger.AssetUpload
	if err := a.svc.DeleteAsset(r.Context(), as); err != nil {
		if ledger.ErrorCode(err) == ledger.EConflict {
			err = ledger.Errorf(ledger.EConflict, "This image is used by a job that hasn't finished yet. Cancel the job or wait for it to end, then delete the image.")
		}
		if statusOf(err) >= 500 {
			a.fail(w, r, s, err)
			return
		}
		to := "/app/gallery"
		if uploads {
			to += "?show=uploads"
		}
		a.back(w, r, to, err)
		return
	}
	to := url.Values{"notice": {"deleted"}}
	if uploads {
		to.Set("show", "uploads")
	}
	http.Redirect(w, r, "/app/gallery?"+to.Encode(), http.StatusSeeOther)
}

// asset serves an image of the account (downloads work at any balance).
func (a *App) asset(w http.ResponseWriter, r *http.Request, s *session) {
	as := a.ownAsset(r, s, r.PathValue("id"))
	if as == nil {
		a.notFound(w, r, s)
		return
	}
	httpx.ServeAsset(w, r, a.svc, a.log, as)
}

// billingData is the Billing page.
type billingData struct {
	Sources     []sourceLine
	NextRefresh *time.Time
	FreePlan    bool
	Prices      []priceLine
	History     []entryRow
	Older       string
	First       bool
	// Checkout is the notice shown on the return from Stripe Checkout.
	Checkout *checkoutNotice
	// Threshold is the low-balance form's value: the account's line, or
	// the value a refused form sent. ThresholdMax bounds it.
	Threshold        string
	ThresholdMax     int64
	ThresholdRefused bool
	CSRF             string
}

// checkoutNotice follows a purchase from the return from Stripe Checkout
// until its credits arrive (the webhook grants them, usually within
// seconds).
type checkoutNotice struct {
	Credited bool
	Credits  int64
	// Again is the page's own address, to check again without JavaScript.
	Again string
}

type sourceLine struct {
	Label, Note string
	Credits     int64
	// Expiring lists the source's credits that expire, soonest first
	// (purchased, promotional and support credits; today's free credits
	// say when they refresh instead).
	Expiring []expiringLine
}

// expiringLine is an amount of credits of one source that expires at
// one time: "50 credits expire on Jul 18, 2026, 12:00".
type expiringLine struct {
	Credits int64
	At      time.Time
	// Soon: within alerts.expiring_notice_hours (credits.expiring's
	// notice); the line says how long is left.
	Soon bool
}

// Left is the time from now to the expiry ("2 days").
func (l expiringLine) Left(now time.Time) string { return until(&l.At, now) }

// priceLine is one row of the cost table: the actions of a category that
// cost the same.
type priceLine struct {
	Label    string
	Actions  []string
	Credits  int64
	Category ledger.Category
}

func priceLines(prices []ledger.Price) []priceLine {
	var out []priceLine
	for _, p := range prices {
		i := slices.IndexFunc(out, func(l priceLine) bool { return l.Category == p.Category && l.Credits == p.UnitCredits })
		if i < 0 {
			label := "Image generation or edit"
			if p.Category == ledger.CategoryVideo {
				label = "Video generation"
			}
			out = append(out, priceLine{Label: label, Credits: p.UnitCredits, Category: p.Category})
			i = len(out) - 1
		}
		out[i].Actions = append(out[i].Actions, actionLabel(p.Action))
	}
	return out
}

func (a *App) billing(w http.ResponseWriter, r *http.Request, s *session) {
	bal, err := a.svc.Balance(r.Context(), s.Account)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	acct, err := a.svc.Account(r.Context(), s.Account)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	cursor, _ := strconv.ParseInt(r.URL.Query().Get("cursor"), 10, 64)
	d := &billingData{NextRefresh: bal.NextDailyRefreshAt, FreePlan: acct.Plan == ledger.PlanFree, First: cursor == 0}
	if r.URL.Query().Get("checkout") == "success" {
		d.Checkout = a.checkoutNotice(r, s)
	}
	d.Sources = sourceLines(bal, a.rules, a.svc.Now().Add(a.cfg.ExpiringNotice()))
	d.CSRF, d.ThresholdMax = s.CSRF, ledger.LowBalanceThresholdMax
	d.Threshold = strconv.FormatInt(acct.LowBalanceThreshold, 10)
	if v, ok := r.URL.Query()["threshold"]; ok && len(v[0]) <= 32 {
		d.Threshold, d.ThresholdRefused = v[0], true // the refused value, to correct
	}
	d.Prices = priceLines(a.cfg.Prices)
	pg, err := a.svc.Entries(r.Context(), app.PageRequest{AccountID: s.Account, Cursor: cursor, Limit: historyPageSize})
	es, next := pg.Items, pg.Next
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	d.History = historyRows(es, func(id string) *ledger.Hold {
		h, err := a.svc.Hold(r.Context(), id)
		if err != nil {
			return nil
		}
		return &h
	})
	if next != 0 {
		d.Older = strconv.FormatInt(next, 10)
	}
	a.render(w, r, http.StatusOK, "billing", s, view{Title: "Billing", Nav: "settings", Account: acct, Balance: bal, Page: d,
		Notice: notices[r.URL.Query().Get("notice")]})
}

// sourceLines is the balance by source, in the order the help page
// explains them; purchased credits are always shown. Each purchased,
// promotional or support bucket that expires is listed with its amount
// and time (buckets of a source that expire at the same time add up).
//
// Credits that expire by soon (now plus alerts.expiring_notice_hours, when
// credits.expiring is sent) are marked Soon.
func sourceLines(bal ledger.Balance, rules *rules, soon time.Time) []sourceLine {
	sum := map[ledger.Source]int64{}
	expiring := map[ledger.Source][]expiringLine{}
	for _, b := range bal.Buckets {
		sum[b.Source] += b.RemainingCredits
		if b.ExpiresAt == nil || b.RemainingCredits <= 0 || b.Source == ledger.SourceDaily {
			continue
		}
		ls := expiring[b.Source]
		if i := slices.IndexFunc(ls, func(l expiringLine) bool { return l.At.Equal(*b.ExpiresAt) }); i >= 0 {
			ls[i].Credits += b.RemainingCredits
		} else {
			expiring[b.Source] = append(ls, expiringLine{Credits: b.RemainingCredits, At: *b.ExpiresAt, Soon: !b.ExpiresAt.After(soon)})
		}
	}
	for _, ls := range expiring {
		slices.SortFunc(ls, func(a, b expiringLine) int { return a.At.Compare(b.At) })
	}
	out := []sourceLine{
		{Label: "Today's free credits", Credits: sum[ledger.SourceDaily], Note: "Refresh every day; unused ones do not carry over"},
		{Label: "Sign-up credits", Credits: sum[ledger.SourceSignup], Note: "One-time gift; they never expire"},
		{Label: "Purchased credits", Credits: sum[ledger.SourcePurchase], Expiring: expiring[ledger.SourcePurchase], Note: rules.purchaseNote()},
	}
	if sum[ledger.SourcePromo] > 0 {
		out = append(out, sourceLine{Label: "Promotional credits", Credits: sum[ledger.SourcePromo], Expiring: expiring[ledger.SourcePromo]})
	}
	if sum[ledger.SourceAdmin] > 0 {
		out = append(out, sourceLine{Label: "Credits from support", Credits: sum[ledger.SourceAdmin], Expiring: expiring[ledger.SourceAdmin]})
	}
	return out
}

// addCreditsData is the Add credits page.
type addCreditsData struct {
	// Enabled is whether purchases are configured; without them the page
	// explains the other ways to get credits and offers no buy buttons.
	Enabled bool
	Packs   []packLine
	CSRF    string
	// ImagePrice is what one image result costs, to put packs in
	// perspective (0 when images are not priced).
	ImagePrice int64
}

// packLine is a credit pack as the Add credits page shows it.
type packLine struct {
	ID, Name, Price string
	Credits         int64
}

// ShowName reports whether the pack's name says more than its credits
// (the default packs are named "100 credits").
func (p packLine) ShowName() bool {
	return p.Name != fmt.Sprintf("%d credits", p.Credits) && p.Name != credits(p.Credits)+" credits"
}

// Images is how many image results the pack pays for.
func (p packLine) Images(unit int64) int64 {
	if unit <= 0 {
		return 0
	}
	return p.Credits / unit
}

func (a *App) addCredits(w http.ResponseWriter, r *http.Request, s *session) {
	d := &addCreditsData{CSRF: s.CSRF}
	if b := a.Billing; b != nil && b.Enabled() {
		d.Enabled = true
		for _, p := range b.Packs() {
			d.Packs = append(d.Packs, packLine{ID: p.ID, Name: p.Name, Price: p.Price(), Credits: p.Credits})
		}
		// The buy forms are answered with a redirect to Stripe Checkout,
		// which form-action must allow.
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy(checkoutFormAction))
	}
	if p, ok := a.cfg.Price("generate"); ok {
		d.ImagePrice = p.UnitCredits
	}
	v := view{Title: "Add credits", Nav: "settings", Page: d}
	if r.URL.Query().Get("checkout") == "cancelled" {
		v.Notice = checkoutCancelledNotice
	}
	a.render(w, r, http.StatusOK, "addcredits", s, v)
}

// statusOf is the HTTP status of an error (the API's table).
func statusOf(err error) int { return httpx.StatusOf(err) }

// Fields are the chosen action's fields with their values.
func (d *createData) Fields() []formField { return formFields(d.Action, d.Values, "p-") }

// Fields are the job's fields with their values (the change form).
func (d *jobData) Fields() []formField { return formFields(d.Action, d.Values, "c-") }

// EditAction is the image action a picked image opens with: the chosen
// one, or crop.
func (d *createData) EditAction() string {
	if d.Action != nil && d.Action.Image {
		return d.Action.Name
	}
	return "crop"
}
