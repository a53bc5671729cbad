package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

func newEvent(typ, account string, created time.Time) ledger.WebhookEvent {
	return ledger.WebhookEvent{
		ID: ledger.NewEventID(), Type: typ, AccountID: account, CreatedAt: created,
		Data: json.RawMessage(`{"account_id":"` + account + `","n":1}`),
	}
}

// testEvents: events get increasing seqs in commit order, are read back
// whole after a seq and by id, and a rolled-back batch leaves none.
func testEvents(t *testing.T, s ledger.Store) {
	var first []ledger.WebhookEvent
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("acct-ev"))
		first = []ledger.WebhookEvent{
			newEvent(ledger.EventAccountCreated, "acct-ev", t0.In(zone)),
			newEvent(ledger.EventGrantCreated, "acct-ev", at(time.Second)),
		}
		check(t, "InsertEvents", b.InsertEvents(ctx(t), first))
	})
	if first[0].Seq <= 0 || first[1].Seq <= first[0].Seq {
		t.Fatalf("seqs %d, %d: want positive and increasing", first[0].Seq, first[1].Seq)
	}
	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	check(t, "InsertEvents", b.InsertEvents(ctx(t), []ledger.WebhookEvent{newEvent(ledger.EventCreditsLow, "acct-ev", at(2*time.Second))}))
	check(t, "Rollback", b.Rollback())
	second := []ledger.WebhookEvent{newEvent(ledger.EventCreditsLow, "acct-ev", at(3*time.Second))}
	write(t, s, func(b ledger.Batch) {
		saveGrants(t, b, newGrant("g-ev", "acct-ev", at(time.Second), 5, 0))
		check(t, "InsertEvents", b.InsertEvents(ctx(t), second))
	})
	if second[0].Seq <= first[1].Seq {
		t.Fatalf("later batch's seq %d is not above %d", second[0].Seq, first[1].Seq)
	}
	got, err := s.EventsAfter(ctx(t), 0, 10)
	check(t, "EventsAfter", err)
	want := append(append([]ledger.WebhookEvent{}, first...), second...)
	if len(got) != len(want) {
		t.Fatalf("EventsAfter(0) = %d events, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.ID != w.ID || g.Type != w.Type || g.AccountID != w.AccountID ||
			!g.CreatedAt.Equal(w.CreatedAt) || g.CreatedAt.Location() != time.UTC || string(g.Data) != string(w.Data) {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
	got, err = s.EventsAfter(ctx(t), first[0].Seq, 1)
	check(t, "EventsAfter", err)
	if len(got) != 1 || got[0].ID != first[1].ID {
		t.Errorf("EventsAfter(first seq, 1) = %+v, want the second event", got)
	}
	got, err = s.EventsAfter(ctx(t), second[0].Seq, 10)
	check(t, "EventsAfter", err)
	if len(got) != 0 {
		t.Errorf("EventsAfter(last seq) = %+v, want none", got)
	}
	e, err := s.GetEvent(ctx(t), second[0].ID)
	check(t, "GetEvent", err)
	if e.Seq != second[0].Seq || e.Type != ledger.EventCreditsLow {
		t.Errorf("GetEvent = %+v", e)
	}
	_, err = s.GetEvent(ctx(t), "evt_missing")
	wantCode(t, "GetEvent(missing)", err, ledger.ENotFound)
}

// testAlertColumns: an account's threshold and alert bits and a grant's
// notices round-trip; ListGrantDeadlines finds live non-daily buckets by
// expiry.
func testAlertColumns(t *testing.T, s ledger.Store) {
	a := newAccount("acct-al")
	a.LowBalanceThreshold, a.Alerts = 25, ledger.AlertLow|ledger.AlertDepleted
	g := newGrant("g-al", "acct-al", at(time.Second), 5, 0)
	g.Notices = ledger.NoticeExpiring
	daily := newGrant("g-daily", "acct-al", at(time.Second), 5, 0)
	daily.Source, daily.Reference = ledger.SourceDaily, "2025-03-09"
	spent := newGrant("g-spent", "acct-al", at(time.Second), 0, 0)
	never := newGrant("g-never", "acct-al", at(time.Second), 5, 0)
	never.ExpiresAt = time.Time{}
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, a)
		saveGrants(t, b, g, daily, spent, never)
	})
	got, err := s.GetAccount(ctx(t), "acct-al")
	check(t, "GetAccount", err)
	if got.LowBalanceThreshold != 25 || got.Alerts != ledger.AlertLow|ledger.AlertDepleted {
		t.Errorf("account threshold %d alerts %d, want 25 and 3", got.LowBalanceThreshold, got.Alerts)
	}
	st, err := s.LoadState(ctx(t), "acct-al")
	check(t, "LoadState", err)
	for _, x := range st.Grants {
		if x.ID == "g-al" && x.Notices != ledger.NoticeExpiring {
			t.Errorf("grant notices %d, want %d", x.Notices, ledger.NoticeExpiring)
		}
	}
	ds, err := s.ListGrantDeadlines(ctx(t), time.Time{})
	check(t, "ListGrantDeadlines", err)
	if len(ds) != 1 || ds[0].ID != "g-al" || ds[0].AccountID != "acct-al" || !ds[0].ExpiresAt.Equal(g.ExpiresAt) ||
		ds[0].Notices != ledger.NoticeExpiring {
		t.Errorf("ListGrantDeadlines = %+v, want g-al only", ds)
	}
	ds, err = s.ListGrantDeadlines(ctx(t), g.ExpiresAt.Add(-time.Second))
	check(t, "ListGrantDeadlines", err)
	if len(ds) != 0 {
		t.Errorf("ListGrantDeadlines(before its expiry) = %+v, want none", ds)
	}
}
