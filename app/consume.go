package app

import "context"

// Consume-once records: a key used once in a scope, durably, across
// restarts and nodes (sign-in link nonces, billing's processed Stripe
// events and deleted subscriptions). A scope is an idempotency-record
// principal, so it cannot collide with the API's, which are "kind:id".

// ConsumeOnce records key in scope for an existing account and reports
// whether this was its first use.
func (s *Service) ConsumeOnce(ctx context.Context, accountID, scope, key string) (first bool, err error) {
	return s.eng.ConsumeOnce(ctx, accountID, scope, key)
}

// Consumed reports whether key was recorded in scope (read-only).
func (s *Service) Consumed(ctx context.Context, scope, key string) (bool, error) {
	return s.eng.Consumed(ctx, scope, key)
}
