package web

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/ledger"
)

// rules are the configured numbers and rules the pages state, read from
// the ledger's configuration once, so that every number a user reads on a
// page is the one the service applies.
type rules struct {
	DailyCredits  int64
	SignupCredits int64
	// ImageCreditsMin and ImageCreditsMax bound what one image result
	// costs (both 0 when no image action is priced).
	ImageCreditsMin, ImageCreditsMax int64
	// VideoPayers name the credits that pay for video, in burn-down
	// order ("purchased credits"); AllPayVideo is whether every source
	// does.
	VideoPayers []string
	AllPayVideo bool
	// PurchaseLast is whether purchased credits are spent after every
	// other kind; PurchaseAlsoPaysVideo whether they pay for video where
	// some other credits do not.
	PurchaseLast          bool
	PurchaseAlsoPaysVideo bool
	// UploadBytesMax bounds one uploaded image; SignInLinkMinutes is how
	// long a sign-in link works.
	UploadBytesMax    int64
	SignInLinkMinutes int64
}

func newRules(cfg *ledger.Config) *rules {
	r := &rules{
		DailyCredits: cfg.DailyCredits, SignupCredits: cfg.SignupCredits,
		UploadBytesMax: imageops.UploadBytesMax, SignInLinkMinutes: int64(app.LoginLinkTTL / time.Minute),
		AllPayVideo: true,
	}
	for _, p := range cfg.Prices {
		if p.Category != ledger.CategoryImage {
			continue
		}
		if r.ImageCreditsMin == 0 || p.UnitCredits < r.ImageCreditsMin {
			r.ImageCreditsMin = p.UnitCredits
		}
		r.ImageCreditsMax = max(r.ImageCreditsMax, p.UnitCredits)
	}
	sources := slices.Clone(cfg.Sources)
	slices.SortStableFunc(sources, func(a, b ledger.SourceRule) int { return a.Rank - b.Rank })
	purchase, _ := cfg.SourceRule(ledger.SourcePurchase)
	r.PurchaseLast = true
	for _, s := range sources {
		if cfg.Pays(s.Source, ledger.CategoryVideo) {
			r.VideoPayers = append(r.VideoPayers, sourceWords(s.Source))
		} else {
			r.AllPayVideo = false
		}
		if s.Source != ledger.SourcePurchase && s.Rank >= purchase.Rank {
			r.PurchaseLast = false
		}
	}
	r.PurchaseAlsoPaysVideo = cfg.Pays(ledger.SourcePurchase, ledger.CategoryVideo) && !r.AllPayVideo
	return r
}

// ImageCost is what one image result costs: "5 credits", or "5 to 8
// credits" when image actions cost different amounts.
func (r *rules) ImageCost() string {
	if r.ImageCreditsMin == r.ImageCreditsMax {
		return fmt.Sprintf("%s %s", credits(r.ImageCreditsMax), plural(r.ImageCreditsMax, "credit", "credits"))
	}
	return fmt.Sprintf("%s to %s credits", credits(r.ImageCreditsMin), credits(r.ImageCreditsMax))
}

// VideoPaidWith names the credits that pay for video: "purchased credits
// or credits from support".
func (r *rules) VideoPaidWith() string {
	switch n := len(r.VideoPayers); n {
	case 0:
		return "no credits"
	case 1:
		return r.VideoPayers[0]
	default:
		return strings.Join(r.VideoPayers[:n-1], ", ") + " or " + r.VideoPayers[n-1]
	}
}

// sourceWords names a source's credits inside a sentence.
func sourceWords(s ledger.Source) string {
	switch s {
	case ledger.SourceSignup:
		return "sign-up credits"
	case ledger.SourceDaily:
		return "daily free credits"
	case ledger.SourcePurchase:
		return "purchased credits"
	case ledger.SourcePromo:
		return "promotional credits"
	case ledger.SourceAdmin:
		return "credits from support"
	}
	return string(s) + " credits"
}

// BoughtCredits says how bought credits are spent, as configured ("" when
// they are like any other).
func (r *rules) BoughtCredits() string {
	switch {
	case r.PurchaseLast && r.PurchaseAlsoPaysVideo:
		return "Bought credits are used last, after your free credits, and pay for video too."
	case r.PurchaseLast:
		return "Bought credits are used last, after your free credits."
	case r.PurchaseAlsoPaysVideo:
		return "Bought credits pay for video too."
	}
	return ""
}

// purchaseNote is BoughtCredits as a note under the purchased credits of
// the balance.
func (r *rules) purchaseNote() string {
	switch {
	case r.PurchaseLast && r.PurchaseAlsoPaysVideo:
		return "Used last, after free credits; they also pay for video"
	case r.PurchaseLast:
		return "Used last, after free credits"
	case r.PurchaseAlsoPaysVideo:
		return "They also pay for video"
	}
	return "Bought in Add credits"
}
