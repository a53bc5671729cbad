package web

import (
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

// TestRules: what the pages state about prices and sources follows the
// configuration.
func TestRules(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		r := newRules(ledger.DefaultConfig())
		if r.DailyCredits != 15 || r.SignupCredits != 30 || r.ImageCost() != "5 credits" ||
			r.VideoPaidWith() != "credits from support or purchased credits" || !r.PurchaseLast || !r.PurchaseAlsoPaysVideo || r.AllPayVideo {
			t.Errorf("%+v %q %q", r, r.ImageCost(), r.VideoPaidWith())
		}
	})
	t.Run("Configured", func(t *testing.T) {
		c := ledger.DefaultConfig()
		c.Prices = []ledger.Price{
			{Action: "generate", Category: ledger.CategoryImage, UnitCredits: 8},
			{Action: "crop", Category: ledger.CategoryImage, UnitCredits: 1},
			{Action: "video", Category: ledger.CategoryVideo, UnitCredits: 70},
		}
		for i := range c.Sources {
			c.Sources[i].Categories = []ledger.Category{ledger.CategoryImage, ledger.CategoryVideo}
			if c.Sources[i].Source == ledger.SourcePurchase {
				c.Sources[i].Rank = 1 // before sign-up and support credits
			}
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		r := newRules(c)
		if r.ImageCost() != "1 to 8 credits" || !r.AllPayVideo || r.PurchaseLast {
			t.Errorf("%+v %q", r, r.ImageCost())
		}
		if got := r.purchaseNote(); got != "Bought in Add credits" || r.BoughtCredits() != "" {
			t.Errorf("purchase note %q, %q", got, r.BoughtCredits())
		}
	})
}

// TestDates: one format for dates and one for times, in the given zone,
// whatever the year.
func TestDates(t *testing.T) {
	auckland, err := time.LoadLocation("Pacific/Auckland")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 14, 5, 0, 0, time.UTC) // Dec 7, 03:05 in Auckland
	if got := when(at, auckland, at); got != "Dec 7, 2026, 03:05" {
		t.Errorf("when: %q", got)
	}
	if got := when(at, nil, at); got != "Dec 6, 2026, 14:05" {
		t.Errorf("when in UTC: %q", got)
	}
	if got := date(at, auckland); got != "Dec 7, 2026" {
		t.Errorf("date: %q", got)
	}
	if got := day("2026-12-06"); got != "Dec 6, 2026" {
		t.Errorf("day: %q", got)
	}
}
