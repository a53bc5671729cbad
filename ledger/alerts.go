package ledger

import "time"

// Balance alerts and expiry notices: the rules behind credits.low,
// credits.depleted and credits.expiring (docs/webhooks.md, "Balance
// alerts"). They only flip bits; the engine writes the events.

// Noticed is a bucket whose credits.expiring is due, and when it was due.
type Noticed struct {
	Grant *Grant
	DueAt time.Time
}

// noticeable reports whether a bucket gets a credits.expiring: a
// purchased, promo or admin one with an expiry and credits left.
func noticeable(g *Grant) bool {
	switch g.Source {
	case SourcePurchase, SourcePromo, SourceAdmin:
		return !g.ExpiresAt.IsZero() && g.Notices&NoticeExpiring == 0
	}
	return false
}

// ExpiringDueAt is when a bucket's credits.expiring is due: notice before
// its expiry, but not before it was granted.
func ExpiringDueAt(cfg *Config, g *Grant) time.Time {
	due := g.ExpiresAt.Add(-cfg.ExpiringNotice())
	if due.Before(g.CreatedAt) {
		due = g.CreatedAt
	}
	return due
}

// NoticeExpiring marks the buckets whose credits.expiring is due at now
// (once each; a bucket that expires empty, or already expired, gets none)
// and returns them.
func (s *State) NoticeExpiring(cfg *Config, now time.Time, ch *Changes) []Noticed {
	var out []Noticed
	for i, g := range s.Grants {
		if !noticeable(g) || g.RemainingCredits == 0 || now.Before(ExpiringDueAt(cfg, g)) || g.Expired(now) {
			continue
		}
		g = s.grant(i, ch)
		g.Notices |= NoticeExpiring
		out = append(out, Noticed{Grant: g, DueAt: ExpiringDueAt(cfg, g)})
	}
	return out
}

// NextNotice is when the next time-driven change of a bucket is due: its
// credits.expiring notice, else its expiry; zero when neither applies (no
// expiry, nothing left, or a daily bucket, which the next touch expires).
func NextNotice(cfg *Config, g *Grant) time.Time {
	if g.ExpiresAt.IsZero() || g.Source == SourceDaily || g.RemainingCredits == 0 {
		return time.Time{}
	}
	if noticeable(g) {
		return ExpiringDueAt(cfg, g)
	}
	return g.ExpiresAt
}

// CheckAlerts applies the balance alert rules after a batch changed the
// account: a grant (purchase, promo, admin, signup; not the daily
// allowance) that leaves the account at or above a line re-arms that
// line's alert; then an armed alert whose line the image credits available
// are below fires, once. It returns which fired.
func (s *State) CheckAlerts(cfg *Config, now time.Time, granted bool, ch *Changes) (low, depleted bool) {
	a := &s.Account
	if !granted && a.Alerts == AlertLow|AlertDepleted {
		return false, false // nothing to fire, nothing to re-arm
	}
	avail := s.Available(cfg, now, CategoryImage)
	old := a.Alerts
	cheapest := cfg.CheapestImageCredits()
	if granted {
		if avail >= a.LowBalanceThreshold {
			a.Alerts &^= AlertLow
		}
		if avail >= cheapest {
			a.Alerts &^= AlertDepleted
		}
	}
	if a.Alerts&AlertLow == 0 && avail < a.LowBalanceThreshold {
		a.Alerts |= AlertLow
		low = true
	}
	if a.Alerts&AlertDepleted == 0 && avail < cheapest {
		a.Alerts |= AlertDepleted
		depleted = true
	}
	if a.Alerts != old {
		s.touchAccount(ch)
	}
	return low, depleted
}

// InitAlerts sets a new account's alert bits to what its balance already
// is, without firing: an account that starts below a line has not crossed
// it.
func (s *State) InitAlerts(cfg *Config, now time.Time) {
	avail := s.Available(cfg, now, CategoryImage)
	s.Account.Alerts = 0
	if avail < s.Account.LowBalanceThreshold {
		s.Account.Alerts |= AlertLow
	}
	if avail < cfg.CheapestImageCredits() {
		s.Account.Alerts |= AlertDepleted
	}
}

// SetLowBalanceThreshold changes the account's line; at or below the
// credits available it re-arms credits.low (which fires at once if the
// new line is above them and the alert was armed).
func (s *State) SetLowBalanceThreshold(cfg *Config, now time.Time, threshold int64, ch *Changes) error {
	if threshold < 0 || threshold > LowBalanceThresholdMax {
		return Errorf(EInvalid, "low_balance_threshold must be an integer between 0 and %d", int64(LowBalanceThresholdMax))
	}
	if threshold == s.Account.LowBalanceThreshold {
		return nil
	}
	s.Account.LowBalanceThreshold = threshold
	if s.Available(cfg, now, CategoryImage) >= threshold {
		s.Account.Alerts &^= AlertLow
	}
	s.Account.UpdatedAt = now
	s.touchAccount(ch)
	return nil
}
