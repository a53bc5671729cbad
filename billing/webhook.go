package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/creditd/creditd/ledger"
)

const (
	// WebhookBodyBytesMax bounds a webhook body. The events creditd reads
	// (a checkout session, a charge, a subscription) are a few kilobytes.
	WebhookBodyBytesMax = 256 << 10
	// webhookWorkTimeout bounds the processing of one event. Processing is
	// detached from the request, so Stripe hanging up does not stop it
	// half-way (each step is idempotent anyway).
	webhookWorkTimeout = 30 * time.Second
)

// Engine.ConsumeOnce scopes (idempotency-record principals) of billing's
// durable markers. They cannot collide with API principals, which are
// "kind:id".
const (
	// eventScope marks a Stripe event id as processed.
	eventScope = "stripe-event"
	// subscriptionDeletedScope marks a subscription id as deleted: deletion
	// is final, so a late created/updated event for it changes nothing.
	subscriptionDeletedScope = "stripe-subscription-deleted"
)

// Outcomes of an event, in the webhook's response and logs.
const (
	OutcomeGranted         = "granted"
	OutcomeAlreadyGranted  = "already_granted"
	OutcomeAwaitingPayment = "awaiting_payment"
	OutcomePaymentFailed   = "payment_failed"
	OutcomeRefunded        = "refunded"
	OutcomeNothingToRefund = "nothing_to_refund"
	OutcomePlanChanged     = "plan_changed"
	OutcomePlanUnchanged   = "plan_unchanged"
	OutcomeDuplicate       = "duplicate"
	OutcomeIgnored         = "ignored"
)

// HandleWebhook serves POST /v1/webhooks/stripe. It needs no credentials:
// the Stripe-Signature header is verified with the signing secret and
// tolerance by stripe-go (webhook.ConstructEventWithOptions), which refuses
// a timestamp more than the tolerance in the past, and here one more than
// the tolerance in the future; a missing or bad signature, or a timestamp
// outside the tolerance, is a 400 and changes nothing. The ids an event
// hands to the ledger pass the API's rules (checkAccountID, checkStripeID):
// a bad one is a 400, logged, before it reaches the engine. A processed
// event answers 200 {"received":true,"id","type","outcome"}; a failure
// answers the error's status so Stripe retries.
func (s *Service) HandleWebhook(w http.ResponseWriter, r *http.Request) {
	if s.cfg.WebhookSecret == "" {
		s.writeError(w, r, errDisabled())
		return
	}
	body, err := readBody(w, r, WebhookBodyBytesMax)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	evt, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), s.cfg.WebhookSecret,
		webhook.ConstructEventOptions{
			Tolerance: s.cfg.WebhookTolerance,
			// creditd reads a few long-stable fields of each object; an
			// endpoint on another API version must not stop purchases.
			IgnoreAPIVersionMismatch: true,
		})
	if err == nil {
		err = s.notFromTheFuture(r.Header.Get("Stripe-Signature"))
	}
	if err != nil {
		s.log.Warn("stripe webhook refused", "err", err, "remote", r.RemoteAddr)
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "webhook refused: %s", s.signatureProblem(err)))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), webhookWorkTimeout)
	defer cancel()
	outcome, err := s.process(ctx, evt)
	if err != nil {
		s.log.Warn("stripe event failed", "event", evt.ID, "type", evt.Type, "err", err)
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"received": true, "id": evt.ID, "type": evt.Type, "outcome": outcome})
}

func (s *Service) signatureProblem(err error) string {
	switch {
	case errors.Is(err, webhook.ErrNotSigned):
		return "missing Stripe-Signature header"
	case errors.Is(err, webhook.ErrInvalidHeader):
		return "malformed Stripe-Signature header"
	case errors.Is(err, webhook.ErrNoValidSignature):
		return "no valid signature"
	case errors.Is(err, webhook.ErrTooOld):
		return fmt.Sprintf("signature timestamp is outside the tolerance of %s", s.cfg.WebhookTolerance)
	case errors.Is(err, errFromTheFuture):
		return fmt.Sprintf("signature timestamp is more than the tolerance of %s in the future", s.cfg.WebhookTolerance)
	default:
		return "malformed event"
	}
}

// errFromTheFuture is a signature timestamp more than the tolerance ahead
// of now.
var errFromTheFuture = errors.New("signature timestamp is in the future")

// notFromTheFuture refuses a verified Stripe-Signature header whose
// timestamp is more than the tolerance ahead of now: stripe-go bounds only
// its age. Like stripe-go it reads the wall clock, which Stripe's
// timestamps are taken from, and the header's last "t=".
func (s *Service) notFromTheFuture(header string) error {
	var at int64
	for _, part := range strings.Split(header, ",") {
		if v, ok := strings.CutPrefix(part, "t="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return webhook.ErrInvalidHeader
			}
			at = n
		}
	}
	if time.Unix(at, 0).Sub(time.Now()) > s.cfg.WebhookTolerance {
		return errFromTheFuture
	}
	return nil
}

// checkAccountID checks an account id taken from an event as the API
// checks one (PUT /v1/accounts/{id}).
func (s *Service) checkAccountID(field, id string) error {
	return ledger.CheckID(field, id, s.app.Config().Limits.IDBytesMax)
}

// checkStripeID checks a Stripe object id that the ledger keeps (a
// grant's reference, a refund's reason, an event's marker) as the API
// checks a grant's reference (POST /v1/accounts/{id}/grants).
func checkStripeID(field, id string) error {
	return ledger.CheckID(field, id, ledger.ReferenceBytesMax)
}

// process applies one verified event. Every effect is idempotent on its
// own (see the package documentation); the event-id marker only skips
// repeated work.
func (s *Service) process(ctx context.Context, evt stripe.Event) (string, error) {
	if evt.ID == "" || evt.Data == nil {
		return "", ledger.Errorf(ledger.EInvalid, "event without id or data")
	}
	if err := checkStripeID("id", evt.ID); err != nil {
		return "", err
	}
	if s.marked(ctx, eventScope, evt.ID) {
		s.log.Info("stripe event replayed", "event", evt.ID, "type", evt.Type)
		return OutcomeDuplicate, nil
	}
	var (
		account, outcome string
		err              error
	)
	switch evt.Type {
	case stripe.EventTypeCheckoutSessionCompleted, stripe.EventTypeCheckoutSessionAsyncPaymentSucceeded, stripe.EventTypeCheckoutSessionAsyncPaymentFailed:
		account, outcome, err = s.onCheckoutSession(ctx, evt)
	case stripe.EventTypeChargeRefunded:
		account, outcome, err = s.onChargeRefunded(ctx, evt)
	case stripe.EventTypeCustomerSubscriptionCreated, stripe.EventTypeCustomerSubscriptionUpdated, stripe.EventTypeCustomerSubscriptionDeleted:
		account, outcome, err = s.onSubscription(ctx, evt)
	default:
		outcome = OutcomeIgnored
	}
	if err != nil {
		return "", err
	}
	s.log.Info("stripe event", "event", evt.ID, "type", evt.Type, "account", account, "outcome", outcome)
	if account != "" && outcome != OutcomeIgnored {
		if _, err := s.app.ConsumeOnce(ctx, account, eventScope, evt.ID); err != nil {
			// The effect is durable and idempotent: a replay redoes nothing.
			s.log.Warn("record stripe event", "event", evt.ID, "err", err)
		}
	}
	return outcome, nil
}

// marked reports whether a ConsumeOnce record exists (read-only).
func (s *Service) marked(ctx context.Context, scope, key string) bool {
	ok, err := s.app.Consumed(ctx, scope, key)
	if err != nil {
		s.log.Warn("read stripe marker", "scope", scope, "key", key, "err", err)
		return false
	}
	return ok
}

func decodeObject(evt stripe.Event, v any) error {
	if err := json.Unmarshal(evt.Data.Raw, v); err != nil {
		return ledger.Errorf(ledger.EInvalid, "event %s: malformed %s object", evt.ID, evt.Type)
	}
	return nil
}

// onCheckoutSession grants a paid session's pack: on completed when
// payment_status is paid, on async_payment_succeeded always.
func (s *Service) onCheckoutSession(ctx context.Context, evt stripe.Event) (account, outcome string, err error) {
	var cs stripe.CheckoutSession
	if err := decodeObject(evt, &cs); err != nil {
		return "", "", err
	}
	account, packID := cs.ClientReferenceID, cs.Metadata[MetadataPack]
	if cs.ID == "" || account == "" || packID == "" || (cs.Mode != "" && cs.Mode != stripe.CheckoutSessionModePayment) {
		return "", OutcomeIgnored, nil // not a creditd pack purchase
	}
	if err := s.checkAccountID("client_reference_id", account); err != nil {
		return "", "", err
	}
	if err := checkStripeID("data.object.id", cs.ID); err != nil {
		return "", "", err
	}
	switch {
	case evt.Type == stripe.EventTypeCheckoutSessionAsyncPaymentFailed:
		s.log.Info("checkout payment failed", "account", account, "session", cs.ID)
		return account, OutcomePaymentFailed, nil
	case evt.Type == stripe.EventTypeCheckoutSessionCompleted && cs.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid:
		// An asynchronous method (e.g. a bank debit): the credits come
		// with async_payment_succeeded.
		return account, OutcomeAwaitingPayment, nil
	}
	pack, ok := s.packs[packID]
	if !ok {
		s.log.Error("paid checkout session names an unknown pack", "account", account, "session", cs.ID, "pack", packID)
		return "", "", ledger.Errorf(ledger.EInvalid, "checkout session %s names unknown pack %q", cs.ID, packID)
	}
	created, err := s.grant(ctx, account, pack, cs.ID)
	if err != nil {
		return "", "", err
	}
	if !created {
		return account, OutcomeAlreadyGranted, nil
	}
	return account, OutcomeGranted, nil
}

// grant adds a pack's credits to an account with the checkout session as
// the reference: the same session never grants twice.
// A refund ends the grant (its expiry becomes the refund time); the
// session still reads as granted, which is all we need to know.
func (s *Service) grant(ctx context.Context, account string, pack Pack, sessionID string) (created bool, err error) {
	g, created, err := s.app.GrantOnce(ctx, account, ledger.SourcePurchase, pack.Credits, sessionID)
	if err != nil {
		return false, err
	}
	if !created && g.AmountCredits != pack.Credits {
		s.log.Warn("checkout session was granted with other figures", "account", account, "session", sessionID,
			"granted", g.AmountCredits, "pack_now", pack.Credits)
	}
	return created, nil
}

// onChargeRefunded takes back what is left of the refunded purchase. The
// charge names its PaymentIntent; the Checkout Session of that
// PaymentIntent (looked up at Stripe) is the grant's reference. If the
// refund arrives before the session's completion, the purchase is granted
// here first and refunded at once, which is the state in-order delivery
// reaches; the late completion then finds the session granted.
func (s *Service) onChargeRefunded(ctx context.Context, evt stripe.Event) (account, outcome string, err error) {
	var ch stripe.Charge
	if err := decodeObject(evt, &ch); err != nil {
		return "", "", err
	}
	if ch.PaymentIntent == nil || ch.PaymentIntent.ID == "" {
		return "", OutcomeIgnored, nil
	}
	cs, err := s.sessionForPaymentIntent(ctx, ch.PaymentIntent.ID)
	if err != nil {
		return "", "", err
	}
	if cs == nil || cs.ID == "" {
		return "", OutcomeIgnored, nil // not paid through Checkout: not a pack
	}
	account = firstOf(cs.ClientReferenceID, ch.Metadata[MetadataAccount])
	packID := firstOf(cs.Metadata[MetadataPack], ch.Metadata[MetadataPack])
	if account == "" {
		return "", OutcomeIgnored, nil
	}
	if err := s.checkAccountID("account id", account); err != nil {
		return "", "", err
	}
	if err := checkStripeID("checkout session id", cs.ID); err != nil {
		return "", "", err
	}
	if err := checkStripeID("data.object.id", ch.ID); err != nil {
		return "", "", err
	}
	if pack, ok := s.packs[packID]; ok {
		if _, err := s.grant(ctx, account, pack, cs.ID); err != nil {
			return "", "", err
		}
	}
	res, err := s.app.Refund(ctx, account, ledger.SourcePurchase, cs.ID, ch.ID)
	if err != nil {
		return "", "", err
	}
	if !res.Found {
		s.log.Warn("refund for a purchase that was never granted", "account", account, "session", cs.ID, "charge", ch.ID, "pack", packID)
		return account, OutcomeNothingToRefund, nil
	}
	s.log.Info("purchase refunded", "account", account, "session", cs.ID, "charge", ch.ID, "taken", res.TakenCredits)
	return account, OutcomeRefunded, nil
}

// sessionForPaymentIntent finds the Checkout Session that created a
// PaymentIntent, or nil.
func (s *Service) sessionForPaymentIntent(ctx context.Context, pi string) (*stripe.CheckoutSession, error) {
	if s.sc == nil {
		return nil, errDisabled()
	}
	params := &stripe.CheckoutSessionListParams{PaymentIntent: stripe.String(pi)}
	params.Limit = stripe.Int64(1)
	for cs, err := range s.sc.V1CheckoutSessions.List(ctx, params) {
		if err != nil {
			return nil, s.stripeError("find checkout session", err)
		}
		return cs, nil
	}
	return nil, nil
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// onSubscription moves an account between the free and paid plans. Only
// subscriptions with a price mapped to the paid plan (PaidPriceIDs) count,
// and they name their account with metadata.account_id. Deleted → free,
// for good. Created/updated → the subscription's current state, fetched
// from Stripe (events may arrive late or out of order; the object inside
// an event is only its state at the time): active or trialing with a
// mapped price → paid, anything else → free.
func (s *Service) onSubscription(ctx context.Context, evt stripe.Event) (account, outcome string, err error) {
	var sub stripe.Subscription
	if err := decodeObject(evt, &sub); err != nil {
		return "", "", err
	}
	if sub.ID == "" || len(s.paid) == 0 {
		return "", OutcomeIgnored, nil
	}
	if err := checkStripeID("data.object.id", sub.ID); err != nil {
		return "", "", err
	}
	account = sub.Metadata[MetadataAccount]
	var plan ledger.Plan
	if evt.Type == stripe.EventTypeCustomerSubscriptionDeleted {
		if account == "" || !s.mapped(&sub) {
			return "", OutcomeIgnored, nil
		}
		plan = ledger.PlanFree
	} else {
		if s.marked(ctx, subscriptionDeletedScope, sub.ID) {
			return "", OutcomeIgnored, nil // deleted already: a late event changes nothing
		}
		if s.sc == nil {
			return "", "", errDisabled()
		}
		cur, err := s.sc.V1Subscriptions.Retrieve(ctx, sub.ID, nil)
		if err != nil {
			return "", "", s.stripeError("retrieve subscription", err)
		}
		account = firstOf(account, cur.Metadata[MetadataAccount])
		if account == "" || (!s.mapped(&sub) && !s.mapped(cur)) {
			return "", OutcomeIgnored, nil
		}
		plan = PlanFor(cur, s.cfg.PaidPriceIDs)
	}
	if err := s.checkAccountID("metadata.account_id", account); err != nil {
		return "", "", err
	}
	changed, err := s.setPlan(ctx, account, plan)
	if err != nil {
		return "", "", err
	}
	if evt.Type == stripe.EventTypeCustomerSubscriptionDeleted {
		if _, err := s.app.ConsumeOnce(ctx, account, subscriptionDeletedScope, sub.ID); err != nil {
			return "", "", err
		}
	}
	if changed {
		s.log.Info("plan changed by subscription", "account", account, "subscription", sub.ID, "plan", plan)
		return account, OutcomePlanChanged, nil
	}
	return account, OutcomePlanUnchanged, nil
}

// mapped reports whether a subscription has a price of the paid plan.
func (s *Service) mapped(sub *stripe.Subscription) bool {
	for _, id := range priceIDs(sub) {
		if s.paid[id] {
			return true
		}
	}
	return false
}

func priceIDs(sub *stripe.Subscription) []string {
	if sub == nil || sub.Items == nil {
		return nil
	}
	var ids []string
	for _, it := range sub.Items.Data {
		if it != nil && it.Price != nil && it.Price.ID != "" {
			ids = append(ids, it.Price.ID)
		}
	}
	return ids
}

// PlanFor is the plan a subscription gives: paid while it is active or
// trialing with one of paidPriceIDs, free otherwise.
func PlanFor(sub *stripe.Subscription, paidPriceIDs []string) ledger.Plan {
	if sub == nil || (sub.Status != stripe.SubscriptionStatusActive && sub.Status != stripe.SubscriptionStatusTrialing) {
		return ledger.PlanFree
	}
	for _, id := range priceIDs(sub) {
		if slices.Contains(paidPriceIDs, id) {
			return ledger.PlanPaid
		}
	}
	return ledger.PlanFree
}

// setPlan moves an existing account to plan (leaving free ends today's
// daily credits at once). It never creates an account.
func (s *Service) setPlan(ctx context.Context, account string, plan ledger.Plan) (changed bool, err error) {
	return s.app.SetPlan(ctx, account, plan)
}
