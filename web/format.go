package web

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/creditd/creditd/ledger"
)

func (a *App) funcs() template.FuncMap {
	return template.FuncMap{
		"static":      func(name string) string { return "/app/static/" + name + "?v=" + a.assetVersion },
		"credits":     credits,
		"signed":      signedCredits,
		"until":       until,
		"when":        when,
		"date":        date,
		"iso":         func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"plural":      plural,
		"actionLabel": actionLabel,
		"statusLabel": statusLabel,
		"statusClass": statusClass,
		"initial": func(s string) string {
			if s == "" {
				return "?"
			}
			return strings.ToUpper(s[:1])
		},
		"kib":  kib,
		"ext":  extOf,
		"eq64": func(a, b int64) bool { return a == b },
		"add1": func(i int) int { return i + 1 },
		"join": strings.Join,
		"tz": func(name string) *time.Location {
			loc, err := time.LoadLocation(name)
			if err != nil {
				return time.UTC
			}
			return loc
		},
	}
}

// credits renders a credit amount with thousands separators.
// kib is a size in bytes for people: KB below a MiB, MB with one decimal
// above.
func kib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KB", (n+1023)/1024)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/(1<<20)), ".0") + " MB"
}

func credits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "−" + b.String()
	}
	return b.String()
}

func signedCredits(n int64) string {
	switch {
	case n > 0:
		return "+" + credits(n)
	case n == 0:
		return "±0"
	}
	return credits(n)
}

func plural(n int64, one, many string) string {
	if n == 1 || n == -1 {
		return one
	}
	return many
}

// until renders the time from now to t ("3 h 20 min").
func until(t *time.Time, now time.Time) string {
	if t == nil {
		return ""
	}
	d := t.Sub(now)
	if d < time.Minute {
		return "less than a minute"
	}
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case h >= 48:
		return fmt.Sprintf("%d days", h/24)
	case h > 0 && m > 0:
		return fmt.Sprintf("%d h %d min", h, m)
	case h > 0:
		return fmt.Sprintf("%d h", h)
	}
	return fmt.Sprintf("%d min", m)
}

// The one format of dates and times on every page, in the account's
// time zone.
const (
	dateLayout = "Jan 2, 2006"
	timeLayout = "Jan 2, 2006, 15:04"
)

// when renders a time in the account's zone ("Dec 6, 2026, 14:05"). The
// third argument (the page's now) is not used: every time shows its year.
func when(t time.Time, loc *time.Location, _ time.Time) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(timeLayout)
}

// date renders the day of a time in the account's zone ("Dec 6, 2026").
func date(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(dateLayout)
}

// day renders a calendar day the ledger names as YYYY-MM-DD ("Dec 6,
// 2026").
func day(yyyymmdd string) string {
	d, err := time.Parse(time.DateOnly, yyyymmdd)
	if err != nil {
		return yyyymmdd
	}
	return d.Format(dateLayout)
}

func statusLabel(st ledger.JobStatus) string {
	switch st {
	case ledger.JobQueued:
		return "Waiting to start"
	case ledger.JobRunning:
		return "In progress"
	case ledger.JobSucceeded:
		return "Done"
	case ledger.JobFailed:
		return "Failed"
	case ledger.JobCancelled:
		return "Cancelled"
	case ledger.JobInterrupted:
		return "Interrupted"
	}
	return string(st)
}

func statusClass(st ledger.JobStatus) string {
	switch st {
	case ledger.JobSucceeded:
		return "ok"
	case ledger.JobQueued, ledger.JobRunning:
		return "busy"
	}
	return "off"
}

func extOf(contentType string) string {
	switch contentType {
	case "image/png":
		return "PNG"
	case "image/jpeg":
		return "JPEG"
	case "image/webp":
		return "WebP"
	}
	return "Image"
}

// entryRow is a row of the Billing history: a ledger entry, or a hold (a
// job) from start to end (historyRows). Change is the effect on the
// available credits: a job still running shows what it reserved; an ended
// one what it cost in the end (the charge, or nothing).
type entryRow struct {
	At     time.Time
	Title  string
	Detail string
	Change int64
	Kind   string // in, out or neutral
	JobID  string
}

// historyRows turns a page of entries (newest first) into the history's
// rows: one per job (per hold), at the time it ended, with what it
// reserved, charged and gave back, instead of one row when it started and
// another when it ended. A hold still pending shows its start. holdOf
// reads a hold (nil when it cannot be read).
func historyRows(es []ledger.Entry, holdOf func(id string) *ledger.Hold) []entryRow {
	ended := map[string]bool{}
	jobs := map[string]string{}
	for _, e := range es {
		switch {
		case e.Type == ledger.EntryHold && strings.HasPrefix(e.Reason, "job_"):
			jobs[e.HoldID] = e.Reason
		case e.Type != ledger.EntryHold && e.HoldID != "":
			ended[e.HoldID] = true
		}
	}
	var rows []entryRow
	for _, e := range es {
		switch {
		case e.Type == ledger.EntryHold && e.HoldID != "" && ended[e.HoldID]:
			continue // one row with its ending
		case e.Type == ledger.EntryHold && e.HoldID != "":
			if h := holdOf(e.HoldID); h != nil && h.Status != ledger.HoldPending {
				continue // it ended on a newer page, where its row is
			}
			rows = append(rows, describeEntry(e))
		case e.HoldID != "" && (e.Type == ledger.EntryCapture || e.Type == ledger.EntryRelease || e.Type == ledger.EntryExpiry):
			row := describeEnding(e, holdOf(e.HoldID))
			row.JobID = jobs[e.HoldID]
			rows = append(rows, row)
		default:
			rows = append(rows, describeEntry(e))
		}
	}
	return rows
}

// describeEnding is the row of a hold (a job) that ended with entry e:
// captured (the results delivered), released or expired (nothing charged).
// h is the hold, when it could be read.
func describeEnding(e ledger.Entry, h *ledger.Hold) entryRow {
	row := entryRow{At: e.CreatedAt, Kind: "neutral"}
	var reserved int64
	for _, l := range e.Legs {
		if l.From == ledger.PartHeld {
			reserved += l.Credits
		}
	}
	if h != nil {
		reserved = h.AmountCredits
	}
	action := actionLabel(e.Action)
	switch e.Type {
	case ledger.EntryCapture:
		row.Change = -e.AmountCredits
		row.Title = fmt.Sprintf("%s: %d %s delivered", action, e.Quantity, plural(e.Quantity, "result", "results"))
		if h != nil && e.Quantity < h.Quantity {
			row.Title = fmt.Sprintf("%s: %d of %d results delivered", action, e.Quantity, h.Quantity)
		}
		row.Detail = fmt.Sprintf("%s charged", credits(e.AmountCredits))
		if back := reserved - e.AmountCredits; back > 0 {
			row.Detail = fmt.Sprintf("%s reserved, %s charged, %s returned for results not delivered", credits(reserved), credits(e.AmountCredits), credits(back))
		}
	case ledger.EntryRelease:
		row.Title = action + " " + releaseWords(e.Reason)
		row.Detail = fmt.Sprintf("Nothing charged: the %s %s reserved came back", credits(reserved), plural(reserved, "credit", "credits"))
	default:
		row.Title = action + " timed out"
		row.Detail = fmt.Sprintf("Nothing charged: the %s %s reserved came back", credits(reserved), plural(reserved, "credit", "credits"))
	}
	if row.Change < 0 {
		row.Kind = "out"
	}
	return row
}

// describeEntry is the history row of one entry: what it did in words, and
// how it changed the credits remaining.
func describeEntry(e ledger.Entry) entryRow {
	row := entryRow{At: e.CreatedAt}
	for _, l := range e.Legs {
		if l.To == ledger.PartRemaining {
			row.Change += l.Credits
		}
		if l.From == ledger.PartRemaining {
			row.Change -= l.Credits
		}
	}
	switch e.Type {
	case ledger.EntryGrant, ledger.EntryRefund, ledger.EntryDailyRefresh:
		row.Title, row.Detail = describeGrant(e)
	case ledger.EntryHold, ledger.EntryCapture, ledger.EntryRelease:
		row.Title, row.Detail = describeHold(e, row.Change)
		if e.Type == ledger.EntryHold && strings.HasPrefix(e.Reason, "job_") {
			row.JobID = e.Reason
		}
	case ledger.EntryExpiry:
		row.Title, row.Detail = describeExpiry(e)
	default:
		row.Title = string(e.Type)
	}
	switch {
	case row.Change > 0:
		row.Kind = "in"
	case row.Change < 0:
		row.Kind = "out"
	default:
		row.Kind = "neutral"
	}
	return row
}

// describeGrant words an entry that adds or takes back credits: a grant,
// a refund or the daily refresh.
func describeGrant(e ledger.Entry) (title, detail string) {
	switch e.Type {
	case ledger.EntryGrant:
		switch e.Source {
		case ledger.SourceSignup:
			return sourceLabel(e.Source), "Welcome gift, never expires"
		case ledger.SourcePurchase:
			return "Purchased credits: " + signedCredits(e.AmountCredits), "Thank you! Used last, after free credits"
		}
		return sourceLabel(e.Source), ""
	case ledger.EntryRefund:
		what := "purchase"
		if e.Source != ledger.SourcePurchase {
			what = strings.ToLower(sourceLabel(e.Source))
		}
		return fmt.Sprintf("Refund of %s: %s %s taken back", what, credits(e.AmountCredits), plural(e.AmountCredits, "credit", "credits")),
			"The payment was refunded; credits already used stay used"
	}
	return "Daily free credits", "Refreshed for " + day(e.Reason)
}

// describeHold words a hold's entry: its start, capture or release;
// change is the entry's change to the credits remaining.
func describeHold(e ledger.Entry, change int64) (title, detail string) {
	action := actionLabel(e.Action)
	switch e.Type {
	case ledger.EntryHold:
		return action + " started", fmt.Sprintf("%s %s reserved while it runs", credits(e.AmountCredits), plural(e.AmountCredits, "credit", "credits"))
	case ledger.EntryCapture:
		title = fmt.Sprintf("%s: %d %s delivered", action, e.Quantity, plural(e.Quantity, "result", "results"))
		detail = fmt.Sprintf("%s charged", credits(e.AmountCredits))
		if e.AmountCredits == 0 {
			detail = "Nothing charged"
		}
		if change > 0 {
			detail += fmt.Sprintf("; %s returned for results not delivered", credits(change))
		}
		return title, detail
	}
	return "Refund: " + action + " " + releaseWords(e.Reason), "Nothing charged"
}

// describeExpiry words an expiry: a hold that timed out, daily credits
// ended or unused, or a grant that expired.
func describeExpiry(e ledger.Entry) (title, detail string) {
	switch {
	case e.HoldID != "":
		return "Refund: " + actionLabel(e.Action) + " timed out", "Nothing charged"
	case e.Reason == "plan_change":
		return "Daily free credits ended", "The account left the free plan"
	case e.Source == ledger.SourceDaily:
		return "Unused daily credits expired", "Free credits do not carry over"
	}
	return sourceLabel(e.Source) + " expired", ""
}

func sourceLabel(s ledger.Source) string {
	switch s {
	case ledger.SourceSignup:
		return "Sign-up credits"
	case ledger.SourceDaily:
		return "Daily free credits"
	case ledger.SourcePurchase:
		return "Purchased credits"
	case ledger.SourcePromo:
		return "Promotional credits"
	case ledger.SourceAdmin:
		return "Credits from support"
	}
	return "Credits"
}

func releaseWords(reason string) string {
	switch reason {
	case "failed":
		return "failed"
	case "cancelled":
		return "cancelled"
	case "interrupted":
		return "interrupted"
	case "error":
		return "hit an error"
	}
	return "not completed"
}
