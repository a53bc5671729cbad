// Package billing sells credit packs through Stripe Checkout and turns
// Stripe's webhooks into ledger operations: purchase grants, refunds and
// plan changes.
//
// # Purchases
//
// A pack (Config.Packs: id, name, credits, price in minor units, currency)
// is bought through a Checkout Session in payment mode created with
// stripe-go. The session records the account as client_reference_id and the
// pack as metadata.pack; its PaymentIntent carries both as metadata too
// (Stripe copies a PaymentIntent's metadata onto its charge, so refunds
// name them). The credits granted always come from the pack's
// configuration, never from figures in an event.
//
// Without Stripe keys, purchases are disabled: Checkout and the webhook
// answer 503 "purchases are not configured; ask support to add credits",
// GET /v1/packs says purchases_enabled false, and admin grants still work.
//
// # Webhooks
//
// POST /v1/webhooks/stripe verifies Stripe-Signature with stripe-go
// (webhook.ConstructEventWithOptions, Config.WebhookTolerance); a missing
// or bad signature, or a timestamp more than the tolerance in the past or
// in the future, is a 400 and changes nothing. So is an event whose ids
// break the API's rules (an account id as PUT /v1/accounts/{id} takes it,
// a Stripe id as a grant's reference): logged, refused before the engine.
//
//   - checkout.session.completed with payment_status "paid", and
//     checkout.session.async_payment_succeeded, grant the pack's credits
//     as source "purchase" with the session id as the grant's reference.
//   - checkout.session.completed while unpaid waits for the async result;
//     checkout.session.async_payment_failed grants nothing.
//   - charge.refunded (any refund of the charge, full or partial) takes
//     back what is left of that purchase, never below zero, and ends the
//     grant: a "refund" ledger entry, shown in the billing history.
//   - customer.subscription.created|updated|deleted move the account named
//     by the subscription's metadata.account_id between the free and paid
//     plans, for subscriptions with a price in Config.PaidPriceIDs (others
//     are ignored, as are all of them when no price is mapped).
//
// # Exactly once, in any order
//
// Every effect is idempotent by itself, so a replayed, late or reordered
// event cannot apply twice; a marker per event id only skips repeated work.
//
//   - Grants are idempotent by (account, purchase, session id), and the
//     amount comes from the configuration, so every delivery of any event
//     about a session asks for the same grant and the first one wins.
//     After a refund, asking again is a conflict naming the first grant,
//     which also means "already granted".
//   - A refund ends the grant, so repeating it takes nothing more.
//   - A refund needs the session of the charge's PaymentIntent. The charge
//     does not name it, and creditd has no table of its own for a mapping
//     (and its durable markers, Engine.ConsumeOnce records, are swept with
//     idempotency keys after a day or more, while refunds come weeks
//     later). So the session is looked up at Stripe, which keeps it for
//     good: GET /v1/checkout/sessions?payment_intent=…. The account and
//     pack are the session's; the charge's metadata is the fallback.
//   - A refund that arrives before the completion grants the purchase
//     first (idempotently, from the pack) and then refunds it, which is the
//     state in-order delivery reaches. The late completion finds the
//     session granted and does nothing. Between those two steps (one
//     commit apart) the credits are briefly spendable; a capture in that
//     window would be charged as it would be between an in-order
//     completion and refund.
//   - Event ids are recorded (ConsumeOnce scope "stripe-event") after the
//     effect has committed; a replay within the idempotency-key lifetime
//     answers outcome "duplicate" without calling Stripe.
//   - Subscription events carry the object as it was when the event was
//     made, so created/updated fetch the subscription's current state from
//     Stripe and apply that: whatever order events arrive in, the last one
//     processed applies Stripe's latest state. Deletion is final: it moves
//     the account to free and records the subscription as deleted
//     (scope "stripe-subscription-deleted"), so a late created/updated for
//     it changes nothing. One plan subscription per account is assumed:
//     deleting one moves the account to free even if another is active.
//
// Leaving the free plan ends today's daily credits at once (the engine's
// rule); moving back to free resumes them from the next local day.
//
// # Errors
//
// Failures answer {"error":{"code","message"}} with the API's statuses. An
// event the ledger cannot apply yet (unknown account or pack, Stripe
// unreachable, commit failure) answers non-2xx so that Stripe retries it
// and shows it as failing; events for objects creditd did not create are
// acknowledged with outcome "ignored".
package billing
