package web

import (
	"net/http"
	"strings"

	"github.com/creditd/creditd/internal/publicurl"
	"github.com/creditd/creditd/ledger"
)

// Buying credit packs: the Add credits page lists the packs, each with a
// form that POSTs to addCreditsPath; the answer is a 303 to Stripe
// Checkout, which sends the user back to the Billing page
// (?checkout=success&session_id=…) or to Add credits (?checkout=cancelled).
const (
	addCreditsPath = "/app/settings/account/billing/add-credits"
	// checkoutFormAction is the form-action source list of the Add credits
	// page: its forms are answered with a redirect to Stripe Checkout, and
	// browsers hold redirects after a form submission to form-action.
	checkoutFormAction = "'self' " + checkoutOrigin
	// checkoutOrigin is where Stripe Checkout pages are served.
	checkoutOrigin = "https://checkout.stripe.com"

	checkoutCancelledNotice = "Checkout cancelled; nothing was charged."
)

// contentSecurityPolicy is the app's policy with a form-action list.
func contentSecurityPolicy(formAction string) string {
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
		"connect-src 'self'; form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'"
}

// buyCredits starts a Stripe Checkout for the chosen pack and sends the
// browser there.
func (a *App) buyCredits(w http.ResponseWriter, r *http.Request, s *session) {
	b := a.Billing
	if b == nil || !b.Enabled() {
		m := message{
			Heading: "Buying credits is not available",
			Text:    "Purchases are not configured on this server, so nothing was charged.",
			Link:    "Back to Add credits", LinkTo: addCreditsPath,
		}
		if a.SupportURL != "" {
			m.Text += " Support can add credits to your account."
			m.Link, m.LinkTo = "Contact support", a.SupportURL
		}
		a.render(w, r, http.StatusServiceUnavailable, "message", s, view{Title: "Purchases unavailable", Page: m})
		return
	}
	url, sessionID, err := b.CheckoutFrom(r.Context(), s.Account, r.PostFormValue("pack"), requestBaseURL(r))
	if err == nil && url == "" {
		err = ledger.Errorf(ledger.EInternal, "checkout session %s has no URL", sessionID)
	}
	if err != nil {
		a.checkoutFailed(w, r, s, err)
		return
	}
	if !strings.HasPrefix(url, checkoutOrigin+"/") {
		// A checkout on another domain (a custom Stripe domain): the page's
		// form-action would block a redirect there, so offer a link.
		a.render(w, r, http.StatusOK, "message", s, view{Title: "Continue to payment", Page: message{
			Heading: "Continue to payment", Text: "You pay on Stripe's secure checkout page.",
			Link: "Continue to checkout", LinkTo: url,
		}})
		return
	}
	http.Redirect(w, r, url, http.StatusSeeOther)
}

// checkoutFailed explains why a checkout could not start. Nothing was
// charged in any case: the payment happens on Stripe's page.
func (a *App) checkoutFailed(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code := ledger.ErrorCode(err)
	status := statusOf(err)
	var text string
	switch code {
	case ledger.ENotFound:
		a.notFound(w, r, s)
		return
	case ledger.EInvalid:
		text = "That credit pack is not for sale. Choose one of the packs on the Add credits page."
	case ledger.EUnavailable:
		text = "The payment provider can't be reached right now. Nothing was charged; please try again in a moment."
	default:
		text = "Something went wrong on our side while starting the payment. Nothing was charged; please try again in a moment."
	}
	if status >= 500 {
		a.log.Error("checkout failed", "account", s.Account, "err", err)
	}
	a.render(w, r, status, "message", s, view{Title: "Checkout could not start", Page: message{
		Heading: "The checkout could not start", Text: text,
		Link: "Back to Add credits", LinkTo: addCreditsPath,
	}})
}

// checkoutNotice reads whether the purchase of the return URL's checkout
// session has been credited to the session's account yet. Another
// account's session, or an unreadable id, reads as not yet credited.
func (a *App) checkoutNotice(r *http.Request, s *session) *checkoutNotice {
	n := &checkoutNotice{Again: r.URL.RequestURI()}
	id := r.URL.Query().Get("session_id")
	b := a.Billing
	if b == nil || ledger.CheckReference(id) != nil { // the session id is a grant's reference
		return n
	}
	st, err := b.Status(r.Context(), s.Account, id)
	if err != nil {
		a.log.Warn("checkout status", "account", s.Account, "session", id, "err", err)
		return n
	}
	n.Credited, n.Credits = st.Credited, st.Credits
	return n
}

// requestBaseURL is scheme://host of a request when the request may name
// the server (see package publicurl), and "" when it may not.
func requestBaseURL(r *http.Request) string {
	base, err := publicurl.FromRequest(r)
	if err != nil {
		return ""
	}
	return base
}
