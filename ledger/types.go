package ledger

import (
	"crypto/rand"
	"hash/fnv"
	"regexp"
	"strings"
	"time"
)

// Account is a credit account. Daily* fields implement the lazily computed
// daily allowance: it belongs to the account and a local date.
type Account struct {
	ID        string    `json:"id"`
	Plan      Plan      `json:"plan"`
	Timezone  string    `json:"timezone"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// DailyLastDate is the local date (YYYY-MM-DD) of the last daily
	// allowance issued, "" if none.
	DailyLastDate string `json:"-"`
	// DailyNotBefore is the scheduled refresh at the time the last allowance
	// was issued (its bucket's expiry): a time-zone change takes effect only
	// from there.
	DailyNotBefore time.Time `json:"-"`
	// Version increases with every committed change to the account's state.
	Version int64 `json:"-"`
	// LowBalanceThreshold is the line of credits.low: image credits
	// available below it (docs/webhooks.md, "Balance alerts").
	LowBalanceThreshold int64 `json:"low_balance_threshold"`
	// Alerts holds the AlertLow and AlertDepleted bits: alerts sent and
	// not re-armed since.
	Alerts int64 `json:"-"`
}

// Grant is a bucket of credits from one source.
type Grant struct {
	ID               string    `json:"id"`
	AccountID        string    `json:"account_id"`
	Source           Source    `json:"source"`
	Reference        string    `json:"reference,omitempty"`
	AmountCredits    int64     `json:"amount"`
	RemainingCredits int64     `json:"remaining"`
	HeldCredits      int64     `json:"held"`
	ChargedCredits   int64     `json:"charged"`
	ExpiredCredits   int64     `json:"expired"`
	ExpiresAt        time.Time `json:"-"` // zero: never
	CreatedAt        time.Time `json:"created_at"`
	// Notices holds the NoticeExpiring and NoticeRefunded bits.
	Notices int64 `json:"-"`
}

// Expired reports whether the bucket's expiry has passed at now.
func (g *Grant) Expired(now time.Time) bool {
	return !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt)
}

func (g *Grant) check() {
	if g.RemainingCredits < 0 || g.HeldCredits < 0 || g.ChargedCredits < 0 || g.ExpiredCredits < 0 {
		invariantf("grant %s has a negative part: %+v", g.ID, *g)
	}
	if g.AmountCredits != g.RemainingCredits+g.HeldCredits+g.ChargedCredits+g.ExpiredCredits {
		invariantf("grant %s: amount %d != remaining+held+charged+expired", g.ID, g.AmountCredits)
	}
}

// HoldStatus is the state of a hold.
type HoldStatus string

const (
	HoldPending  HoldStatus = "pending"
	HoldCaptured HoldStatus = "captured"
	HoldReleased HoldStatus = "released"
	HoldExpired  HoldStatus = "expired"
)

// Release reasons accepted from callers.
var ReleaseReasons = []string{"failed", "cancelled", "error", "interrupted"}

// Portion is the part of a hold taken from one bucket, in burn-down order.
type Portion struct {
	GrantID string `json:"grant_id"`
	Credits int64  `json:"credits"`
}

// Hold reserves credits for quantity outputs of an action at a locked price.
type Hold struct {
	ID               string     `json:"id"`
	AccountID        string     `json:"account_id"`
	Action           string     `json:"action"`
	Category         Category   `json:"category"`
	Quantity         int64      `json:"quantity"`
	UnitPriceCredits int64      `json:"unit_price"`
	AmountCredits    int64      `json:"amount"`
	Status           HoldStatus `json:"status"`
	Portions         []Portion  `json:"portions"`
	CreatedAt        time.Time  `json:"created_at"`
	ExpiresAt        time.Time  `json:"expires_at"`
	ResolvedAt       time.Time  `json:"-"`
	CapturedQuantity int64      `json:"captured_quantity"`
	CapturedCredits  int64      `json:"captured_amount"`
	ReleaseReason    string     `json:"release_reason,omitempty"`
}

// EntryType is the kind of a ledger entry.
type EntryType string

const (
	EntryGrant        EntryType = "grant"
	EntryDailyRefresh EntryType = "daily_refresh"
	EntryHold         EntryType = "hold"
	EntryCapture      EntryType = "capture"
	EntryRelease      EntryType = "release"
	EntryExpiry       EntryType = "expiry"
	EntryRefund       EntryType = "refund"
)

// Part is a state of credits inside a bucket. External is outside any
// bucket (the source of a grant).
type Part string

const (
	PartExternal  Part = "external"
	PartRemaining Part = "remaining"
	PartHeld      Part = "held"
	PartCharged   Part = "charged"
	PartExpired   Part = "expired"
)

// Leg moves credits between two parts of one bucket.
type Leg struct {
	GrantID string `json:"grant_id"`
	From    Part   `json:"from"`
	To      Part   `json:"to"`
	Credits int64  `json:"credits"`
}

// Entry is an immutable ledger record. AmountCredits is the headline figure:
// credits granted, held, charged, returned or expired.
type Entry struct {
	ID            int64     `json:"id"`
	AccountID     string    `json:"account_id"`
	Type          EntryType `json:"type"`
	AmountCredits int64     `json:"amount"`
	Source        Source    `json:"source,omitempty"`
	GrantID       string    `json:"grant_id,omitempty"`
	HoldID        string    `json:"hold_id,omitempty"`
	Action        string    `json:"action,omitempty"`
	Quantity      int64     `json:"quantity,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	Legs          []Leg     `json:"legs"`
	CreatedAt     time.Time `json:"created_at"`
}

// NewID returns a unique id with a type prefix, e.g. "hold_…": 10
// characters of milliseconds since the Unix epoch, then 16 random ones (80
// bits), in Crockford's base32 (ASCII-ordered), as in a ULID. Ids made later
// sort later, so new rows land at the end of the stores' id indexes instead
// of on a random page each.
func NewID(prefix string) string { return newID(prefix, time.Now()) }

func newID(prefix string, now time.Time) string {
	b := idBody(now)
	return prefix + "_" + string(b[:])
}

// idBody is an id without its prefix: 10 characters of time, 16 random.
func idBody(now time.Time) (b [26]byte) {
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = alphabet[ms&31]
		ms >>= 5
	}
	var r [10]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails
	bits := uint64(0)
	n := 0
	j := 0
	for i := 10; i < 26; i++ {
		for n < 5 {
			bits = bits<<8 | uint64(r[j])
			j++
			n += 8
		}
		n -= 5
		b[i] = alphabet[(bits>>n)&31]
	}
	return b
}

// NewHoldID returns a hold id as NewID does, except that its first 20
// random bits (characters 10–13 after the prefix) are AccountTag(accountID):
// 60 random bits remain per millisecond. A store can then file the settled
// holds of one account together, across many milliseconds, and still find
// one by its id alone (the id's time and tag name a handful of blocks).
func NewHoldID(accountID string) string { return HoldIDAt(accountID, time.Now()) }

// HoldIDAt is NewHoldID with the id's time given.
func HoldIDAt(accountID string, t time.Time) string {
	b := idBody(t)
	tag := AccountTag(accountID)
	for k := 3; k >= 0; k-- {
		b[10+k] = alphabet[tag&31]
		tag >>= 5
	}
	return "hold_" + string(b[:])
}

// AccountTag is a 20-bit hash of an account id (FNV-1a), the tag of the
// account's hold ids (NewHoldID).
func AccountTag(accountID string) int64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(accountID))
	return int64(h.Sum32() & (1<<20 - 1))
}

// IDMillis returns the milliseconds since the Unix epoch encoded in an id
// made by NewID, and false for an id of another shape. Ids made before
// NewID was time-ordered decode to an arbitrary but fixed value.
func IDMillis(id string) (int64, bool) {
	ms, _, ok := IDTimeTag(id)
	return ms, ok
}

// IDTimeTag decodes, in one pass, an id's milliseconds (IDMillis) and the
// 20 bits after them (characters 10–13 of the 26 after its last '_'):
// AccountTag of the account for ids from NewHoldID, random bits for other
// NewID-shaped ids. It returns false unless all 26 are Crockford base32.
func IDTimeTag(id string) (ms, tag int64, ok bool) {
	i := strings.LastIndexByte(id, '_')
	if i < 0 || len(id)-i-1 != 26 {
		return 0, 0, false
	}
	for k, c := range []byte(id[i+1:]) {
		d := strings.IndexByte(alphabet, c)
		switch {
		case d < 0:
			return 0, 0, false
		case k < 10:
			ms = ms<<5 | int64(d)
		case k < 14:
			tag = tag<<5 | int64(d)
		}
	}
	return ms, tag, true
}

// alphabet is Crockford's base32, the characters of NewID's ids.
const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)

// ValidID checks a client-chosen id (account ids, references).
func ValidID(s string, maxBytes int) bool {
	return len(s) > 0 && len(s) <= maxBytes && idPattern.MatchString(s)
}
