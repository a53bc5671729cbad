package journal

// The journal record format: a ChangeSet in a compact binary layout,
// cheaper to write than encoding/gob (which sends type descriptions with
// every record and goes through reflection).
//
//	record   = version:byte seq:varint accounts grants holds entries idempotency jobs events
//	list     = count:uvarint item*
//	string   = len:uvarint bytes
//	time     = unix microseconds UTC:varint (0: the zero time)
//	int64    = varint
//
// Items are the fields of the ledger types in the order below; slices of
// structs (hold portions, entry legs) are lists, job outputs a list of
// strings. Adding a field means a new version byte.
//
// Entry runs and hold blocks, stored for good, are packed (version 2):
// the same items, except that a string is uvarint k, either a reference
// to the (k>>1)th non-empty string the block spelled out before (k odd)
// or k>>1 bytes spelled out (k even); a time is the varint difference from
// the block's previous time (the first from 0); an entry id the varint
// difference from the previous entry's (the first from 0). One account's
// run repeats its account id, actions, grant ids and parts in every entry,
// so packing shrinks it: more of a run fits a page's in-row payload (the
// rest goes to an overflow page of its own), and fewer pages are written
// (docs/sqlite-journal.md).
// Blocks of version 1 are still read.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

const (
	codecVersion = 1
	codecPacked  = 2 // entry runs and hold blocks
	// codecRecord3 is the journal record since the webhook outbox: an
	// account also has low_balance_threshold and alerts, a grant notices,
	// and the record ends with the batch's events (seq, id, type, account
	// id, created_at, data). Records of codecVersion are still read.
	codecRecord3 = 3
)

type enc struct {
	b []byte
	// Packed blocks only (dict != nil): the strings spelled out so far,
	// the last time and the last entry id.
	dict          map[string]uint64
	prevT, prevID int64
}

func (e *enc) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) time(t time.Time) {
	us := rowscan.Micros(t)
	if e.dict != nil {
		us, e.prevT = us-e.prevT, us
	}
	e.int(us)
}

// entryID writes an entry id (ids ascend within a run).
func (e *enc) entryID(id int64) {
	if e.dict != nil {
		id, e.prevID = id-e.prevID, id
	}
	e.int(id)
}

func (e *enc) str(s string) {
	if e.dict != nil {
		if i, ok := e.dict[s]; ok {
			e.uint(i<<1 | 1)
			return
		}
		if s != "" {
			e.dict[s] = uint64(len(e.dict))
		}
		e.uint(uint64(len(s)) << 1)
		e.b = append(e.b, s...)
		return
	}
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// packed returns an encoder of a packed block with its version byte.
func packed(capacity int) *enc {
	e := &enc{b: make([]byte, 0, capacity), dict: make(map[string]uint64, 16)}
	e.b = append(e.b, codecPacked)
	return e
}
func (e *enc) bytes(s []byte) {
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// nilOrEmpty keeps nil and empty slices apart: 0 is nil, n+1 is n items.
func (e *enc) count(n int, isNil bool) {
	if isNil {
		e.uint(0)
		return
	}
	e.uint(uint64(n) + 1)
}

// EncodeChangeSet is the format of a journal record's data.
func EncodeChangeSet(c *ChangeSet) ([]byte, error) {
	e := &enc{b: make([]byte, 0, 64+c.Rows()*96)}
	e.b = append(e.b, codecRecord3)
	e.int(c.Seq)
	e.uint(uint64(len(c.Accounts)))
	for i := range c.Accounts {
		a := &c.Accounts[i]
		e.str(a.ID)
		e.str(string(a.Plan))
		e.str(a.Timezone)
		e.time(a.CreatedAt)
		e.time(a.UpdatedAt)
		e.str(a.DailyLastDate)
		e.time(a.DailyNotBefore)
		e.int(a.Version)
		e.int(a.LowBalanceThreshold)
		e.int(a.Alerts)
	}
	e.uint(uint64(len(c.Grants)))
	for i := range c.Grants {
		g := &c.Grants[i]
		e.str(g.ID)
		e.str(g.AccountID)
		e.str(string(g.Source))
		e.str(g.Reference)
		e.int(g.AmountCredits)
		e.int(g.RemainingCredits)
		e.int(g.HeldCredits)
		e.int(g.ChargedCredits)
		e.int(g.ExpiredCredits)
		e.time(g.ExpiresAt)
		e.time(g.CreatedAt)
		e.int(g.Notices)
	}
	e.uint(uint64(len(c.Holds)))
	for i := range c.Holds {
		e.hold(&c.Holds[i])
	}
	e.entries(c.Entries)
	e.uint(uint64(len(c.Idempotency)))
	for i := range c.Idempotency {
		r := &c.Idempotency[i]
		e.str(r.Principal)
		e.str(r.Key)
		e.str(r.Fingerprint)
		e.int(int64(r.Status))
		e.count(len(r.Body), r.Body == nil)
		e.b = append(e.b, r.Body...)
		e.time(r.CreatedAt)
	}
	e.uint(uint64(len(c.Jobs)))
	for i := range c.Jobs {
		e.job(&c.Jobs[i])
	}
	e.uint(uint64(len(c.Events)))
	for i := range c.Events {
		ev := &c.Events[i]
		e.int(ev.Seq)
		e.str(ev.ID)
		e.str(ev.Type)
		e.str(ev.AccountID)
		e.time(ev.CreatedAt)
		e.bytes(ev.Data)
	}
	return e.b, nil
}

// job writes a job, in the field order DecodeChangeSet reads.
func (e *enc) job(j *ledger.Job) {
	e.str(j.ID)
	e.str(j.AccountID)
	e.str(j.Action)
	e.str(string(j.Category))
	e.int(j.Quantity)
	e.count(len(j.Params), j.Params == nil)
	e.b = append(e.b, j.Params...)
	e.int(j.ParamsVersion)
	e.str(string(j.Status))
	e.str(j.HoldID)
	e.int(j.CostCredits)
	e.int(j.ChargedCredits)
	e.int(j.Attempts)
	e.str(j.LeaseID)
	e.time(j.LeaseExpiresAt)
	e.int(j.LeaseParamsVersion)
	e.count(len(j.Outputs), j.Outputs == nil)
	for _, o := range j.Outputs {
		e.str(o)
	}
	e.str(j.Error)
	e.time(j.CreatedAt)
	e.time(j.UpdatedAt)
	e.time(j.FinishedAt)
	e.int(j.Seq)
}

// entries writes a list of entries.
func (e *enc) entries(es []ledger.Entry) {
	e.uint(uint64(len(es)))
	for i := range es {
		e.entry(&es[i])
	}
}

func (e *enc) entry(en *ledger.Entry) {
	e.entryID(en.ID)
	e.str(en.AccountID)
	e.str(string(en.Type))
	e.int(en.AmountCredits)
	e.str(string(en.Source))
	e.str(en.GrantID)
	e.str(en.HoldID)
	e.str(en.Action)
	e.int(en.Quantity)
	e.str(en.Reason)
	e.count(len(en.Legs), en.Legs == nil)
	for _, l := range en.Legs {
		e.str(l.GrantID)
		e.str(string(l.From))
		e.str(string(l.To))
		e.int(l.Credits)
	}
	e.time(en.CreatedAt)
}

// EncodeEntries is the format of an entry run (entry_runs.data): a list of
// entries as in a journal record, packed, after the version byte.
func EncodeEntries(es []*ledger.Entry) []byte {
	e := packed(1 + len(es)*48)
	e.uint(uint64(len(es)))
	for _, en := range es {
		e.entry(en)
	}
	return e.b
}

func (e *enc) hold(h *ledger.Hold) {
	e.str(h.ID)
	e.str(h.AccountID)
	e.str(h.Action)
	e.str(string(h.Category))
	e.int(h.Quantity)
	e.int(h.UnitPriceCredits)
	e.int(h.AmountCredits)
	e.str(string(h.Status))
	e.count(len(h.Portions), h.Portions == nil)
	for _, p := range h.Portions {
		e.str(p.GrantID)
		e.int(p.Credits)
	}
	e.time(h.CreatedAt)
	e.time(h.ExpiresAt)
	e.time(h.ResolvedAt)
	e.int(h.CapturedQuantity)
	e.int(h.CapturedCredits)
	e.str(h.ReleaseReason)
}

func (d *dec) hold(h *ledger.Hold) {
	h.ID, h.AccountID, h.Action, h.Category = d.str(), d.str(), d.str(), ledger.Category(d.str())
	h.Quantity, h.UnitPriceCredits, h.AmountCredits = d.int(), d.int(), d.int()
	h.Status = ledger.HoldStatus(d.str())
	if n, isNil := d.list(); !isNil {
		h.Portions = make([]ledger.Portion, n)
		for k := range h.Portions {
			h.Portions[k] = ledger.Portion{GrantID: d.str(), Credits: d.int()}
		}
	}
	h.CreatedAt, h.ExpiresAt, h.ResolvedAt = d.time(), d.time(), d.time()
	h.CapturedQuantity, h.CapturedCredits, h.ReleaseReason = d.int(), d.int(), d.str()
}

// EncodeHolds is the format of a hold block (hold_blocks.data): a list of
// holds as in a journal record, packed, after the version byte.
func EncodeHolds(hs []*ledger.Hold) []byte {
	e := packed(1 + len(hs)*80)
	e.uint(uint64(len(hs)))
	for _, h := range hs {
		e.hold(h)
	}
	return e.b
}

// blockDecoder returns a decoder of an entry run or hold block, plain or
// packed by its version byte.
func blockDecoder(data []byte) (*dec, bool) {
	if len(data) == 0 || (data[0] != codecVersion && data[0] != codecPacked) {
		return nil, false
	}
	return &dec{b: data[1:], packed: data[0] == codecPacked}, true
}

func DecodeHolds(data []byte) ([]ledger.Hold, error) {
	d, ok := blockDecoder(data)
	if !ok {
		return nil, fmt.Errorf("hold block: unknown format")
	}
	hs := make([]ledger.Hold, d.length())
	for i := range hs {
		d.hold(&hs[i])
	}
	if d.err != nil {
		return nil, fmt.Errorf("hold block: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("hold block: %d bytes left over", len(d.b))
	}
	return hs, nil
}

func DecodeEntries(data []byte) ([]ledger.Entry, error) {
	d, ok := blockDecoder(data)
	if !ok {
		return nil, fmt.Errorf("entry run: unknown format")
	}
	es := d.entries()
	if d.err != nil {
		return nil, fmt.Errorf("entry run: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("entry run: %d bytes left over", len(d.b))
	}
	return es, nil
}

var errShort = errors.New("record ends early")

type dec struct {
	b   []byte
	err error
	// Packed blocks: as in enc.
	packed        bool
	dict          []string
	prevT, prevID int64
}

func (d *dec) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) raw(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string {
	k := d.uint()
	if !d.packed {
		return string(d.raw(k))
	}
	if k&1 == 1 {
		if k>>1 >= uint64(len(d.dict)) {
			if d.err == nil {
				d.err = errors.New("string reference out of range")
			}
			return ""
		}
		return d.dict[k>>1]
	}
	s := string(d.raw(k >> 1))
	if s != "" {
		d.dict = append(d.dict, s)
	}
	return s
}

func (d *dec) time() time.Time {
	us := d.int()
	if d.packed {
		us += d.prevT
		d.prevT = us
	}
	return rowscan.FromMicros(us)
}

func (d *dec) entryID() int64 {
	id := d.int()
	if d.packed {
		id += d.prevID
		d.prevID = id
	}
	return id
}
func (d *dec) list() (int, bool) { // count, isNil
	n := d.uint()
	if n == 0 {
		return 0, true
	}
	if n-1 > uint64(len(d.b)) { // every item takes at least one byte
		d.err = errShort
		return 0, true
	}
	return int(n - 1), false
}

// length reads a plain list length, bounded by what is left.
func (d *dec) length() int {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.err = errShort
		return 0
	}
	return int(n)
}

func (d *dec) blob() []byte {
	n, isNil := d.list()
	if isNil {
		return nil
	}
	return append([]byte{}, d.raw(uint64(n))...)
}

func (d *dec) entries() []ledger.Entry {
	es := make([]ledger.Entry, d.length())
	for i := range es {
		en := &es[i]
		en.ID, en.AccountID, en.Type, en.AmountCredits = d.entryID(), d.str(), ledger.EntryType(d.str()), d.int()
		en.Source, en.GrantID, en.HoldID, en.Action = ledger.Source(d.str()), d.str(), d.str(), d.str()
		en.Quantity, en.Reason = d.int(), d.str()
		if n, isNil := d.list(); !isNil {
			en.Legs = make([]ledger.Leg, n)
			for k := range en.Legs {
				en.Legs[k] = ledger.Leg{GrantID: d.str(), From: ledger.Part(d.str()), To: ledger.Part(d.str()), Credits: d.int()}
			}
		}
		en.CreatedAt = d.time()
	}
	return es
}

// DecodeChangeSet reads what EncodeChangeSet wrote.
func DecodeChangeSet(data []byte) (*ChangeSet, error) {
	if len(data) == 0 || (data[0] != codecVersion && data[0] != codecRecord3) {
		return nil, fmt.Errorf("journal record: unknown format")
	}
	v3 := data[0] == codecRecord3
	d := &dec{b: data[1:]}
	c := &ChangeSet{Seq: d.int()}
	c.Accounts = make([]ledger.Account, d.length())
	for i := range c.Accounts {
		a := &c.Accounts[i]
		a.ID, a.Plan, a.Timezone = d.str(), ledger.Plan(d.str()), d.str()
		a.CreatedAt, a.UpdatedAt = d.time(), d.time()
		a.DailyLastDate, a.DailyNotBefore, a.Version = d.str(), d.time(), d.int()
		if v3 {
			a.LowBalanceThreshold, a.Alerts = d.int(), d.int()
		} else {
			a.LowBalanceThreshold = 10 // as migration 13 sets the accounts it finds
		}
	}
	c.Grants = make([]ledger.Grant, d.length())
	for i := range c.Grants {
		g := &c.Grants[i]
		g.ID, g.AccountID, g.Source, g.Reference = d.str(), d.str(), ledger.Source(d.str()), d.str()
		g.AmountCredits, g.RemainingCredits, g.HeldCredits = d.int(), d.int(), d.int()
		g.ChargedCredits, g.ExpiredCredits = d.int(), d.int()
		g.ExpiresAt, g.CreatedAt = d.time(), d.time()
		if v3 {
			g.Notices = d.int()
		}
	}
	c.Holds = make([]ledger.Hold, d.length())
	for i := range c.Holds {
		d.hold(&c.Holds[i])
	}
	c.Entries = d.entries()
	c.Idempotency = make([]ledger.IdempotencyRecord, d.length())
	for i := range c.Idempotency {
		r := &c.Idempotency[i]
		r.Principal, r.Key, r.Fingerprint, r.Status = d.str(), d.str(), d.str(), int(d.int())
		r.Body, r.CreatedAt = d.blob(), d.time()
	}
	c.Jobs = make([]ledger.Job, d.length())
	for i := range c.Jobs {
		j := &c.Jobs[i]
		j.ID, j.AccountID, j.Action, j.Category = d.str(), d.str(), d.str(), ledger.Category(d.str())
		j.Quantity, j.Params, j.ParamsVersion = d.int(), d.blob(), d.int()
		j.Status, j.HoldID = ledger.JobStatus(d.str()), d.str()
		j.CostCredits, j.ChargedCredits, j.Attempts = d.int(), d.int(), d.int()
		j.LeaseID, j.LeaseExpiresAt, j.LeaseParamsVersion = d.str(), d.time(), d.int()
		if n, isNil := d.list(); !isNil {
			j.Outputs = make([]string, n)
			for k := range j.Outputs {
				j.Outputs[k] = d.str()
			}
		}
		j.Error, j.CreatedAt, j.UpdatedAt, j.FinishedAt, j.Seq = d.str(), d.time(), d.time(), d.time(), d.int()
	}
	if v3 {
		c.Events = make([]ledger.WebhookEvent, d.length())
		for i := range c.Events {
			ev := &c.Events[i]
			ev.Seq, ev.ID, ev.Type, ev.AccountID = d.int(), d.str(), d.str(), d.str()
			ev.CreatedAt = d.time()
			n := d.uint()
			ev.Data = append([]byte(nil), d.raw(n)...)
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("journal record: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("journal record: %d bytes left over", len(d.b))
	}
	return c, nil
}
