package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/creditd/creditd/ledger"
)

// The low-balance banner and its setting. Every signed-in page shows the
// banner while the account's credits for images are below its
// low_balance_threshold (the line of the credits.low alert), and says so
// when they no longer pay for the cheapest image action (credits.depleted's
// line). The banner is the balance's state, not the alert: it shows for as
// long as the account is below the line, and goes away as soon as it is
// not (a grant, or a lower line). The pages' script follows the live
// balance (/app/events) and fetches the banner again when its state
// changes, so it appears and disappears without a reload; without
// JavaScript, each page load shows the current state.

// lowBalancePath is where the Billing page's form sets the line.
const lowBalancePath = billingPath + "/low-balance"

// billingPath is the Billing page.
const billingPath = "/app/settings/account/billing"

// balanceAlert is the state the banner shows; nil when there is nothing
// to say.
type balanceAlert struct {
	// Depleted: the credits for images do not pay for the cheapest image
	// action. Otherwise they are below Threshold.
	Depleted  bool
	Available int64
	Threshold int64
	// ImageCredits is what the cheapest image action costs.
	ImageCredits int64
	// NextRefresh is when daily free credits come back (free plan).
	NextRefresh *time.Time
}

// State names the banner's state for the script: "depleted", "low" or "".
func (b *balanceAlert) State() string {
	switch {
	case b == nil:
		return ""
	case b.Depleted:
		return "depleted"
	}
	return "low"
}

// Images is how many of the cheapest image actions the credits pay for.
func (b *balanceAlert) Images() int64 {
	if b.ImageCredits <= 0 {
		return 0
	}
	return b.Available / b.ImageCredits
}

// alertOf is the banner's state for an account and its balance.
func alertOf(acct ledger.Account, bal ledger.Balance, rules *rules) *balanceAlert {
	if acct.ID == "" || bal.AccountID == "" {
		return nil // no balance read: say nothing rather than something wrong
	}
	avail := bal.AvailableByCategory[ledger.CategoryImage]
	b := &balanceAlert{Available: avail, Threshold: acct.LowBalanceThreshold, ImageCredits: rules.ImageCreditsMin,
		NextRefresh: bal.NextDailyRefreshAt}
	switch {
	case rules.ImageCreditsMin > 0 && avail < rules.ImageCreditsMin:
		b.Depleted = true
	case avail < acct.LowBalanceThreshold:
	default:
		return nil
	}
	return b
}

// BalanceAlert is the page's low-balance banner (nil: none).
func (v view) BalanceAlert() *balanceAlert {
	if v.Session == nil || v.Rules == nil {
		return nil
	}
	return alertOf(v.Account, v.Balance, v.Rules)
}

// lowBalanceThreshold reads the threshold form's value: a whole number of
// credits from 0 to ledger.LowBalanceThresholdMax (spaces and thousands
// separators allowed).
func lowBalanceThreshold(v string) (int64, error) {
	v = strings.NewReplacer(",", "", " ", "", "\u00a0", "").Replace(strings.TrimSpace(v))
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > ledger.LowBalanceThresholdMax {
		return 0, ledger.Errorf(ledger.EInvalid, "Enter a whole number of credits from 0 to %s.", credits(ledger.LowBalanceThresholdMax))
	}
	return n, nil
}

// setLowBalance changes the account's low-balance line (app's use case,
// the same as PUT /v1/accounts/{id} with low_balance_threshold). Bad input
// writes nothing and comes back to Billing with a message and the value
// sent.
func (a *App) setLowBalance(w http.ResponseWriter, r *http.Request, s *session) {
	back := withValues(billingPath, url.Values{}, r.PostForm) + "#low-balance-h"
	n, err := lowBalanceThreshold(r.PostFormValue("threshold"))
	if err == nil {
		err = a.svc.SetLowBalanceThreshold(r.Context(), s.Account, n)
	}
	if err != nil {
		if statusOf(err) >= 500 {
			a.fail(w, r, s, err)
			return
		}
		a.back(w, r, back, err)
		return
	}
	http.Redirect(w, r, billingPath+"?notice=low-balance#low-balance-h", http.StatusSeeOther)
}

// ImageAvailable is what the account has for images now (the banner's
// number; the script compares the live balance with it).
func (v view) ImageAvailable() int64 { return v.Balance.AvailableByCategory[ledger.CategoryImage] }
