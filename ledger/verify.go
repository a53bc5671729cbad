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
	var probs []Problem
	bad := func(format string, args ...any) {
		probs = append(probs, Problem{AccountID: h.Account.ID, Message: fmt.Sprintf(format, args...)})
	}
	type parts map[Part]int64
	replay := map[string]parts{}
	holdHeld := map[string]int64{}
	holdCharged := map[string]int64{}
	var lastID int64
	for _, en := range h.Entries {
		if en.AccountID != h.Account.ID {
			bad("entry %d belongs to %s", en.ID, en.AccountID)
		}
		if en.ID <= lastID {
			bad("entry %d out of order", en.ID)
		}
		lastID = en.ID
		if len(en.Legs) == 0 && en.AmountCredits != 0 {
			bad("entry %d (%s) moves %d credits without legs", en.ID, en.Type, en.AmountCredits)
		}
		var moved int64
		for _, l := range en.Legs {
			if l.Credits <= 0 {
				bad("entry %d has a leg of %d credits", en.ID, l.Credits)
			}
			p := replay[l.GrantID]
			if p == nil {
				p = parts{}
				replay[l.GrantID] = p
			}
			if l.From == PartExternal {
				p[PartExternal] += l.Credits // total granted
			} else {
				p[l.From] -= l.Credits
				if p[l.From] < 0 {
					bad("entry %d takes %d %s credits from bucket %s, leaving %d", en.ID, l.Credits, l.From, l.GrantID, p[l.From])
				}
			}
			p[l.To] += l.Credits
			if en.HoldID != "" {
				if l.To == PartHeld {
					holdHeld[en.HoldID] += l.Credits
				}
				if l.From == PartHeld {
					holdHeld[en.HoldID] -= l.Credits
				}
				if l.To == PartCharged {
					holdCharged[en.HoldID] += l.Credits
				}
			}
			moved += l.Credits
		}
		switch en.Type {
		case EntryGrant, EntryDailyRefresh, EntryHold:
			if moved != en.AmountCredits {
				bad("entry %d (%s) says %d credits but its legs move %d", en.ID, en.Type, en.AmountCredits, moved)
			}
		case EntryCapture:
			if holdCharged[en.HoldID] != en.AmountCredits {
				bad("capture entry %d says %d credits but charges %d", en.ID, en.AmountCredits, holdCharged[en.HoldID])
			}
		}
	}
	for _, g := range h.Grants {
		p := replay[g.ID]
		if p == nil {
			p = parts{}
		}
		if g.AccountID != h.Account.ID {
			bad("bucket %s belongs to %s", g.ID, g.AccountID)
		}
		if g.AmountCredits != g.RemainingCredits+g.HeldCredits+g.ChargedCredits+g.ExpiredCredits {
			bad("bucket %s: amount %d != remaining %d + held %d + charged %d + expired %d", g.ID,
				g.AmountCredits, g.RemainingCredits, g.HeldCredits, g.ChargedCredits, g.ExpiredCredits)
		}
		want := map[Part]int64{PartExternal: g.AmountCredits, PartRemaining: g.RemainingCredits,
			PartHeld: g.HeldCredits, PartCharged: g.ChargedCredits, PartExpired: g.ExpiredCredits}
		for part, v := range want {
			if p[part] != v {
				bad("bucket %s: stored %s %d, ledger replays %d", g.ID, part, v, p[part])
			}
		}
		delete(replay, g.ID)
	}
	for id := range replay {
		bad("ledger moves credits of bucket %s that is not stored", id)
	}
	var pendingHeld, bucketHeld int64
	for _, g := range h.Grants {
		bucketHeld += g.HeldCredits
	}
	for _, hd := range h.Holds {
		switch hd.Status {
		case HoldPending:
			pendingHeld += hd.AmountCredits
			if holdHeld[hd.ID] != hd.AmountCredits {
				bad("pending hold %s: amount %d, ledger holds %d", hd.ID, hd.AmountCredits, holdHeld[hd.ID])
			}
		case HoldCaptured, HoldReleased, HoldExpired:
			if holdHeld[hd.ID] != 0 {
				bad("%s hold %s still holds %d in the ledger", hd.Status, hd.ID, holdHeld[hd.ID])
			}
			if holdCharged[hd.ID] != hd.CapturedCredits {
				bad("%s hold %s: captured %d, ledger charged %d", hd.Status, hd.ID, hd.CapturedCredits, holdCharged[hd.ID])
			}
		default:
			bad("hold %s has unknown status %q", hd.ID, hd.Status)
		}
		var portions int64
		for _, p := range hd.Portions {
			portions += p.Credits
		}
		if portions != hd.AmountCredits || hd.AmountCredits != hd.UnitPriceCredits*hd.Quantity {
			bad("hold %s: amount %d, portions %d, unit price %d × %d", hd.ID, hd.AmountCredits, portions, hd.UnitPriceCredits, hd.Quantity)
		}
		if hd.CapturedQuantity < 0 || hd.CapturedQuantity > hd.Quantity {
			bad("hold %s captured %d of %d", hd.ID, hd.CapturedQuantity, hd.Quantity)
		}
	}
	if pendingHeld != bucketHeld {
		bad("pending holds total %d but buckets hold %d", pendingHeld, bucketHeld)
	}
	return probs
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
