package engine

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/creditd/creditd/ledger"
)

// The transactional outbox: the webhook events of a batch are derived from
// its change set and written by the same store transaction (Batch.
// InsertEvents), so an event exists exactly when its change does — across
// a crash (SQLite's journal record carries them) and across nodes.
//
// Events, in the order a batch writes them: account.created; per ledger
// entry in order grant.created (and purchase.completed for a purchase),
// grant.expired (a purchased, promo, admin or signup bucket; daily buckets
// end every day and are not announced), purchase.refunded; hold.expired;
// job.succeeded/failed/cancelled/interrupted; credits.expiring;
// credits.low; credits.depleted. Time-driven events carry the time they
// were due: a bucket's expiry, a hold's, a notice's.

// pendingEvents are the events a batch's operations raised directly,
// before the change set is written.
type pendingEvents struct {
	noticed  []ledger.Noticed
	refunded []refundEvent
}

type refundEvent struct {
	grant ledger.Grant
	taken int64
}

// eventData is an event's data: the account id and the objects involved.
type eventData map[string]any

func (b *batch) event(typ, account string, at time.Time, data eventData) {
	data["account_id"] = account
	raw, err := json.Marshal(data)
	if err != nil {
		panic(&ledger.InvariantError{Msg: "event " + typ + " data: " + err.Error()})
	}
	b.events = append(b.events, ledger.WebhookEvent{
		ID: ledger.NewEventID(), Type: typ, AccountID: account, CreatedAt: at, Data: raw,
	})
}

// checkAlerts applies the balance alert rules to every account the batch
// changed, before the accounts are written (the rules set their alert
// bits). It returns the accounts whose alerts fired.
func (e *Engine) checkAlerts(b *batch) (fired []alertFired) {
	var granted map[string]bool
	for i := range b.ch.Entries {
		if b.ch.Entries[i].Type == ledger.EntryGrant {
			if granted == nil {
				granted = map[string]bool{}
			}
			granted[b.ch.Entries[i].AccountID] = true
		}
	}
	for id := range b.ch.Accounts {
		st := b.states[id]
		if st == nil {
			continue
		}
		low, depleted := st.CheckAlerts(e.cfg, b.now, granted[id], b.ch)
		if low || depleted {
			fired = append(fired, alertFired{id, low, depleted})
		}
	}
	slices.SortFunc(fired, func(a, b alertFired) int { return strings.Compare(a.account, b.account) })
	return fired
}

type alertFired struct {
	account       string
	low, depleted bool
}

// deriveEvents builds the batch's events once its entries have their ids.
func (e *Engine) deriveEvents(b *batch, fired []alertFired) {
	ch := b.ch
	var created []string
	for id, st := range b.states {
		if _, old := b.stored[id]; st != nil && !old && st.Account.CreatedAt.Equal(b.now) {
			created = append(created, id)
		}
	}
	slices.Sort(created)
	for _, id := range created {
		b.event(ledger.EventAccountCreated, id, b.now, eventData{"account": b.states[id].Account})
	}
	for i := range ch.Entries {
		en := &ch.Entries[i]
		switch en.Type {
		case ledger.EntryGrant:
			g := ch.Grants[en.GrantID]
			if g == nil {
				continue
			}
			b.event(ledger.EventGrantCreated, en.AccountID, en.CreatedAt, eventData{"grant": g, "entry": en})
			if g.Source == ledger.SourcePurchase {
				b.event(ledger.EventPurchaseCompleted, en.AccountID, en.CreatedAt, eventData{"grant": g, "entry": en})
			}
		case ledger.EntryExpiry:
			if en.HoldID != "" || en.Source == ledger.SourceDaily || en.Reason != "expired" {
				continue
			}
			g := ch.Grants[en.GrantID]
			if g == nil {
				continue
			}
			b.event(ledger.EventGrantExpired, en.AccountID, g.ExpiresAt, eventData{"grant": g, "entry": en})
		}
	}
	for _, r := range b.pending.refunded {
		d := eventData{"grant": r.grant, "taken": r.taken}
		for i := range ch.Entries {
			if en := &ch.Entries[i]; en.Type == ledger.EntryRefund && en.GrantID == r.grant.ID {
				d["entry"] = en
			}
		}
		b.event(ledger.EventPurchaseRefunded, r.grant.AccountID, b.now, d)
	}
	if len(ch.Holds) > 0 {
		var expired []*ledger.Hold
		for _, h := range ch.Holds {
			if h.Status == ledger.HoldExpired {
				expired = append(expired, h)
			}
		}
		slices.SortFunc(expired, func(x, y *ledger.Hold) int {
			return cmpTimeID(x.ExpiresAt, y.ExpiresAt, x.ID, y.ID)
		})
		for _, h := range expired {
			b.event(ledger.EventHoldExpired, h.AccountID, h.ExpiresAt, eventData{"hold": h})
		}
	}
	if len(ch.Jobs) > 0 {
		var ended []*ledger.Job
		for _, j := range ch.Jobs {
			if !j.Status.Active() {
				ended = append(ended, j)
			}
		}
		slices.SortFunc(ended, func(x, y *ledger.Job) int { return cmpTimeID(x.FinishedAt, y.FinishedAt, x.ID, y.ID) })
		for _, j := range ended {
			typ := jobEventType(j.Status)
			if typ == "" {
				continue
			}
			b.event(typ, j.AccountID, b.now, eventData{"job": j})
		}
	}
	for _, n := range b.pending.noticed {
		g := ch.Grants[n.Grant.ID]
		if g == nil {
			g = n.Grant
		}
		b.event(ledger.EventCreditsExpiring, g.AccountID, n.DueAt, eventData{
			"grant": g, "expiring": g.RemainingCredits + g.HeldCredits, "expires_at": g.ExpiresAt,
		})
	}
	for _, f := range fired {
		st := b.states[f.account]
		bal := st.View(e.cfg, b.now)
		if f.low {
			b.event(ledger.EventCreditsLow, f.account, b.now, eventData{
				"balance": bal, "low_balance_threshold": st.Account.LowBalanceThreshold,
			})
		}
		if f.depleted {
			b.event(ledger.EventCreditsDepleted, f.account, b.now, eventData{
				"balance": bal, "cheapest_image_credits": e.cfg.CheapestImageCredits(),
			})
		}
	}
}

func cmpTimeID(a, b time.Time, x, y string) int {
	if c := a.Compare(b); c != 0 {
		return c
	}
	return strings.Compare(x, y)
}

func jobEventType(s ledger.JobStatus) string {
	switch s {
	case ledger.JobSucceeded:
		return ledger.EventJobSucceeded
	case ledger.JobFailed:
		return ledger.EventJobFailed
	case ledger.JobCancelled:
		return ledger.EventJobCancelled
	case ledger.JobInterrupted:
		return ledger.EventJobInterrupted
	}
	return ""
}

// refunded raises purchase.refunded the first time a purchase's grant is
// refunded (NoticeRefunded), whatever was left of it to take back.
func (b *batch) refunded(st *ledger.State, g *ledger.Grant, taken int64) {
	if g.Source != ledger.SourcePurchase {
		return
	}
	w := b.ch.Grants[g.ID] // the working copy, when the refund changed the bucket
	if w == nil {
		c := *g
		if i := slices.IndexFunc(st.Grants, func(x *ledger.Grant) bool { return x.ID == g.ID }); i >= 0 {
			c = *st.Grants[i]
		}
		w = &c
	}
	if w.Notices&ledger.NoticeRefunded != 0 {
		return
	}
	if b.ch.Grants[g.ID] == nil {
		// Unchanged by the refund (nothing left in it): save the notice.
		b.ch.Grants[g.ID] = w
		if i := slices.IndexFunc(st.Grants, func(x *ledger.Grant) bool { return x.ID == g.ID }); i >= 0 {
			st.Grants[i] = w
		}
		b.ch.Accounts[st.Account.ID] = true
	}
	w.Notices |= ledger.NoticeRefunded
	b.pending.refunded = append(b.pending.refunded, refundEvent{grant: *w, taken: taken})
}

// EventsAfter returns up to limit committed webhook events after afterSeq,
// oldest first (for the dispatcher: afterSeq is the last seq it handled).
func (e *Engine) EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]ledger.WebhookEvent, error) {
	if afterSeq < 0 {
		return nil, ledger.Errorf(ledger.EInvalid, "bad cursor")
	}
	if limit < 1 {
		return nil, ledger.Errorf(ledger.EInvalid, "limit must be at least 1")
	}
	return e.store.EventsAfter(ctx, afterSeq, limit)
}

// ListEvents pages the webhook events oldest first: afterSeq is the cursor
// (0 from the first), and the next page's is returned (0 at the end).
func (e *Engine) ListEvents(ctx context.Context, afterSeq int64, limit int) ([]ledger.WebhookEvent, int64, error) {
	if limit == 0 {
		limit = e.cfg.Limits.PageSizeDefault
	}
	if limit < 1 || limit > e.cfg.Limits.PageSizeMax {
		return nil, 0, ledger.Errorf(ledger.EInvalid, "limit must be between 1 and %d", e.cfg.Limits.PageSizeMax)
	}
	evs, err := e.EventsAfter(ctx, afterSeq, limit+1)
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if len(evs) > limit {
		evs = evs[:limit]
		next = evs[limit-1].Seq
	}
	return evs, next, nil
}

// GetEvent reads a webhook event by id.
func (e *Engine) GetEvent(ctx context.Context, id string) (ledger.WebhookEvent, error) {
	if !ledger.ValidID(id, e.cfg.Limits.IDBytesMax) {
		return ledger.WebhookEvent{}, ledger.Errorf(ledger.ENotFound, "no event %q", id)
	}
	ev, err := e.store.GetEvent(ctx, id)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ENotFound {
			return ledger.WebhookEvent{}, ledger.Errorf(ledger.ENotFound, "no event %q", id)
		}
		return ledger.WebhookEvent{}, err
	}
	return *ev, nil
}
