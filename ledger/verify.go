package ledger

import (
	"context"
	"fmt"
	"time"
)

// Problem is one mismatch found by Verify.
type Problem struct {
	AccountID string `json:"account_id"`
	Message   string `json:"message"`
}

func (p Problem) String() string { return p.AccountID + ": " + p.Message }

// Verify replays an account's entries and checks that they add up to every
// stored bucket and hold, that no part of a bucket ever went negative, that
// every bucket satisfies amount = remaining + held + charged + expired, and
// that the pending holds account for exactly the held credits. now is used
// to compute the balance it reports.
func Verify(cfg *Config, h *History) []Problem {
	v := &verifier{h: h, replay: map[string]map[Part]int64{}, holdHeld: map[string]int64{}, holdCharged: map[string]int64{}}
	v.replayEntries()
	v.checkBuckets()
	v.checkHolds()
	return v.probs
}

// verifier is Verify's state: what the entries replay to, and the
// problems found.
type verifier struct {
	h           *History
	probs       []Problem
	replay      map[string]map[Part]int64 // grant id → part → credits
	holdHeld    map[string]int64          // hold id → credits it holds
	holdCharged map[string]int64          // hold id → credits it charged
}

func (v *verifier) bad(format string, args ...any) {
	v.probs = append(v.probs, Problem{AccountID: v.h.Account.ID, Message: fmt.Sprintf(format, args...)})
}

// replayEntries replays the entries in order into the buckets' parts and
// the holds' credits.
func (v *verifier) replayEntries() {
	var lastID int64
	for _, en := range v.h.Entries {
		if en.AccountID != v.h.Account.ID {
			v.bad("entry %d belongs to %s", en.ID, en.AccountID)
		}
		if en.ID <= lastID {
			v.bad("entry %d out of order", en.ID)
		}
		lastID = en.ID
		if len(en.Legs) == 0 && en.AmountCredits != 0 {
			v.bad("entry %d (%s) moves %d credits without legs", en.ID, en.Type, en.AmountCredits)
		}
		var moved int64
		for _, l := range en.Legs {
			v.replayLeg(en, l)
			moved += l.Credits
		}
		switch en.Type {
		case EntryGrant, EntryDailyRefresh, EntryHold:
			if moved != en.AmountCredits {
				v.bad("entry %d (%s) says %d credits but its legs move %d", en.ID, en.Type, en.AmountCredits, moved)
			}
		case EntryCapture:
			if v.holdCharged[en.HoldID] != en.AmountCredits {
				v.bad("capture entry %d says %d credits but charges %d", en.ID, en.AmountCredits, v.holdCharged[en.HoldID])
			}
		}
	}
}

// replayLeg moves one leg's credits between the parts of its bucket.
func (v *verifier) replayLeg(en Entry, l Leg) {
	if l.Credits <= 0 {
		v.bad("entry %d has a leg of %d credits", en.ID, l.Credits)
	}
	p := v.replay[l.GrantID]
	if p == nil {
		p = map[Part]int64{}
		v.replay[l.GrantID] = p
	}
	if l.From == PartExternal {
		p[PartExternal] += l.Credits // total granted
	} else {
		p[l.From] -= l.Credits
		if p[l.From] < 0 {
			v.bad("entry %d takes %d %s credits from bucket %s, leaving %d", en.ID, l.Credits, l.From, l.GrantID, p[l.From])
		}
	}
	p[l.To] += l.Credits
	if en.HoldID != "" {
		if l.To == PartHeld {
			v.holdHeld[en.HoldID] += l.Credits
		}
		if l.From == PartHeld {
			v.holdHeld[en.HoldID] -= l.Credits
		}
		if l.To == PartCharged {
			v.holdCharged[en.HoldID] += l.Credits
		}
	}
}

// checkBuckets compares every stored bucket with its replay.
func (v *verifier) checkBuckets() {
	for _, g := range v.h.Grants {
		p := v.replay[g.ID]
		if g.AccountID != v.h.Account.ID {
			v.bad("bucket %s belongs to %s", g.ID, g.AccountID)
		}
		if g.AmountCredits != g.RemainingCredits+g.HeldCredits+g.ChargedCredits+g.ExpiredCredits {
			v.bad("bucket %s: amount %d != remaining %d + held %d + charged %d + expired %d", g.ID,
				g.AmountCredits, g.RemainingCredits, g.HeldCredits, g.ChargedCredits, g.ExpiredCredits)
		}
		want := map[Part]int64{PartExternal: g.AmountCredits, PartRemaining: g.RemainingCredits,
			PartHeld: g.HeldCredits, PartCharged: g.ChargedCredits, PartExpired: g.ExpiredCredits}
		for part, n := range want {
			if p[part] != n {
				v.bad("bucket %s: stored %s %d, ledger replays %d", g.ID, part, n, p[part])
			}
		}
		delete(v.replay, g.ID)
	}
	for id := range v.replay {
		v.bad("ledger moves credits of bucket %s that is not stored", id)
	}
}

// checkHolds compares every stored hold with its replay, and the pending
// holds with the credits the buckets hold.
func (v *verifier) checkHolds() {
	var pendingHeld, bucketHeld int64
	for _, g := range v.h.Grants {
		bucketHeld += g.HeldCredits
	}
	for _, hd := range v.h.Holds {
		switch hd.Status {
		case HoldPending:
			pendingHeld += hd.AmountCredits
			if v.holdHeld[hd.ID] != hd.AmountCredits {
				v.bad("pending hold %s: amount %d, ledger holds %d", hd.ID, hd.AmountCredits, v.holdHeld[hd.ID])
			}
		case HoldCaptured, HoldReleased, HoldExpired:
			if v.holdHeld[hd.ID] != 0 {
				v.bad("%s hold %s still holds %d in the ledger", hd.Status, hd.ID, v.holdHeld[hd.ID])
			}
			if v.holdCharged[hd.ID] != hd.CapturedCredits {
				v.bad("%s hold %s: captured %d, ledger charged %d", hd.Status, hd.ID, hd.CapturedCredits, v.holdCharged[hd.ID])
			}
		default:
			v.bad("hold %s has unknown status %q", hd.ID, hd.Status)
		}
		var portions int64
		for _, p := range hd.Portions {
			portions += p.Credits
		}
		if portions != hd.AmountCredits || hd.AmountCredits != hd.UnitPriceCredits*hd.Quantity {
			v.bad("hold %s: amount %d, portions %d, unit price %d × %d", hd.ID, hd.AmountCredits, portions, hd.UnitPriceCredits, hd.Quantity)
		}
		if hd.CapturedQuantity < 0 || hd.CapturedQuantity > hd.Quantity {
			v.bad("hold %s captured %d of %d", hd.ID, hd.CapturedQuantity, hd.Quantity)
		}
	}
	if pendingHeld != bucketHeld {
		v.bad("pending holds total %d but buckets hold %d", pendingHeld, bucketHeld)
	}
}

// VerifyReport summarises a verify run.
type VerifyReport struct {
	Accounts int       `json:"accounts"`
	Entries  int       `json:"entries"`
	Problems []Problem `json:"problems"`
	At       time.Time `json:"at"`
}

// verifyPageSize is how many account ids VerifyStore reads per query.
const verifyPageSize = 1000

// VerifyStore runs Verify over every account in a store.
func VerifyStore(ctx context.Context, cfg *Config, store Store) (*VerifyReport, error) {
	rep := &VerifyReport{Problems: []Problem{}, At: time.Now().UTC()}
	after := ""
	for {
		ids, err := store.ListAccountIDs(ctx, ListAccountIDsParams{After: after, Limit: verifyPageSize})
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			h, err := store.LoadHistory(ctx, id)
			if err != nil {
				return nil, err
			}
			rep.Accounts++
			rep.Entries += len(h.Entries)
			rep.Problems = append(rep.Problems, Verify(cfg, h)...)
		}
		if len(ids) < verifyPageSize {
			return rep, nil
		}
		after = ids[len(ids)-1]
	}
}
