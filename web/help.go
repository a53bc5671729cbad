package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/creditd/creditd/ledger"
)

// The help articles. Each explains the rules in the product's words and
// takes every number from the configuration, so what users read is what
// the engine does. Under each, "Was this article helpful?" takes one
// answer per account (ledger.Feedback), which the admin lists with
// GET /v1/feedback.
const (
	// creditsArticle is the id of "Credits & usage" (its feedback's
	// article, and the last element of its address).
	creditsArticle = "credits-and-usage"
	creditsPath    = "/app/help/" + creditsArticle
)

// feedbackMessages are the outcomes of sending feedback, named in the
// address the form redirects to (post/redirect/get): whether it worked
// or why not.
var feedbackMessages = map[string]struct {
	Text string
	OK   bool
}{
	"thanks":   {"Thanks for the feedback! You can change your answer at any time.", true},
	"missing":  {"Your feedback was not sent: choose Yes or No.", false},
	"too-long": {"Your feedback was not sent: a comment can be at most " + credits(ledger.FeedbackCommentCharsMax) + " characters. Please shorten it and send it again.", false},
	"failed":   {"There was a problem saving your feedback, and it was not sent. Please try again in a moment.", false},
}

// helpData is the Credits & usage article.
type helpData struct {
	Prices []priceLine
	// ImageUnit is what every image action costs when they all cost the
	// same, else 0.
	ImageUnit     int64
	DailyCredits  int64
	SignupCredits int64
	Timezone      string
	// FreeActions are what daily and sign-up credits pay for; PaidOnly
	// the other priced actions, with the credits that pay for them.
	FreeActions []string
	PaidOnly    []paidOnlyLine
	// SpendOrder names the sources in the order the rules spend them
	// (among credits with the same expiry).
	SpendOrder []string

	CSRF            string
	Feedback        *ledger.Feedback
	Message         string
	MessageOK       bool
	CommentCharsMax int64
}

// paidOnlyLine is a kind of work that free credits do not pay for.
type paidOnlyLine struct {
	Label, Lower string
	Sources      []string
}

// HelpfulAnswer is the account's current answer: "yes", "no" or "".
func (d *helpData) HelpfulAnswer() string {
	switch {
	case d.Feedback == nil:
		return ""
	case d.Feedback.Helpful:
		return "yes"
	}
	return "no"
}

// creditsHelp fills the article from the configuration.
func (a *App) creditsHelp(acct ledger.Account) *helpData {
	cfg := a.cfg
	d := &helpData{Prices: priceLines(cfg.Prices), DailyCredits: cfg.DailyCredits, SignupCredits: cfg.SignupCredits,
		Timezone: acct.Timezone, CommentCharsMax: ledger.FeedbackCommentCharsMax}
	var imageLines int
	for _, l := range d.Prices {
		if l.Category == ledger.CategoryImage {
			imageLines++
			d.ImageUnit = l.Credits
		}
	}
	if imageLines != 1 {
		d.ImageUnit = 0
	}
	rules := slices.Clone(cfg.Sources)
	slices.SortStableFunc(rules, func(x, y ledger.SourceRule) int { return x.Rank - y.Rank })
	for _, r := range rules {
		d.SpendOrder = append(d.SpendOrder, strings.ToLower(sourceLabel(r.Source)))
	}
	free := func(cat ledger.Category) bool {
		return cfg.Pays(ledger.SourceDaily, cat) || cfg.Pays(ledger.SourceSignup, cat)
	}
	for _, l := range d.Prices {
		if free(l.Category) {
			d.FreeActions = append(d.FreeActions, l.Actions...)
			continue
		}
		line := paidOnlyLine{Label: l.Label, Lower: strings.ToLower(l.Label)}
		for _, r := range rules {
			if cfg.Pays(r.Source, l.Category) {
				line.Sources = append(line.Sources, strings.ToLower(sourceLabel(r.Source)))
			}
		}
		d.PaidOnly = append(d.PaidOnly, line)
	}
	return d
}

func (a *App) creditsArticle(w http.ResponseWriter, r *http.Request, s *session) {
	acct, err := a.svc.Account(r.Context(), s.Account)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	d := a.creditsHelp(acct)
	d.CSRF = s.CSRF
	if f, ok, err := a.svc.Feedback(r.Context(), s.Account, creditsArticle); err != nil {
		a.log.Warn("read feedback", "account", s.Account, "err", err)
	} else if ok {
		d.Feedback = &f
	}
	if m, ok := feedbackMessages[r.URL.Query().Get("feedback")]; ok {
		d.Message, d.MessageOK = m.Text, m.OK
	}
	a.render(w, r, http.StatusOK, "help", s, view{Title: "Credits & usage", Nav: "help", Account: acct, Page: d})
}

// sendFeedback takes the article's "Was this article helpful?" form and
// redirects back to the article with its outcome (thanks, or why not).
// A second answer replaces the first.
func (a *App) sendFeedback(w http.ResponseWriter, r *http.Request, s *session) {
	back := func(outcome string) {
		http.Redirect(w, r, creditsPath+"?"+url.Values{"feedback": {outcome}}.Encode()+"#feedback", http.StatusSeeOther)
	}
	var helpful bool
	switch r.PostFormValue("helpful") {
	case "yes":
		helpful = true
	case "no":
	default:
		back("missing")
		return
	}
	_, err := a.svc.SaveFeedback(r.Context(), s.Account, creditsArticle, helpful, r.PostFormValue("comment"))
	switch {
	case err == nil:
		back("thanks")
	case ledger.ErrorCode(err) == ledger.EInvalid:
		// The form's text passed the text rule (form does it), so only the
		// comment's length is left to refuse.
		back("too-long")
	default:
		a.log.Error("save feedback", "account", s.Account, "err", err)
		back("failed")
	}
}
