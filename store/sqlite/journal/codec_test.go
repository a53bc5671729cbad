package journal

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// A journal record decodes to exactly what was encoded (times as the
// tables keep them: UTC microseconds), nil and empty slices included, and
// any truncation of it is an error, never a wrong record.
func TestCodecRoundTrip(t *testing.T) {
	str := rapid.StringOfN(rapid.Rune(), 0, 12, -1)
	i64 := rapid.Int64()
	tm := genTime()
	blob := rapid.Custom(func(t *rapid.T) []byte {
		if rapid.Bool().Draw(t, "nil") {
			return nil
		}
		return rapid.SliceOfN(rapid.Byte(), 0, 20).Draw(t, "bytes")
	})
	rapid.Check(t, func(t *rapid.T) {
		c := &ChangeSet{Seq: i64.Draw(t, "seq")}
		for range rapid.IntRange(0, 3).Draw(t, "accounts") {
			c.Accounts = append(c.Accounts, ledger.Account{ID: str.Draw(t, "id"), Plan: ledger.Plan(str.Draw(t, "plan")),
				Timezone: str.Draw(t, "tz"), CreatedAt: tm.Draw(t, "t"), UpdatedAt: tm.Draw(t, "t"),
				DailyLastDate: str.Draw(t, "d"), DailyNotBefore: tm.Draw(t, "t"), Version: i64.Draw(t, "v"),
				LowBalanceThreshold: i64.Draw(t, "lbt"), Alerts: i64.Draw(t, "alerts")})
		}
		for range rapid.IntRange(0, 3).Draw(t, "grants") {
			c.Grants = append(c.Grants, ledger.Grant{ID: str.Draw(t, "id"), AccountID: str.Draw(t, "a"),
				Source: ledger.Source(str.Draw(t, "s")), Reference: str.Draw(t, "r"), AmountCredits: i64.Draw(t, "n"),
				RemainingCredits: i64.Draw(t, "n"), HeldCredits: i64.Draw(t, "n"), ChargedCredits: i64.Draw(t, "n"),
				ExpiredCredits: i64.Draw(t, "n"), ExpiresAt: tm.Draw(t, "t"), CreatedAt: tm.Draw(t, "t"),
				Notices: i64.Draw(t, "notices")})
		}
		for range rapid.IntRange(0, 3).Draw(t, "holds") {
			c.Holds = append(c.Holds, *drawHold(t, str, i64, tm))
		}
		for range rapid.IntRange(0, 3).Draw(t, "entries") {
			c.Entries = append(c.Entries, *drawEntry(t, str, i64, tm, i64.Draw(t, "id")))
		}
		for range rapid.IntRange(0, 2).Draw(t, "idempotency") {
			c.Idempotency = append(c.Idempotency, ledger.IdempotencyRecord{Principal: str.Draw(t, "p"), Key: str.Draw(t, "k"),
				Fingerprint: str.Draw(t, "f"), Status: rapid.IntRange(100, 599).Draw(t, "status"), Body: blob.Draw(t, "body"),
				CreatedAt: tm.Draw(t, "t")})
		}
		for range rapid.IntRange(0, 2).Draw(t, "jobs") {
			j := ledger.Job{ID: str.Draw(t, "id"), AccountID: str.Draw(t, "a"), Action: str.Draw(t, "x"),
				Category: ledger.Category(str.Draw(t, "c")), Quantity: i64.Draw(t, "n"), Params: json.RawMessage(blob.Draw(t, "params")),
				ParamsVersion: i64.Draw(t, "n"), Status: ledger.JobStatus(str.Draw(t, "s")), HoldID: str.Draw(t, "h"),
				CostCredits: i64.Draw(t, "n"), ChargedCredits: i64.Draw(t, "n"), Attempts: i64.Draw(t, "n"),
				LeaseID: str.Draw(t, "l"), LeaseExpiresAt: tm.Draw(t, "t"), LeaseParamsVersion: i64.Draw(t, "n"),
				Error: str.Draw(t, "e"), CreatedAt: tm.Draw(t, "t"), UpdatedAt: tm.Draw(t, "t"), FinishedAt: tm.Draw(t, "t"),
				Seq: i64.Draw(t, "seq")}
			if !rapid.Bool().Draw(t, "nil outputs") {
				j.Outputs = rapid.SliceOfN(str, 0, 3).Draw(t, "outputs")
			}
			c.Jobs = append(c.Jobs, j)
		}
		for range rapid.IntRange(0, 2).Draw(t, "events") {
			c.Events = append(c.Events, ledger.WebhookEvent{Seq: i64.Draw(t, "seq"), ID: str.Draw(t, "id"),
				Type: str.Draw(t, "type"), AccountID: str.Draw(t, "a"), CreatedAt: tm.Draw(t, "t"),
				Data: json.RawMessage(rapid.SliceOfN(rapid.Byte(), 0, 20).Draw(t, "data"))})
		}
		data, err := EncodeChangeSet(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeChangeSet(data)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		// Decoding makes empty lists of the top-level slices; compare those
		// by length, everything inside exactly.
		norm := func(c *ChangeSet) {
			if len(c.Accounts) == 0 {
				c.Accounts = nil
			}
			if len(c.Grants) == 0 {
				c.Grants = nil
			}
			if len(c.Holds) == 0 {
				c.Holds = nil
			}
			if len(c.Entries) == 0 {
				c.Entries = nil
			}
			if len(c.Idempotency) == 0 {
				c.Idempotency = nil
			}
			if len(c.Jobs) == 0 {
				c.Jobs = nil
			}
			if len(c.Events) == 0 {
				c.Events = nil
			}
			for i := range c.Events {
				if len(c.Events[i].Data) == 0 {
					c.Events[i].Data = nil
				}
			}
		}
		norm(c)
		norm(got)
		if !reflect.DeepEqual(c, got) {
			t.Fatalf("round trip:\n got  %+v\n want %+v", got, c)
		}
		cut := rapid.IntRange(0, len(data)-1).Draw(t, "cut")
		if _, err := DecodeChangeSet(data[:cut]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded without error", cut, len(data))
		}
	})
}

// Entry runs and hold blocks round-trip packed (strings from a small pool,
// so that many are references), blocks written plain before packing still
// decode, and any truncation of either is an error.
func TestBlockCodecRoundTrip(t *testing.T) {
	str := rapid.OneOf(rapid.SampledFrom([]string{"", "acct-1", "generate", "hold_01J", "grant_01J", "available", "held"}),
		rapid.StringOfN(rapid.Rune(), 0, 12, -1))
	i64 := rapid.Int64Range(-1<<40, 1<<40)
	tm := genTime()
	rapid.Check(t, func(t *rapid.T) {
		var es []*ledger.Entry
		id := rapid.Int64Range(1, 1<<40).Draw(t, "first id")
		for range rapid.IntRange(0, 6).Draw(t, "entries") {
			id += rapid.Int64Range(1, 1000).Draw(t, "id step")
			es = append(es, drawEntry(t, str, i64, tm, id))
		}
		var hs []*ledger.Hold
		for range rapid.IntRange(0, 6).Draw(t, "holds") {
			hs = append(hs, drawHold(t, str, i64, tm))
		}
		// Version 1, as written before packing.
		pe := &enc{b: []byte{codecVersion}}
		pe.uint(uint64(len(es)))
		for _, e := range es {
			pe.entry(e)
		}
		ph := &enc{b: []byte{codecVersion}}
		ph.uint(uint64(len(hs)))
		for _, h := range hs {
			ph.hold(h)
		}
		for _, form := range []struct {
			name           string
			entries, holds []byte
		}{{"packed", EncodeEntries(es), EncodeHolds(hs)}, {"plain", pe.b, ph.b}} {
			gotE, err := DecodeEntries(form.entries)
			if err != nil || len(gotE) != len(es) {
				t.Fatalf("%s entries: %d, %v; want %d", form.name, len(gotE), err, len(es))
			}
			for i := range es {
				if !reflect.DeepEqual(gotE[i], *es[i]) {
					t.Fatalf("%s entry %d:\n got  %+v\n want %+v", form.name, i, gotE[i], *es[i])
				}
			}
			gotH, err := DecodeHolds(form.holds)
			if err != nil || len(gotH) != len(hs) {
				t.Fatalf("%s holds: %d, %v; want %d", form.name, len(gotH), err, len(hs))
			}
			for i := range hs {
				if !reflect.DeepEqual(gotH[i], *hs[i]) {
					t.Fatalf("%s hold %d:\n got  %+v\n want %+v", form.name, i, gotH[i], *hs[i])
				}
			}
			if cut := rapid.IntRange(0, len(form.entries)-1).Draw(t, "cut"); true {
				if _, err := DecodeEntries(form.entries[:cut]); err == nil {
					t.Fatalf("%s entry run cut to %d of %d bytes decoded without error", form.name, cut, len(form.entries))
				}
			}
			if cut := rapid.IntRange(0, len(form.holds)-1).Draw(t, "cut"); true {
				if _, err := DecodeHolds(form.holds[:cut]); err == nil {
					t.Fatalf("%s hold block cut to %d of %d bytes decoded without error", form.name, cut, len(form.holds))
				}
			}
		}
	})
}

// A charge cycle's two entries and its hold take about a third of their
// plain size packed, in a run of one account's cycles.
func TestPackedBlocksAreSmaller(t *testing.T) {
	var es []*ledger.Entry
	var hs []*ledger.Hold
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := range 8 {
		h := &ledger.Hold{ID: ledger.HoldIDAt("acct-000042", at), AccountID: "acct-000042", Action: "generate",
			Category: ledger.CategoryImage, Quantity: 1, UnitPriceCredits: 5, AmountCredits: 5, Status: ledger.HoldCaptured,
			Portions: []ledger.Portion{{GrantID: "grant_01KAXJ5W6YQ7ZP3M2N8R4T0VBC", Credits: 5}}, CreatedAt: at,
			ExpiresAt: at.Add(time.Hour), ResolvedAt: at.Add(time.Second), CapturedQuantity: 1, CapturedCredits: 5}
		hs = append(hs, h)
		for k, typ := range []ledger.EntryType{ledger.EntryHold, ledger.EntryCapture} {
			es = append(es, &ledger.Entry{ID: int64(1000 + 2*i + k), AccountID: h.AccountID, Type: typ, AmountCredits: 5,
				HoldID: h.ID, Action: "generate", Quantity: 1, Legs: []ledger.Leg{{GrantID: "grant_01KAXJ5W6YQ7ZP3M2N8R4T0VBC",
					From: "available", To: "held", Credits: 5}}, CreatedAt: at})
		}
		at = at.Add(137 * time.Millisecond)
	}
	plainE := &enc{}
	for _, e := range es {
		plainE.entry(e)
	}
	plainH := &enc{}
	for _, h := range hs {
		plainH.hold(h)
	}
	packedE, packedH := len(EncodeEntries(es)), len(EncodeHolds(hs))
	t.Logf("8 cycles: entries %d → %d bytes, holds %d → %d", len(plainE.b), packedE, len(plainH.b), packedH)
	if packedE*2 > len(plainE.b) || packedH*10 > len(plainH.b)*7 {
		t.Errorf("packed entries %d bytes (plain %d), holds %d (plain %d): want under half and under 70 %%",
			packedE, len(plainE.b), packedH, len(plainH.b))
	}
}

// genTime draws times as the tables keep them: zero, or UTC microseconds.
func genTime() *rapid.Generator[time.Time] {
	return rapid.Custom(func(t *rapid.T) time.Time {
		if rapid.Bool().Draw(t, "zero") {
			return time.Time{}
		}
		return rowscan.FromMicros(rapid.Int64Range(1, 1<<52).Draw(t, "us"))
	})
}

// drawEntry draws an entry with the given id, legs nil or not.
func drawEntry(t *rapid.T, str *rapid.Generator[string], i64 *rapid.Generator[int64], tm *rapid.Generator[time.Time], id int64) *ledger.Entry {
	e := &ledger.Entry{ID: id, AccountID: str.Draw(t, "a"), Type: ledger.EntryType(str.Draw(t, "t")),
		AmountCredits: i64.Draw(t, "n"), Source: ledger.Source(str.Draw(t, "s")), GrantID: str.Draw(t, "g"),
		HoldID: str.Draw(t, "h"), Action: str.Draw(t, "x"), Quantity: i64.Draw(t, "n"), Reason: str.Draw(t, "r"),
		CreatedAt: tm.Draw(t, "t")}
	if !rapid.Bool().Draw(t, "nil legs") {
		e.Legs = []ledger.Leg{}
		for range rapid.IntRange(0, 3).Draw(t, "legs") {
			e.Legs = append(e.Legs, ledger.Leg{GrantID: str.Draw(t, "g"), From: ledger.Part(str.Draw(t, "f")),
				To: ledger.Part(str.Draw(t, "t")), Credits: i64.Draw(t, "n")})
		}
	}
	return e
}

// drawHold draws a hold, portions nil or not.
func drawHold(t *rapid.T, str *rapid.Generator[string], i64 *rapid.Generator[int64], tm *rapid.Generator[time.Time]) *ledger.Hold {
	h := &ledger.Hold{ID: str.Draw(t, "id"), AccountID: str.Draw(t, "a"), Action: str.Draw(t, "x"),
		Category: ledger.Category(str.Draw(t, "c")), Quantity: i64.Draw(t, "n"), UnitPriceCredits: i64.Draw(t, "n"),
		AmountCredits: i64.Draw(t, "n"), Status: ledger.HoldStatus(str.Draw(t, "s")), CreatedAt: tm.Draw(t, "t"),
		ExpiresAt: tm.Draw(t, "t"), ResolvedAt: tm.Draw(t, "t"), CapturedQuantity: i64.Draw(t, "n"),
		CapturedCredits: i64.Draw(t, "n"), ReleaseReason: str.Draw(t, "r")}
	if !rapid.Bool().Draw(t, "nil portions") {
		h.Portions = []ledger.Portion{}
		for range rapid.IntRange(0, 3).Draw(t, "portions") {
			h.Portions = append(h.Portions, ledger.Portion{GrantID: str.Draw(t, "g"), Credits: i64.Draw(t, "n")})
		}
	}
	return h
}
