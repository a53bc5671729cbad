package web

import (
	_ "embed"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/creditd/creditd/ledger"
)

// timezonesText lists the time zones Profile offers: "UTC", then the IANA
// zones of zone.tab and zone1970.tab (the tz database's zones for people:
// one or more per country), one a line, sorted.
//
//go:embed timezones.txt
var timezonesText string

// timezones returns the zones of timezonesText that this machine's time
// zone database knows.
func timezones() []string {
	var out []string
	for _, name := range strings.Fields(timezonesText) {
		if _, err := time.LoadLocation(name); err == nil {
			out = append(out, name)
		}
	}
	return out
}

// profileData is the Profile page.
type profileData struct {
	*session
	// Timezones are the choices of the time-zone select (the account's
	// own first when the list lacks it).
	Timezones []string
}

func (a *App) profile(w http.ResponseWriter, r *http.Request, s *session) {
	acct, err := a.svc.Account(r.Context(), s.Account)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	d := &profileData{session: s, Timezones: a.timezones}
	if !slices.Contains(d.Timezones, acct.Timezone) {
		d.Timezones = append([]string{acct.Timezone}, d.Timezones...)
	}
	a.render(w, r, http.StatusOK, "profile", s, view{Title: "Profile", Nav: "settings", Account: acct, Page: d,
		Notice: notices[r.URL.Query().Get("notice")]})
}

// setTimezone changes the account's time zone (the engine's account
// update). The daily allowance follows it from the next refresh: today's
// free credits keep their end, so a change never gives a second
// allowance the same day (docs/design.md, Daily allowance).
func (a *App) setTimezone(w http.ResponseWriter, r *http.Request, s *session) {
	tz := r.PostFormValue("timezone")
	if !ledger.ValidTimezone(tz) {
		a.back(w, r, profilePath, ledger.Errorf(ledger.EInvalid, "Choose a time zone from the list."))
		return
	}
	if err := a.svc.SetTimezone(r.Context(), s.Account, tz); err != nil {
		a.back(w, r, profilePath, err)
		return
	}
	http.Redirect(w, r, profilePath+"?notice=timezone", http.StatusSeeOther)
}
