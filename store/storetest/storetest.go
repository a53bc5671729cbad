// Package storetest is the conformance suite of ledger.Store: every back
// end (SQLite, PostgreSQL) must pass Run.
//
// Beyond the doc comments of ledger.Store and ledger.Batch, the suite pins
// down these behaviours:
//
//   - Missing rows (GetAccount, LoadState, GetHold, GetIdempotency,
//     GetGrantByReference, LoadHistory, GetJob, GetAsset) fail with an
//     error whose ledger.ErrorCode is ledger.ENotFound.
//   - Saving a grant whose (account, source, non-empty reference) belongs to
//     another grant fails with code ledger.EConflict, carrying
//     ledger.ErrBadData (the data written caused it, not the store), and
//     the batch can then be rolled back. Empty references are never
//     unique.
//   - Grants (LoadState, LoadHistory) and holds (LoadHistory) come back
//     ordered by created_at, then id; the engine applies business order.
//   - Times come back in UTC, exact to the microsecond (finer precision is
//     truncated or rounded); the zero time comes back as the zero time.
//   - Nil and empty Portions/Legs are interchangeable.
//   - Reads outside a batch see committed data only; a batch sees its own
//     writes; LoadState is one consistent snapshot.
//   - Entry ids increase in insertion order, across batches.
//   - ListPendingHolds has no required order.
//   - LoadState's Holds and Jobs are non-nil maps; Jobs holds the queued and
//     running jobs, whatever their history (the store does not judge
//     status changes).
//   - Job and asset Seqs are positive and assigned by the store (a Seq set
//     by the caller is ignored): a new row's Seq is greater than every
//     existing row's, including rows saved earlier in the same batch; an
//     update keeps the Seq. The order of the new jobs of one SaveJobs
//     call among themselves is unspecified. ListJobs and ListAssets order
//     by Seq descending, not by time; ListActiveJobs by Seq ascending.
//   - Job params come back byte-identical (store them as text, not as a
//     normalising type like jsonb); nil or empty params come back as {}.
//     Nil and empty Outputs are interchangeable.
//   - SaveAsset of an existing asset id fails with code ledger.EConflict
//     and leaves the stored asset as it was; so does SaveUpload.
//   - SaveUpload shows Admit the usage of every upload committed before
//     it, also under concurrent SaveUpload calls of the account; an
//     error from Admit comes back as is (errors.Is), with nothing saved.
//   - After DeleteAsset, the asset is gone from GetAsset, ListAssets and
//     UploadUsage, and its id may be saved again.
//   - An account's credential generation starts at 0 without any row (or
//     account) and each RevokeAccountCredentials, concurrent ones too,
//     moves it up by exactly one. RevokeCredential of a known id keeps the
//     first record; DeleteRevokedCredentialsBefore deletes records whose
//     expiry is strictly before the cut-off.
//   - Feedback is one row per (account, article): SaveFeedback of a known
//     pair replaces Helpful, Comment and UpdatedAt, keeps the first
//     CreatedAt and gives a new Seq, greater than every other's (also
//     under concurrent saves); ListFeedback orders by Seq descending.
//   - RecordWorkerPolls keeps, per action, the latest time it was ever
//     given (also within one call); ListWorkerPolls has no required order.
//   - LockAndBumpAccounts returns the versions before the increment;
//     the batch then sees the incremented versions, a commit stores them
//     with every other column unchanged, a rollback undoes them, and
//     missing accounts stay missing. LockIdempotencyKeys takes keys in any
//     order, repeated or none, on every store. LoadStates equals LoadState
//     account by account, with the batch's writes on top.
//   - Exclusive does not change over the store's life; Close may be
//     called again, and reads after it fail.
//
// Every subtest gets a store of its own and runs in parallel with the
// others.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Run runs the suite, its subtests in parallel. open must return a new,
// empty store for each call, apart from every other (its own data
// directory, database or schema), and close it when the test ends
// (t.Cleanup); it is called from the subtests, concurrently.
func Run(t *testing.T, open func(t *testing.T) ledger.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s ledger.Store)
	}{
		{"AccountRoundTrip", testAccountRoundTrip},
		{"LoadStateLiveOnly", testLoadStateLiveOnly},
		{"BatchSeesOwnWrites", testBatchSeesOwnWrites},
		{"ReadsSeeCommittedOnly", testReadsSeeCommittedOnly},
		{"GrantUpsert", testGrantUpsert},
		{"HoldUpsert", testHoldUpsert},
		{"Times", testTimes},
		{"JSONRoundTrip", testJSONRoundTrip},
		{"Entries", testEntries},
		{"NotFound", testNotFound},
		{"GrantByReference", testGrantByReference},
		{"DuplicateReference", testDuplicateReference},
		{"Rollback", testRollback},
		{"Idempotency", testIdempotency},
		{"ListPendingHolds", testListPendingHolds},
		{"ListAccountIDs", testListAccountIDs},
		{"LoadHistory", testLoadHistory},
		{"LockAccounts", testLockAccounts},
		{"LockAndBumpAccounts", testLockAndBumpAccounts},
		{"LockIdempotencyKeys", testLockIdempotencyKeys},
		{"LoadStates", testLoadStates},
		{"Exclusive", testExclusive},
		{"Close", testClose},
		{"LargeBatch", testLargeBatch},
		{"ConcurrentReads", testConcurrentReads},
		{"JobRoundTrip", testJobRoundTrip},
		{"JobSeqIncreasesAndIsKeptOnUpdate", testJobSeqIncreasesAndIsKeptOnUpdate},
		{"LoadStateReturnsActiveJobsOnly", testLoadStateReturnsActiveJobsOnly},
		{"ListJobsPagesNewestFirst", testListJobsPagesNewestFirst},
		{"ListActiveJobs", testListActiveJobs},
		{"JobNotFound", testJobNotFound},
		{"BatchGetJobSeesOwnWrites", testBatchGetJobSeesOwnWrites},
		{"AssetRoundTrip", testAssetRoundTrip},
		{"AssetDuplicateIDConflicts", testAssetDuplicateIDConflicts},
		{"ListAssetsPagesNewestFirst", testListAssetsPagesNewestFirst},
		{"AssetNotFound", testAssetNotFound},
		{"UploadUsageCountsUploadsOnly", testUploadUsageCountsUploadsOnly},
		{"SaveUploadAdmits", testSaveUploadAdmits},
		{"SaveUploadConcurrent", testSaveUploadConcurrent},
		{"DeleteAsset", testDeleteAsset},
		{"StagedOutputs", testStagedOutputs},
		{"CredentialGenerations", testCredentialGenerations},
		{"RevokedCredentials", testRevokedCredentials},
		{"Feedback", testFeedback},
		{"WorkerPolls", testWorkerPolls},
		{"Events", testEvents},
		{"AlertColumns", testAlertColumns},
		{"Webhooks", testWebhooks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, open(t))
		})
	}
}

// ---- fixtures -----------------------------------------------------------

// t0 has microsecond precision; zone is a non-UTC location without tzdata.
var (
	t0   = time.Date(2025, 3, 9, 10, 11, 12, 123456000, time.UTC)
	zone = time.FixedZone("UTC+5:30", 5*3600+1800)
)

func at(d time.Duration) time.Time { return t0.Add(d) }

func newAccount(id string) *ledger.Account {
	return &ledger.Account{
		ID: id, Plan: ledger.PlanFree, Timezone: "Europe/Berlin",
		CreatedAt: t0.In(zone), UpdatedAt: at(time.Second), DailyLastDate: "2025-03-09",
		DailyNotBefore: at(14 * time.Hour), Version: 1,
	}
}

func newGrant(id, account string, created time.Time, remaining, held int64) *ledger.Grant {
	return &ledger.Grant{
		ID: id, AccountID: account, Source: ledger.SourcePurchase, Reference: "ref-" + id,
		AmountCredits: remaining + held + 30, RemainingCredits: remaining, HeldCredits: held,
		ChargedCredits: 20, ExpiredCredits: 10, ExpiresAt: at(30 * 24 * time.Hour), CreatedAt: created,
	}
}

func newHold(id, account string, status ledger.HoldStatus, created time.Time) *ledger.Hold {
	h := &ledger.Hold{
		ID: id, AccountID: account, Action: "image.generate", Category: ledger.CategoryImage,
		Quantity: 4, UnitPriceCredits: 5, AmountCredits: 20, Status: status,
		Portions:  []ledger.Portion{{GrantID: "g1", Credits: 15}, {GrantID: "g2", Credits: 5}},
		CreatedAt: created, ExpiresAt: created.Add(10 * time.Minute),
	}
	if status != ledger.HoldPending {
		h.ResolvedAt = created.Add(time.Minute)
		if status == ledger.HoldCaptured {
			h.CapturedQuantity, h.CapturedCredits = 3, 15
		} else {
			h.ReleaseReason = "failed"
		}
	}
	return h
}

func newEntry(account, reason string, created time.Time) ledger.Entry {
	return ledger.Entry{
		AccountID: account, Type: ledger.EntryCapture, AmountCredits: 15, Source: ledger.SourcePromo,
		GrantID: "g1", HoldID: "h1", Action: "image.generate", Quantity: 3, Reason: reason,
		Legs: []ledger.Leg{
			{GrantID: "g1", From: ledger.PartHeld, To: ledger.PartCharged, Credits: 15},
			{GrantID: "g1", From: ledger.PartHeld, To: ledger.PartRemaining, Credits: 5},
		},
		CreatedAt: created,
	}
}

// ---- helpers ------------------------------------------------------------

func ctx(t *testing.T) context.Context { return t.Context() }

// write runs f in a batch and commits it.
func write(t *testing.T, s ledger.Store, f func(b ledger.Batch)) {
	t.Helper()
	b, err := s.BeginBatch(ctx(t))
	if err != nil {
		t.Fatalf("BeginBatch: %v", err)
	}
	defer b.Rollback()
	f(b)
	if err := b.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func saveAccounts(t *testing.T, b ledger.Batch, a ...*ledger.Account) {
	t.Helper()
	check(t, "SaveAccounts", b.SaveAccounts(ctx(t), a))
}

func saveGrants(t *testing.T, b ledger.Batch, g ...*ledger.Grant) {
	t.Helper()
	check(t, "SaveGrants", b.SaveGrants(ctx(t), g))
}

func saveHolds(t *testing.T, b ledger.Batch, h ...*ledger.Hold) {
	t.Helper()
	check(t, "SaveHolds", b.SaveHolds(ctx(t), h))
}

func insertEntries(t *testing.T, b ledger.Batch, e ...ledger.Entry) {
	t.Helper()
	check(t, "InsertEntries", b.InsertEntries(ctx(t), e))
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: got no error, want code %s", what, code)
	} else if got := ledger.ErrorCode(err); got != code {
		t.Errorf("%s: got error %v (code %s), want code %s", what, err, got, code)
	}
}

// wantBadData is wantCode for an error the data written caused: it also
// carries ledger.ErrBadData.
func wantBadData(t *testing.T, what string, err error, code string) {
	t.Helper()
	wantCode(t, what, err, code)
	if err != nil && !errors.Is(err, ledger.ErrBadData) {
		t.Errorf("%s: got error %v, want it to carry ledger.ErrBadData", what, err)
	}
}

func normTime(tm time.Time) time.Time {
	if tm.IsZero() {
		return time.Time{}
	}
	return tm.UTC()
}

func normAccount(a ledger.Account) ledger.Account {
	a.CreatedAt, a.UpdatedAt, a.DailyNotBefore = normTime(a.CreatedAt), normTime(a.UpdatedAt), normTime(a.DailyNotBefore)
	return a
}

func normGrant(g ledger.Grant) ledger.Grant {
	g.ExpiresAt, g.CreatedAt = normTime(g.ExpiresAt), normTime(g.CreatedAt)
	return g
}

func normHold(h ledger.Hold) ledger.Hold {
	h.CreatedAt, h.ExpiresAt, h.ResolvedAt = normTime(h.CreatedAt), normTime(h.ExpiresAt), normTime(h.ResolvedAt)
	if len(h.Portions) == 0 {
		h.Portions = nil
	}
	return h
}

// normEntry also drops the id unless keepID.
func normEntry(e ledger.Entry, keepID bool) ledger.Entry {
	if !keepID {
		e.ID = 0
	}
	e.CreatedAt = normTime(e.CreatedAt)
	if len(e.Legs) == 0 {
		e.Legs = nil
	}
	return e
}

func normIdem(r ledger.IdempotencyRecord) ledger.IdempotencyRecord {
	r.CreatedAt = normTime(r.CreatedAt)
	if len(r.Body) == 0 {
		r.Body = nil
	}
	return r
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func eqAccount(t *testing.T, what string, got *ledger.Account, want *ledger.Account) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil account", what)
		return
	}
	same(t, what, normAccount(*got), normAccount(*want))
}

func normGrants(gs []*ledger.Grant) []ledger.Grant {
	out := make([]ledger.Grant, len(gs))
	for i, g := range gs {
		out[i] = normGrant(*g)
	}
	return out
}

func eqGrants(t *testing.T, what string, got, want []*ledger.Grant) {
	t.Helper()
	same(t, what, normGrants(got), normGrants(want))
}

func eqHolds(t *testing.T, what string, got, want []*ledger.Hold) {
	t.Helper()
	g, w := make([]ledger.Hold, len(got)), make([]ledger.Hold, len(want))
	for i := range got {
		g[i] = normHold(*got[i])
	}
	for i := range want {
		w[i] = normHold(*want[i])
	}
	same(t, what, g, w)
}

func eqHoldMap(t *testing.T, what string, got map[string]*ledger.Hold, want ...*ledger.Hold) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: nil holds map", what)
	}
	var g []*ledger.Hold
	for id, h := range got {
		if h == nil || h.ID != id {
			t.Errorf("%s: holds map key %s has hold %+v", what, id, h)
			continue
		}
		g = append(g, h)
	}
	byID := func(a, b *ledger.Hold) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(g, byID)
	w := slices.Clone(want)
	slices.SortFunc(w, byID)
	eqHolds(t, what, g, w)
}

func eqEntries(t *testing.T, what string, got, want []ledger.Entry, keepID bool) {
	t.Helper()
	g, w := make([]ledger.Entry, len(got)), make([]ledger.Entry, len(want))
	for i := range got {
		g[i] = normEntry(got[i], keepID)
	}
	for i := range want {
		w[i] = normEntry(want[i], keepID)
	}
	same(t, what, g, w)
}

func ids[T any](xs []T, id func(T) string) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

func grantIDs(gs []*ledger.Grant) []string {
	return ids(gs, func(g *ledger.Grant) string { return g.ID })
}

// ---- tests --------------------------------------------------------------

func testAccountRoundTrip(t *testing.T, s ledger.Store) {
	a := newAccount("acct-1")
	a.Version = 7
	write(t, s, func(b ledger.Batch) { saveAccounts(t, b, a) })
	got, err := s.GetAccount(ctx(t), "acct-1")
	check(t, "GetAccount", err)
	eqAccount(t, "GetAccount", got, a)
	for _, tm := range []time.Time{got.CreatedAt, got.UpdatedAt, got.DailyNotBefore} {
		if tm.Location() != time.UTC {
			t.Errorf("time %v is in %v, want UTC", tm, tm.Location())
		}
	}

	// Upsert: every column changes.
	b := *a
	b.Plan, b.Timezone, b.CreatedAt = ledger.PlanPaid, "America/New_York", at(-time.Hour)
	b.UpdatedAt, b.DailyLastDate, b.DailyNotBefore, b.Version = at(time.Hour), "", time.Time{}, 8
	write(t, s, func(bt ledger.Batch) { saveAccounts(t, bt, &b) })
	got, err = s.GetAccount(ctx(t), "acct-1")
	check(t, "GetAccount after update", err)
	eqAccount(t, "GetAccount after update", got, &b)

	st, err := s.LoadState(ctx(t), "acct-1")
	check(t, "LoadState", err)
	eqAccount(t, "LoadState account", &st.Account, &b)
	if len(st.Grants) != 0 || len(st.Holds) != 0 {
		t.Errorf("LoadState of an account without grants or holds: %d grants, %d holds", len(st.Grants), len(st.Holds))
	}
	if st.Holds == nil {
		t.Errorf("LoadState: nil Holds map")
	}
	if st.Jobs == nil {
		t.Errorf("LoadState: nil Jobs map")
	}
}

// liveFixture stores account A with live, exhausted and other-account
// grants and holds in every status; it returns the live grants in
// (created_at, id) order and the pending holds.
func liveFixture(t *testing.T, s ledger.Store) ([]*ledger.Grant, []*ledger.Hold) {
	a, other := newAccount("A"), newAccount("B")
	gA := newGrant("g-a", "A", at(2*time.Minute), 50, 0)                         // live, created last
	gC := newGrant("g-c", "A", at(time.Minute), 0, 20)                           // live (held only), same time as g-b
	gB := newGrant("g-b", "A", at(time.Minute), 10, 0)                           // live
	gX := newGrant("g-x", "A", at(0), 0, 0)                                      // exhausted
	gY := newGrant("g-y", "B", at(0), 100, 0)                                    // other account
	gZ := newGrant("g-z", "A", at(-time.Minute), 5, 0)                           // live, oldest
	gZ.ExpiresAt, gZ.Reference, gZ.Source = time.Time{}, "", ledger.SourceSignup // never expires
	p1 := newHold("h-p1", "A", ledger.HoldPending, at(time.Minute))
	p2 := newHold("h-p2", "A", ledger.HoldPending, at(2*time.Minute))
	c := newHold("h-c", "A", ledger.HoldCaptured, at(0))
	r := newHold("h-r", "A", ledger.HoldReleased, at(0))
	e := newHold("h-e", "A", ledger.HoldExpired, at(0))
	pb := newHold("h-pb", "B", ledger.HoldPending, at(0))
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, a, other)
		saveGrants(t, b, gA, gC, gB, gX, gY, gZ)
		saveHolds(t, b, c, p2, r, p1, e, pb)
	})
	return []*ledger.Grant{gZ, gB, gC, gA}, []*ledger.Hold{p1, p2}
}

func testLoadStateLiveOnly(t *testing.T, s ledger.Store) {
	live, pending := liveFixture(t, s)
	st, err := s.LoadState(ctx(t), "A")
	check(t, "LoadState", err)
	eqAccount(t, "LoadState account", &st.Account, newAccount("A"))
	eqGrants(t, "LoadState grants (live, by created_at, id)", st.Grants, live)
	eqHoldMap(t, "LoadState holds (pending)", st.Holds, pending...)

	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer b.Rollback()
	bst, err := b.LoadState(ctx(t), "A")
	check(t, "Batch.LoadState", err)
	eqAccount(t, "Batch.LoadState account", &bst.Account, newAccount("A"))
	eqGrants(t, "Batch.LoadState grants", bst.Grants, live)
	eqHoldMap(t, "Batch.LoadState holds", bst.Holds, pending...)
	check(t, "Rollback", b.Rollback())
}

func testBatchSeesOwnWrites(t *testing.T, s ledger.Store) {
	live, pending := liveFixture(t, s)
	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer b.Rollback()

	a := newAccount("A")
	a.Version = 2
	g := newGrant("g-new", "A", at(3*time.Minute), 7, 0)
	spent := *live[0]
	spent.RemainingCredits, spent.ChargedCredits = 0, spent.ChargedCredits+spent.RemainingCredits
	h := newHold("h-new", "A", ledger.HoldPending, at(3*time.Minute))
	done := *pending[0]
	done.Status, done.ResolvedAt = ledger.HoldReleased, at(time.Hour)
	saveAccounts(t, b, a)
	saveGrants(t, b, g, &spent)
	saveHolds(t, b, h, &done)

	st, err := b.LoadState(ctx(t), "A")
	check(t, "Batch.LoadState", err)
	eqAccount(t, "Batch.LoadState account", &st.Account, a)
	eqGrants(t, "Batch.LoadState grants", st.Grants, append(slices.Clone(live[1:]), g))
	eqHoldMap(t, "Batch.LoadState holds", st.Holds, pending[1], h)
	gh, err := b.GetHold(ctx(t), "h-new")
	check(t, "Batch.GetHold", err)
	eqHolds(t, "Batch.GetHold", []*ledger.Hold{gh}, []*ledger.Hold{h})
	gr, err := b.GetGrantByReference(ctx(t), ledger.GrantReferenceParams{AccountID: "A", Source: g.Source, Reference: g.Reference})
	check(t, "Batch.GetGrantByReference", err)
	eqGrants(t, "Batch.GetGrantByReference", []*ledger.Grant{gr}, []*ledger.Grant{g})
	check(t, "Commit", b.Commit())

	st, err = s.LoadState(ctx(t), "A")
	check(t, "LoadState after commit", err)
	eqAccount(t, "LoadState account", &st.Account, a)
	eqGrants(t, "LoadState grants", st.Grants, append(slices.Clone(live[1:]), g))
	eqHoldMap(t, "LoadState holds", st.Holds, pending[1], h)
}

func testReadsSeeCommittedOnly(t *testing.T, s ledger.Store) {
	write(t, s, func(b ledger.Batch) { saveAccounts(t, b, newAccount("A")) })
	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer b.Rollback()
	a := newAccount("A")
	a.Version = 2
	saveAccounts(t, b, a, newAccount("B"))
	saveHolds(t, b, newHold("h1", "A", ledger.HoldPending, at(0)))
	insertEntries(t, b, newEntry("A", "e1", at(0)))
	check(t, "SaveIdempotency", b.SaveIdempotency(ctx(t), []*ledger.IdempotencyRecord{{Principal: "p", Key: "k", Fingerprint: "f", Status: 200, CreatedAt: at(0)}}))

	got, err := s.GetAccount(ctx(t), "A")
	check(t, "GetAccount during batch", err)
	if got.Version != 1 {
		t.Errorf("GetAccount during batch: version %d, want the committed 1", got.Version)
	}
	_, err = s.GetAccount(ctx(t), "B")
	wantCode(t, "GetAccount of an uncommitted account", err, ledger.ENotFound)
	_, err = s.GetHold(ctx(t), "h1")
	wantCode(t, "GetHold of an uncommitted hold", err, ledger.ENotFound)
	_, err = s.GetIdempotency(ctx(t), "p", "k")
	wantCode(t, "GetIdempotency of an uncommitted record", err, ledger.ENotFound)
	es, err := s.ListEntries(ctx(t), ledger.ListEntriesParams{AccountID: "A", Limit: 10})
	check(t, "ListEntries during batch", err)
	if len(es) != 0 {
		t.Errorf("ListEntries during batch: %d entries, want 0", len(es))
	}
	ph, err := s.ListPendingHolds(ctx(t))
	check(t, "ListPendingHolds during batch", err)
	if len(ph) != 0 {
		t.Errorf("ListPendingHolds during batch: %+v, want none", ph)
	}
	check(t, "Commit", b.Commit())

	got, err = s.GetAccount(ctx(t), "A")
	check(t, "GetAccount after commit", err)
	if got.Version != 2 {
		t.Errorf("GetAccount after commit: version %d, want 2", got.Version)
	}
	_, err = s.GetHold(ctx(t), "h1")
	check(t, "GetHold after commit", err)
}

func testGrantUpsert(t *testing.T, s ledger.Store) {
	g := newGrant("g1", "A", at(0), 100, 0)
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"))
		saveGrants(t, b, g)
	})
	// Update every mutable column, twice in one batch: the last save wins.
	u := *g
	u.RemainingCredits, u.HeldCredits = 60, 40
	u2 := u
	u2.RemainingCredits, u2.HeldCredits, u2.ChargedCredits, u2.ExpiredCredits = 0, 0, 50, 90
	u2.AmountCredits, u2.ExpiresAt, u2.Reference, u2.Source = 170, at(time.Hour), "other-ref", ledger.SourcePromo
	write(t, s, func(b ledger.Batch) {
		saveGrants(t, b, &u)
		saveGrants(t, b, &u2)
	})
	h, err := s.LoadHistory(ctx(t), "A")
	check(t, "LoadHistory", err)
	eqGrants(t, "grants after upserts", h.Grants, []*ledger.Grant{&u2})
	st, err := s.LoadState(ctx(t), "A")
	check(t, "LoadState", err)
	if len(st.Grants) != 0 {
		t.Errorf("LoadState: exhausted grant still live: %+v", st.Grants)
	}
	// Back to live.
	u3 := u2
	u3.RemainingCredits, u3.ChargedCredits = 1, 49
	write(t, s, func(b ledger.Batch) { saveGrants(t, b, &u3) })
	st, err = s.LoadState(ctx(t), "A")
	check(t, "LoadState", err)
	eqGrants(t, "LoadState after revival", st.Grants, []*ledger.Grant{&u3})
}

func testHoldUpsert(t *testing.T, s ledger.Store) {
	h := newHold("h1", "A", ledger.HoldPending, at(0))
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"))
		saveHolds(t, b, h)
	})
	got, err := s.GetHold(ctx(t), "h1")
	check(t, "GetHold", err)
	eqHolds(t, "GetHold", []*ledger.Hold{got}, []*ledger.Hold{h})

	ext := *h
	ext.ExpiresAt = at(time.Hour)
	write(t, s, func(b ledger.Batch) { saveHolds(t, b, &ext) })
	ph, err := s.ListPendingHolds(ctx(t))
	check(t, "ListPendingHolds", err)
	if len(ph) != 1 || !ph[0].ExpiresAt.Equal(ext.ExpiresAt) {
		t.Errorf("ListPendingHolds after extend: %+v, want expiry %v", ph, ext.ExpiresAt)
	}

	c := ext
	c.Status, c.ResolvedAt, c.CapturedQuantity, c.CapturedCredits = ledger.HoldCaptured, at(2*time.Minute), 2, 10
	c.Portions = []ledger.Portion{{GrantID: "g9", Credits: 20}}
	c.Action, c.Category, c.Quantity, c.UnitPriceCredits, c.AmountCredits = "video.generate", ledger.CategoryVideo, 2, 10, 20
	c.CreatedAt, c.ReleaseReason = at(-time.Second), "x"
	write(t, s, func(b ledger.Batch) { saveHolds(t, b, &c) })
	got, err = s.GetHold(ctx(t), "h1")
	check(t, "GetHold after capture", err)
	eqHolds(t, "GetHold after capture", []*ledger.Hold{got}, []*ledger.Hold{&c})
	st, err := s.LoadState(ctx(t), "A")
	check(t, "LoadState", err)
	if len(st.Holds) != 0 {
		t.Errorf("LoadState: captured hold still pending: %+v", st.Holds)
	}
	ph, err = s.ListPendingHolds(ctx(t))
	check(t, "ListPendingHolds", err)
	if len(ph) != 0 {
		t.Errorf("ListPendingHolds after capture: %+v, want none", ph)
	}
	hist, err := s.LoadHistory(ctx(t), "A")
	check(t, "LoadHistory", err)
	eqHolds(t, "LoadHistory holds", hist.Holds, []*ledger.Hold{&c})
}

func testTimes(t *testing.T, s ledger.Store) {
	// Zero times.
	a := newAccount("A")
	a.DailyNotBefore, a.DailyLastDate = time.Time{}, ""
	g := newGrant("g1", "A", at(0), 10, 0)
	g.ExpiresAt = time.Time{}
	h := newHold("h1", "A", ledger.HoldPending, at(0))
	// Exact microseconds in a non-UTC zone, before and after the epoch.
	exact := time.Date(2031, 12, 31, 23, 59, 59, 999999000, zone)
	old := time.Date(1969, 7, 20, 20, 17, 40, 1000, time.UTC)
	a.UpdatedAt = exact
	h.ExpiresAt = old
	// Finer than a microsecond.
	fine := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)
	e := newEntry("A", "fine", fine)
	r := &ledger.IdempotencyRecord{Principal: "p", Key: "k", Fingerprint: "f", Status: 201, Body: []byte("{}"), CreatedAt: exact}
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, a)
		saveGrants(t, b, g)
		saveHolds(t, b, h)
		insertEntries(t, b, e)
		check(t, "SaveIdempotency", b.SaveIdempotency(ctx(t), []*ledger.IdempotencyRecord{r}))
	})

	ga, err := s.GetAccount(ctx(t), "A")
	check(t, "GetAccount", err)
	if !ga.DailyNotBefore.IsZero() {
		t.Errorf("zero DailyNotBefore came back as %v", ga.DailyNotBefore)
	}
	if !ga.UpdatedAt.Equal(exact) || ga.UpdatedAt.Location() != time.UTC {
		t.Errorf("UpdatedAt: got %v, want %v in UTC", ga.UpdatedAt, exact)
	}
	if !ga.CreatedAt.Equal(t0) {
		t.Errorf("CreatedAt: got %v, want %v", ga.CreatedAt, t0)
	}
	st, err := s.LoadState(ctx(t), "A")
	check(t, "LoadState", err)
	if len(st.Grants) != 1 || !st.Grants[0].ExpiresAt.IsZero() {
		t.Errorf("zero grant ExpiresAt: got %+v", st.Grants)
	}
	gh, err := s.GetHold(ctx(t), "h1")
	check(t, "GetHold", err)
	if !gh.ResolvedAt.IsZero() {
		t.Errorf("zero ResolvedAt came back as %v", gh.ResolvedAt)
	}
	if !gh.ExpiresAt.Equal(old) || gh.ExpiresAt.Location() != time.UTC {
		t.Errorf("pre-epoch ExpiresAt: got %v, want %v in UTC", gh.ExpiresAt, old)
	}
	es, err := s.ListEntries(ctx(t), ledger.ListEntriesParams{AccountID: "A", Limit: 10})
	check(t, "ListEntries", err)
	if len(es) != 1 {
		t.Fatalf("ListEntries: %d entries, want 1", len(es))
	}
	if got := es[0].CreatedAt; !got.Equal(fine.Truncate(time.Microsecond)) && !got.Equal(fine.Round(time.Microsecond)) {
		t.Errorf("sub-microsecond time %v came back as %v, want it at microsecond precision", fine, got)
	}
	gr, err := s.GetIdempotency(ctx(t), "p", "k")
	check(t, "GetIdempotency", err)
	if !gr.CreatedAt.Equal(exact) || gr.CreatedAt.Location() != time.UTC {
		t.Errorf("idempotency CreatedAt: got %v, want %v in UTC", gr.CreatedAt, exact)
	}
}

func testJSONRoundTrip(t *testing.T, s ledger.Store) {
	h := newHold("h1", "A", ledger.HoldPending, at(0))
	h.Portions = []ledger.Portion{{GrantID: "g-1", Credits: 1}, {GrantID: "g-2", Credits: 1 << 40}, {GrantID: "g \"quoted\" ✓", Credits: 3}}
	none := newHold("h2", "A", ledger.HoldReleased, at(0))
	none.Portions = nil
	e := newEntry("A", "legs", at(0))
	e.Legs = append(e.Legs, ledger.Leg{GrantID: "g-3", From: ledger.PartExternal, To: ledger.PartRemaining, Credits: 1 << 50})
	noLegs := newEntry("A", "no legs", at(time.Second))
	noLegs.Legs = nil
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"))
		saveHolds(t, b, h, none)
		insertEntries(t, b, e, noLegs)
	})
	got, err := s.GetHold(ctx(t), "h1")
	check(t, "GetHold", err)
	same(t, "portions", got.Portions, h.Portions)
	got, err = s.GetHold(ctx(t), "h2")
	check(t, "GetHold", err)
	if len(got.Portions) != 0 {
		t.Errorf("nil portions came back as %+v", got.Portions)
	}
	es, err := s.ListEntries(ctx(t), ledger.ListEntriesParams{AccountID: "A", Limit: 10})
	check(t, "ListEntries", err)
	if len(es) != 2 {
		t.Fatalf("ListEntries: %d entries, want 2", len(es))
	}
	same(t, "legs", es[1].Legs, e.Legs)
	if len(es[0].Legs) != 0 {
		t.Errorf("nil legs came back as %+v", es[0].Legs)
	}
}

func testEntries(t *testing.T, s ledger.Store) {
	var want []ledger.Entry // A's entries in insertion order
	n := 0
	next := func(account string) ledger.Entry {
		n++
		e := newEntry(account, fmt.Sprintf("%s-%02d", account, n), at(time.Duration(n)*time.Second))
		e.AmountCredits, e.Quantity = int64(n), int64(n%4)
		e.Type = []ledger.EntryType{ledger.EntryGrant, ledger.EntryHold, ledger.EntryCapture, ledger.EntryRelease, ledger.EntryExpiry, ledger.EntryDailyRefresh}[n%6]
		if account == "A" {
			want = append(want, e)
		}
		return e
	}
	write(t, s, func(b ledger.Batch) { saveAccounts(t, b, newAccount("A"), newAccount("B")) })
	for _, size := range []int{10, 10, 5} {
		var batch []ledger.Entry
		for i := range size {
			batch = append(batch, next("A"))
			if i%3 == 0 {
				batch = append(batch, next("B"))
			}
		}
		write(t, s, func(b ledger.Batch) { insertEntries(t, b, batch...) })
	}

	all, err := s.ListEntries(ctx(t), ledger.ListEntriesParams{AccountID: "A", Limit: 1000})
	check(t, "ListEntries", err)
	if len(all) != 25 {
		t.Fatalf("ListEntries: %d entries, want 25", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID {
			t.Fatalf("ListEntries not newest first by id: %d then %d", all[i-1].ID, all[i].ID)
		}
	}
	if all[len(all)-1].ID <= 0 {
		t.Errorf("entry id %d, want > 0", all[len(all)-1].ID)
	}
	oldestFirst := slices.Clone(all)
	slices.Reverse(oldestFirst)
	eqEntries(t, "entries in insertion order", oldestFirst, want, false)

	testEntryPages(t, s, all)

	// B is separate; an unknown account has no entries.
	bs, err := s.ListEntries(ctx(t), ledger.ListEntriesParams{AccountID: "B", Limit: 100})
	check(t, "ListEntries B", err)
	if len(bs) != 10 {
		t.Errorf("ListEntries B: %d entries, want 10", len(bs))
	}
	for _, e := range bs {
		if e.AccountID != "B" {
			t.Errorf("ListEntries B returned %+v", e)
		}
	}
	none, err := s.ListEntries(ctx(t), ledger.ListEntriesParams{AccountID: "nobody", Limit: 10})
	check(t, "ListEntries unknown account", err)
	if len(none) != 0 {
		t.Errorf("ListEntries of an unknown account: %+v", none)
	}
}

// testEntryPages: all, account A's entries newest first, come back in
// pages of 10 with the BeforeID cursor, and from a cursor in the middle.
func testEntryPages(t *testing.T, s ledger.Store, all []ledger.Entry) {
	var paged []ledger.Entry
	var sizes []int
	before := int64(0)
	for range 10 {
		page, err := s.ListEntries(ctx(t), ledger.ListEntriesParams{AccountID: "A", BeforeID: before, Limit: 10})
		check(t, "ListEntries page", err)
		sizes = append(sizes, len(page))
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		before = page[len(page)-1].ID
	}
	same(t, "page sizes", sizes, []int{10, 10, 5, 0})
	eqEntries(t, "paged entries", paged, all, true)

	// A cursor in the middle.
	mid, err := s.ListEntries(ctx(t), ledger.ListEntriesParams{AccountID: "A", BeforeID: all[3].ID, Limit: 2})
	check(t, "ListEntries mid", err)
	eqEntries(t, "page before a cursor", mid, all[4:6], true)
}

func testNotFound(t *testing.T, s ledger.Store) {
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"))
		saveGrants(t, b, newGrant("g1", "A", at(0), 1, 0))
		saveHolds(t, b, newHold("h1", "A", ledger.HoldPending, at(0)))
	})
	_, err := s.GetAccount(ctx(t), "nope")
	wantCode(t, "GetAccount", err, ledger.ENotFound)
	_, err = s.LoadState(ctx(t), "nope")
	wantCode(t, "LoadState", err, ledger.ENotFound)
	_, err = s.GetHold(ctx(t), "nope")
	wantCode(t, "GetHold", err, ledger.ENotFound)
	_, err = s.GetIdempotency(ctx(t), "p", "nope")
	wantCode(t, "GetIdempotency", err, ledger.ENotFound)
	_, err = s.LoadHistory(ctx(t), "nope")
	wantCode(t, "LoadHistory", err, ledger.ENotFound)

	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer b.Rollback()
	_, err = b.LoadState(ctx(t), "nope")
	wantCode(t, "Batch.LoadState", err, ledger.ENotFound)
	_, err = b.GetHold(ctx(t), "nope")
	wantCode(t, "Batch.GetHold", err, ledger.ENotFound)
	_, err = b.GetIdempotency(ctx(t), "p", "nope")
	wantCode(t, "Batch.GetIdempotency", err, ledger.ENotFound)
	_, err = b.GetGrantByReference(ctx(t), ledger.GrantReferenceParams{AccountID: "A", Source: ledger.SourcePurchase, Reference: "nope"})
	wantCode(t, "Batch.GetGrantByReference", err, ledger.ENotFound)
	// The batch still works after not-found reads.
	if _, err := b.LoadState(ctx(t), "A"); err != nil {
		t.Errorf("Batch.LoadState after not-found reads: %v", err)
	}
	check(t, "Commit", b.Commit())
}

func testGrantByReference(t *testing.T, s ledger.Store) {
	g := newGrant("g1", "A", at(0), 10, 0)
	exhausted := newGrant("g2", "A", at(0), 0, 0)
	noRef := newGrant("g3", "A", at(0), 10, 0)
	noRef.Reference = ""
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"), newAccount("B"))
		saveGrants(t, b, g, exhausted, noRef)
	})
	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer b.Rollback()
	got, err := b.GetGrantByReference(ctx(t), ledger.GrantReferenceParams{AccountID: "A", Source: g.Source, Reference: g.Reference})
	check(t, "GetGrantByReference", err)
	eqGrants(t, "GetGrantByReference", []*ledger.Grant{got}, []*ledger.Grant{g})
	got, err = b.GetGrantByReference(ctx(t), ledger.GrantReferenceParams{AccountID: "A", Source: exhausted.Source, Reference: exhausted.Reference})
	check(t, "GetGrantByReference of an exhausted grant", err)
	eqGrants(t, "GetGrantByReference of an exhausted grant", []*ledger.Grant{got}, []*ledger.Grant{exhausted})
	for _, p := range []ledger.GrantReferenceParams{
		{AccountID: "B", Source: g.Source, Reference: g.Reference},
		{AccountID: "A", Source: ledger.SourcePromo, Reference: g.Reference},
		{AccountID: "A", Source: g.Source, Reference: g.Reference + "x"},
		{AccountID: "A", Source: g.Source, Reference: ""},
	} {
		_, err := b.GetGrantByReference(ctx(t), p)
		wantCode(t, fmt.Sprintf("GetGrantByReference(%+v)", p), err, ledger.ENotFound)
	}
}

func testDuplicateReference(t *testing.T, s ledger.Store) {
	g1 := newGrant("g1", "A", at(0), 10, 0)
	g1.Reference = "order-1"
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"), newAccount("B"))
		saveGrants(t, b, g1)
	})

	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	a := newAccount("A")
	a.Version = 2
	saveAccounts(t, b, a)
	dup := newGrant("g2", "A", at(time.Second), 5, 0)
	dup.Reference = "order-1"
	wantBadData(t, "SaveGrants with a duplicate reference", b.SaveGrants(ctx(t), []*ledger.Grant{dup}), ledger.EConflict)
	if err := b.Rollback(); err != nil {
		t.Errorf("Rollback after conflict: %v", err)
	}
	got, err := s.GetAccount(ctx(t), "A")
	check(t, "GetAccount", err)
	if got.Version != 1 {
		t.Errorf("account version %d after rolled-back batch, want 1", got.Version)
	}
	h, err := s.LoadHistory(ctx(t), "A")
	check(t, "LoadHistory", err)
	same(t, "grants after rolled-back conflict", grantIDs(h.Grants), []string{"g1"})

	// Not conflicts: updating g1 itself; the same reference with another
	// source or account; empty references.
	upd := *g1
	upd.RemainingCredits, upd.ChargedCredits = 0, g1.ChargedCredits+10
	other := func(id, account string, src ledger.Source, ref string) *ledger.Grant {
		g := newGrant(id, account, at(time.Minute), 1, 0)
		g.Source, g.Reference = src, ref
		return g
	}
	write(t, s, func(b ledger.Batch) {
		saveGrants(t, b, &upd,
			other("g3", "A", ledger.SourcePromo, "order-1"),
			other("g4", "B", ledger.SourcePurchase, "order-1"),
			other("g5", "A", ledger.SourcePurchase, ""),
			other("g6", "A", ledger.SourcePurchase, ""))
	})
	h, err = s.LoadHistory(ctx(t), "A")
	check(t, "LoadHistory", err)
	same(t, "grants", grantIDs(h.Grants), []string{"g1", "g3", "g5", "g6"})

	// A conflict with a grant saved earlier in the same batch.
	b, err = s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	saveGrants(t, b, other("g7", "A", ledger.SourceAdmin, "x"))
	wantBadData(t, "SaveGrants duplicating the batch's own grant", b.SaveGrants(ctx(t), []*ledger.Grant{other("g8", "A", ledger.SourceAdmin, "x")}), ledger.EConflict)
	check(t, "Rollback", b.Rollback())
	_, err = s.LoadState(ctx(t), "A")
	check(t, "LoadState after rollback", err)
	h, err = s.LoadHistory(ctx(t), "A")
	check(t, "LoadHistory", err)
	same(t, "grants", grantIDs(h.Grants), []string{"g1", "g3", "g5", "g6"})
}

func testRollback(t *testing.T, s ledger.Store) {
	write(t, s, func(b ledger.Batch) { saveAccounts(t, b, newAccount("A")) })
	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	a := newAccount("A")
	a.Version, a.Plan = 9, ledger.PlanPaid
	saveAccounts(t, b, a, newAccount("B"))
	saveGrants(t, b, newGrant("g1", "A", at(0), 10, 0))
	saveHolds(t, b, newHold("h1", "A", ledger.HoldPending, at(0)))
	insertEntries(t, b, newEntry("A", "e", at(0)))
	check(t, "SaveIdempotency", b.SaveIdempotency(ctx(t), []*ledger.IdempotencyRecord{{Principal: "p", Key: "k", Fingerprint: "f", Status: 200, CreatedAt: at(0)}}))
	check(t, "Rollback", b.Rollback())

	got, err := s.GetAccount(ctx(t), "A")
	check(t, "GetAccount", err)
	eqAccount(t, "account after rollback", got, newAccount("A"))
	_, err = s.GetAccount(ctx(t), "B")
	wantCode(t, "GetAccount of rolled-back account", err, ledger.ENotFound)
	_, err = s.GetHold(ctx(t), "h1")
	wantCode(t, "GetHold of rolled-back hold", err, ledger.ENotFound)
	_, err = s.GetIdempotency(ctx(t), "p", "k")
	wantCode(t, "GetIdempotency of rolled-back record", err, ledger.ENotFound)
	h, err := s.LoadHistory(ctx(t), "A")
	check(t, "LoadHistory", err)
	if len(h.Grants)+len(h.Holds)+len(h.Entries) != 0 {
		t.Errorf("rolled-back rows visible: %+v", h)
	}
	ph, err := s.ListPendingHolds(ctx(t))
	check(t, "ListPendingHolds", err)
	if len(ph) != 0 {
		t.Errorf("rolled-back pending holds: %+v", ph)
	}

	// The store takes new batches afterwards.
	write(t, s, func(b ledger.Batch) { saveAccounts(t, b, newAccount("B")) })
	if _, err := s.GetAccount(ctx(t), "B"); err != nil {
		t.Errorf("GetAccount after a batch following a rollback: %v", err)
	}
}

func testIdempotency(t *testing.T, s ledger.Store) {
	r1 := &ledger.IdempotencyRecord{Principal: "alice", Key: "k1", Fingerprint: "fp1", Status: 201, Body: []byte(`{"id":"h1"}`), CreatedAt: at(0)}
	r2 := &ledger.IdempotencyRecord{Principal: "bob", Key: "k1", Fingerprint: "fp2", Status: 402, Body: []byte{0, 1, 2, 255}, CreatedAt: at(time.Hour)}
	r3 := &ledger.IdempotencyRecord{Principal: "alice", Key: "k2", Fingerprint: "fp3", Status: 200, Body: nil, CreatedAt: at(2 * time.Hour)}
	write(t, s, func(b ledger.Batch) {
		check(t, "SaveIdempotency", b.SaveIdempotency(ctx(t), []*ledger.IdempotencyRecord{r1, r2, r3}))
		got, err := b.GetIdempotency(ctx(t), "bob", "k1")
		check(t, "Batch.GetIdempotency", err)
		same(t, "Batch.GetIdempotency", normIdem(*got), normIdem(*r2))
	})
	for _, r := range []*ledger.IdempotencyRecord{r1, r2, r3} {
		got, err := s.GetIdempotency(ctx(t), r.Principal, r.Key)
		check(t, "GetIdempotency", err)
		same(t, "GetIdempotency", normIdem(*got), normIdem(*r))
	}
	// Upsert.
	u := *r1
	u.Fingerprint, u.Status, u.Body = "fp1b", 500, []byte("again")
	write(t, s, func(b ledger.Batch) {
		check(t, "SaveIdempotency", b.SaveIdempotency(ctx(t), []*ledger.IdempotencyRecord{&u}))
	})
	got, err := s.GetIdempotency(ctx(t), "alice", "k1")
	check(t, "GetIdempotency after upsert", err)
	same(t, "GetIdempotency after upsert", normIdem(*got), normIdem(u))

	// Delete strictly before a time.
	n, err := s.DeleteIdempotencyBefore(ctx(t), at(time.Hour))
	check(t, "DeleteIdempotencyBefore", err)
	if n != 1 {
		t.Errorf("DeleteIdempotencyBefore(t0+1h) deleted %d, want 1", n)
	}
	_, err = s.GetIdempotency(ctx(t), "alice", "k1")
	wantCode(t, "GetIdempotency of a deleted record", err, ledger.ENotFound)
	if _, err := s.GetIdempotency(ctx(t), "bob", "k1"); err != nil {
		t.Errorf("record created exactly at the cut-off was deleted: %v", err)
	}
	n, err = s.DeleteIdempotencyBefore(ctx(t), at(time.Hour))
	check(t, "DeleteIdempotencyBefore again", err)
	if n != 0 {
		t.Errorf("second DeleteIdempotencyBefore deleted %d, want 0", n)
	}
	n, err = s.DeleteIdempotencyBefore(ctx(t), at(3*time.Hour))
	check(t, "DeleteIdempotencyBefore all", err)
	if n != 2 {
		t.Errorf("DeleteIdempotencyBefore(t0+3h) deleted %d, want 2", n)
	}

	// Many records.
	var many []*ledger.IdempotencyRecord
	for i := range 2500 {
		many = append(many, &ledger.IdempotencyRecord{Principal: "p", Key: fmt.Sprint(i), Fingerprint: "f", Status: 200, CreatedAt: at(time.Duration(i) * time.Millisecond)})
	}
	write(t, s, func(b ledger.Batch) { check(t, "SaveIdempotency", b.SaveIdempotency(ctx(t), many)) })
	n, err = s.DeleteIdempotencyBefore(ctx(t), at(2100*time.Millisecond))
	check(t, "DeleteIdempotencyBefore many", err)
	if n != 2100 {
		t.Errorf("DeleteIdempotencyBefore deleted %d of many, want 2100", n)
	}
	if _, err := s.GetIdempotency(ctx(t), "p", "2100"); err != nil {
		t.Errorf("GetIdempotency after partial delete: %v", err)
	}
}

func testListPendingHolds(t *testing.T, s ledger.Store) {
	p1 := newHold("h-p1", "A", ledger.HoldPending, at(time.Minute))
	p2 := newHold("h-p2", "B", ledger.HoldPending, at(0))
	p3 := newHold("h-p3", "A", ledger.HoldPending, at(-time.Hour))
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, newAccount("A"), newAccount("B"))
		saveHolds(t, b, p1, p2, p3,
			newHold("h-c", "A", ledger.HoldCaptured, at(0)),
			newHold("h-r", "B", ledger.HoldReleased, at(0)),
			newHold("h-e", "B", ledger.HoldExpired, at(0)))
	})
	got, err := s.ListPendingHolds(ctx(t))
	check(t, "ListPendingHolds", err)
	slices.SortFunc(got, func(a, b ledger.HoldExpiry) int { return strings.Compare(a.HoldID, b.HoldID) })
	for i := range got {
		got[i].ExpiresAt = normTime(got[i].ExpiresAt)
	}
	want := []ledger.HoldExpiry{
		{HoldID: "h-p1", AccountID: "A", ExpiresAt: p1.ExpiresAt},
		{HoldID: "h-p2", AccountID: "B", ExpiresAt: p2.ExpiresAt},
		{HoldID: "h-p3", AccountID: "A", ExpiresAt: p3.ExpiresAt},
	}
	same(t, "ListPendingHolds", got, want)
}

func testListAccountIDs(t *testing.T, s ledger.Store) {
	var accounts []*ledger.Account
	for _, i := range []int{5, 2, 7, 1, 3, 6, 4} {
		accounts = append(accounts, newAccount(fmt.Sprintf("acct-%d", i)))
	}
	write(t, s, func(b ledger.Batch) { saveAccounts(t, b, accounts...) })
	var pages [][]string
	after := ""
	for range 10 {
		page, err := s.ListAccountIDs(ctx(t), ledger.ListAccountIDsParams{After: after, Limit: 3})
		check(t, "ListAccountIDs", err)
		if len(page) == 0 {
			break
		}
		pages = append(pages, page)
		after = page[len(page)-1]
	}
	same(t, "ListAccountIDs pages", pages, [][]string{
		{"acct-1", "acct-2", "acct-3"}, {"acct-4", "acct-5", "acct-6"}, {"acct-7"},
	})
	got, err := s.ListAccountIDs(ctx(t), ledger.ListAccountIDsParams{After: "acct-3x", Limit: 100})
	check(t, "ListAccountIDs", err)
	same(t, "ListAccountIDs after a non-id", got, []string{"acct-4", "acct-5", "acct-6", "acct-7"})
}

func testLoadHistory(t *testing.T, s ledger.Store) {
	a := newAccount("A")
	a.Version = 4
	g1 := newGrant("g1", "A", at(time.Minute), 0, 0) // exhausted
	g2 := newGrant("g2", "A", at(0), 10, 5)
	g3 := newGrant("g3", "A", at(time.Minute), 1, 0)
	gB := newGrant("gB", "B", at(0), 10, 0)
	h1 := newHold("h1", "A", ledger.HoldCaptured, at(time.Minute))
	h2 := newHold("h2", "A", ledger.HoldPending, at(0))
	h3 := newHold("h3", "A", ledger.HoldExpired, at(time.Minute))
	hB := newHold("hB", "B", ledger.HoldPending, at(0))
	e1, e2, e3 := newEntry("A", "1", at(2*time.Minute)), newEntry("A", "2", at(time.Minute)), newEntry("A", "3", at(0))
	eB := newEntry("B", "b", at(0))
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, a, newAccount("B"))
		saveGrants(t, b, g3, gB, g1, g2)
		saveHolds(t, b, h3, hB, h1, h2)
		insertEntries(t, b, e1, eB, e2)
	})
	write(t, s, func(b ledger.Batch) { insertEntries(t, b, e3) })

	h, err := s.LoadHistory(ctx(t), "A")
	check(t, "LoadHistory", err)
	eqAccount(t, "history account", &h.Account, a)
	eqGrants(t, "history grants (all, by created_at, id)", h.Grants, []*ledger.Grant{g2, g1, g3})
	eqHolds(t, "history holds (all, by created_at, id)", h.Holds, []*ledger.Hold{h2, h1, h3})
	eqEntries(t, "history entries (ascending id)", h.Entries, []ledger.Entry{e1, e2, e3}, false)
	for i := 1; i < len(h.Entries); i++ {
		if h.Entries[i].ID <= h.Entries[i-1].ID {
			t.Errorf("history entries not ascending: %d then %d", h.Entries[i-1].ID, h.Entries[i].ID)
		}
	}
	listed, err := s.ListEntries(ctx(t), ledger.ListEntriesParams{AccountID: "A", Limit: 10})
	check(t, "ListEntries", err)
	slices.Reverse(listed)
	eqEntries(t, "history entries match ListEntries", h.Entries, listed, true)
}

func testLockAccounts(t *testing.T, s ledger.Store) {
	a, b := newAccount("A"), newAccount("B")
	a.Version, b.Version = 3, 5
	write(t, s, func(bt ledger.Batch) { saveAccounts(t, bt, a, b) })

	bt, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer bt.Rollback()
	got, err := bt.LockAccounts(ctx(t), []string{"A", "B", "missing"})
	check(t, "LockAccounts", err)
	same(t, "LockAccounts", got, map[string]int64{"A": 3, "B": 5})
	got, err = bt.LockAccounts(ctx(t), []string{"missing"})
	check(t, "LockAccounts", err)
	if len(got) != 0 {
		t.Errorf("LockAccounts of a missing account: %v", got)
	}
	got, err = bt.LockAccounts(ctx(t), nil)
	check(t, "LockAccounts(nil)", err)
	if len(got) != 0 {
		t.Errorf("LockAccounts(nil): %v", got)
	}
	c := newAccount("C")
	c.Version = 1
	saveAccounts(t, bt, c)
	got, err = bt.LockAccounts(ctx(t), []string{"C"})
	check(t, "LockAccounts", err)
	same(t, "LockAccounts of an account saved in the batch", got, map[string]int64{"C": 1})
	check(t, "Commit", bt.Commit())
}

// testLargeBatch writes more rows per table than one statement takes in
// the SQLite store, with sizes that are not round numbers.
func testLargeBatch(t *testing.T, s ledger.Store) {
	const n = 1234
	accounts := []*ledger.Account{newAccount("A")}
	var grants []*ledger.Grant
	var holds []*ledger.Hold
	var entries []ledger.Entry
	for i := range n {
		id := fmt.Sprintf("acct-%04d", i)
		accounts = append(accounts, newAccount(id))
		grants = append(grants, newGrant(fmt.Sprintf("g-%04d", i), id, at(time.Duration(i)*time.Microsecond), int64(i%3), 0))
		holds = append(holds, newHold(fmt.Sprintf("h-%04d", i), id, ledger.HoldPending, at(time.Duration(i)*time.Second)))
		entries = append(entries, newEntry("A", fmt.Sprint(i), at(0)), newEntry(id, "x", at(0)))
	}
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, accounts...)
		saveGrants(t, b, grants...)
		saveHolds(t, b, holds...)
		insertEntries(t, b, entries...)
	})
	ids, err := s.ListAccountIDs(ctx(t), ledger.ListAccountIDsParams{Limit: 10 * n})
	check(t, "ListAccountIDs", err)
	if len(ids) != n+1 || ids[0] != "A" || ids[1] != "acct-0000" || ids[n] != fmt.Sprintf("acct-%04d", n-1) {
		t.Errorf("ListAccountIDs: %d ids, want %d", len(ids), n+1)
	}
	ph, err := s.ListPendingHolds(ctx(t))
	check(t, "ListPendingHolds", err)
	if len(ph) != n {
		t.Errorf("ListPendingHolds: %d, want %d", len(ph), n)
	}
	es, err := s.ListEntries(ctx(t), ledger.ListEntriesParams{AccountID: "A", Limit: 10 * n})
	check(t, "ListEntries", err)
	if len(es) != n {
		t.Fatalf("ListEntries: %d, want %d", len(es), n)
	}
	for i, e := range es {
		if want := fmt.Sprint(n - 1 - i); e.Reason != want {
			t.Fatalf("entry %d: reason %q, want %q (insertion order)", i, e.Reason, want)
		}
	}
	for _, i := range []int{0, 255, 256, 1000, n - 1} {
		id := grants[i].AccountID
		st, err := s.LoadState(ctx(t), id)
		check(t, "LoadState", err)
		eqAccount(t, "LoadState account "+id, &st.Account, newAccount(id))
		var want []*ledger.Grant
		if grants[i].RemainingCredits > 0 {
			want = []*ledger.Grant{grants[i]}
		}
		eqGrants(t, "LoadState grants "+id, st.Grants, want)
		eqHoldMap(t, "LoadState holds "+id, st.Holds, holds[i])
	}
}

// testConcurrentReads checks that reads run alongside batches and that
// LoadState is one snapshot: every batch moves credits between a grant's
// remaining and held and bumps the account version to match.
func testConcurrentReads(t *testing.T, s ledger.Store) {
	const rounds = 30
	a := newAccount("A")
	a.Version = 0
	g := newGrant("g1", "A", at(0), 100, 0)
	write(t, s, func(b ledger.Batch) {
		saveAccounts(t, b, a)
		saveGrants(t, b, g)
	})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				st, err := s.LoadState(ctx(t), "A")
				if err != nil {
					errs <- err
					return
				}
				if len(st.Grants) != 1 || st.Grants[0].HeldCredits != st.Account.Version {
					errs <- fmt.Errorf("inconsistent snapshot: version %d, grants %+v", st.Account.Version, normGrants(st.Grants))
					return
				}
			}
		})
	}
	for i := 1; i <= rounds; i++ {
		a.Version = int64(i)
		g.RemainingCredits, g.HeldCredits = 100-int64(i), int64(i)
		write(t, s, func(b ledger.Batch) {
			// Grant first, then account: a reader mixing snapshots would
			// see them disagree.
			saveGrants(t, b, g)
			saveAccounts(t, b, a)
		})
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st, err := s.LoadState(ctx(t), "A")
	check(t, "LoadState", err)
	if st.Account.Version != rounds {
		t.Errorf("final version %d, want %d", st.Account.Version, rounds)
	}
}
