package web_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

// dailyGrants lists the expiry of each daily allowance an account got.
func (e *env) dailyGrants(id string) []time.Time {
	e.t.Helper()
	es, _, err := e.eng.ListEntries(context.Background(), id, 0, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := e.eng.Balance(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	expiry := map[string]time.Time{}
	for _, bk := range b.Buckets {
		if bk.Source == ledger.SourceDaily && bk.ExpiresAt != nil {
			expiry[bk.GrantID] = *bk.ExpiresAt
		}
	}
	var out []time.Time
	for _, en := range es {
		if en.Type == ledger.EntryDailyRefresh {
			out = append(out, expiry[en.GrantID])
		}
	}
	return out
}

// TestTimezoneSetting reproduces issue 20 (users could not set their time
// zone, so "local midnight" was UTC): Profile offers the IANA zones and
// saves the choice through the engine's account update; the change takes
// effect from the next refresh and never brings a second allowance the
// same day.
func TestTimezoneSetting(t *testing.T) {
	e := newEnv(t) // the clock starts at 2026-06-15 10:00 UTC
	e.account("alice")
	u := e.signIn("alice")
	must(t, u.get("/app/settings/account/profile"), http.StatusOK,
		`<select id="timezone" name="timezone"`, `<option value="UTC" selected>UTC</option>`, `<option value="Europe/Berlin">Europe/Berlin</option>`,
		`<option value="Pacific/Kiritimati">`, "never brings a second allowance on the same day")
	before := e.available("alice")
	if got := e.dailyGrants("alice"); len(got) != 1 || !got[0].Equal(time.Date(2026, 6, 16, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("daily allowances at the start: %v", got)
	}

	t.Run("UnknownZoneRefused", func(t *testing.T) {
		must(t, u.post("/app/settings/account/profile/timezone", url.Values{"timezone": {"Mars/Olympus_Mons"}}), http.StatusBadRequest,
			"Choose a time zone from the list.", `<option value="UTC" selected>`)
	})

	// In Kiritimati (UTC+14) it is already June 16: a naive rule would
	// grant June 16's allowance now, a second one today.
	p := must(t, u.post("/app/settings/account/profile/timezone", url.Values{"timezone": {"Pacific/Kiritimati"}}), http.StatusOK,
		"Time zone saved.", `<option value="Pacific/Kiritimati" selected>`)
	if p.location != "/app/settings/account/profile?notice=timezone" {
		t.Fatalf("saved to %s", p.location)
	}
	if acct, err := e.eng.GetAccount(context.Background(), "alice"); err != nil || acct.Timezone != "Pacific/Kiritimati" {
		t.Fatalf("account %+v %v", acct, err)
	}
	if got := e.dailyGrants("alice"); len(got) != 1 || e.available("alice") != before {
		t.Fatalf("after the change: allowances %v, available %d (was %d): a second allowance the same day", got, e.available("alice"), before)
	}

	// Today's allowance keeps its end (UTC midnight); from then on the
	// allowance follows Kiritimati's midnight (10:00 UTC).
	e.clock.Set(time.Date(2026, 6, 15, 23, 59, 0, 0, time.UTC))
	if got := e.dailyGrants("alice"); len(got) != 1 {
		t.Fatalf("before today's end: %v", got)
	}
	e.clock.Set(time.Date(2026, 6, 16, 0, 0, 0, 0, time.UTC))
	got := e.dailyGrants("alice")
	if len(got) != 2 || !got[0].Equal(time.Date(2026, 6, 16, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("at the old allowance's end: %v, want a new one ending at Kiritimati's midnight (10:00 UTC)", got)
	}
}
