package sqlite

// The journal: how a batch becomes durable with one record write.
//
// A batch's rows (accounts, grants, holds, entries, idempotency records,
// jobs) are not written to their tables by the batch itself. Commit encodes
// them into one record and appends it to the journal — plain segment files
// in <name>.journal/ beside the database (journal_file.go) — with one write
// and one fdatasync. From then on the batch is durable and visible: its
// rows sit in an in-memory overlay that every read consults before the
// tables.
//
// A materializer goroutine then writes the journaled batches into the tables
// of the main database, many batches per transaction: a row changed by
// several batches is written once (a hold reserved and captured a moment
// later is one insert, a hot account's bucket one update), and the
// transaction records the last batch it covers (journal_state.applied_seq).
// After it commits, those batches leave the overlay, and the next journal
// commit retires the segments they filled.
//
// Meanwhile a pending batch whose rows later batches rewrite is replaced by
// a copy of its live rows once a quarter of them are rewritten (compact), so
// a hot account costs the journal's bound one row, not one per batch.
//
// Journaling and materializing write different files, so they run in
// parallel on two cores. If the materializer falls behind by
// journalPendingRowsMax rows, new batches wait.
//
// Crash safety: a journaled batch is in the tables exactly when its seq is
// at most applied_seq, which is written in the same transaction as the
// rows. Open replays every journal record past applied_seq before the store
// is used, so a batch is never lost nor applied twice.
//
// Reads: point reads (an account, hold, job, grant by reference,
// idempotency record) look in the overlay first. LoadState waits until the
// account's last journaled change is materialized; range reads (entries,
// lists, history) wait until everything journaled before them is.

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// journalPendingRowsMax bounds the rows journaled but not yet materialized
// (the overlay); beyond it BeginBatch waits for the materializer.
const journalPendingRowsMax = 1 << 18

// The materializer waits until materializeRowsMin rows are journaled or
// materializeDelay has passed since its last run, so that each of its
// transactions covers many batches, unless a read or a waiting batch needs
// it now. Over many accounts its cost is pages, not rows: every account
// touched in a window dirties the last page of its entry runs and of its
// hold blocks, whether one cycle touched it or twenty, so a longer window
// writes fewer pages per cycle (and fewer holds are still pending at its
// end, which are written to holds and moved to a block later). Measured
// with creditd bench over 10,000 accounts (docs/performance.md): 200 ms
// gave 27,000 in-process cycles/s, 1.5 s 40,000, 3 s 48,000. The cost is
// a read-only store's lag, the overlay's memory (about 650 bytes of heap
// per pending row) and the time a range read waits when it arrives with a
// full window pending. 250,000 rows is about a second at the benchmark's
// rates (six rows a cycle). Where the materializer cannot keep up (over
// 1,000,000 accounts every cycle dirties pages of its own), the backlog,
// not the window, sets the overlay's size, up to journalPendingRowsMax.
//
// A transaction must also start early enough that the rows arriving while
// it writes fit below journalPendingRowsMax: a batch that finds the journal
// full waits for the whole transaction, and so does every operation behind
// it. So the materializer starts at materializeRowsMin pending rows or,
// if lower, at journalPendingRowsMax minus twice the rows that arrived
// during its last transaction (startRows). Measured with creditd bench
// over 10,000 accounts (docs/performance.md): with the fixed 250,000 rows,
// 12,144 rows below the bound, batches waited 4 to 7 times a run, each
// stall as long as a transaction (p99.9 0.5–1.2 s).
const (
	materializeRowsMin = 250000
	materializeDelay   = 2 * time.Second
)

// materializeRetry is how long the materializer waits before retrying a
// failed transaction (the batches stay journaled meanwhile).
const materializeRetry = time.Second

// changeSet is the rows of one committed batch, as journaled. While it is
// pending, rows that a later batch rewrote may be dropped from it
// (journal.compact): the tables only ever need a row's newest version.
type changeSet struct {
	Seq         int64
	Accounts    []ledger.Account
	Grants      []ledger.Grant
	Holds       []ledger.Hold
	Entries     []ledger.Entry
	Idempotency []ledger.IdempotencyRecord
	Jobs        []ledger.Job

	journaled int   // rows as journaled (rows() before any compaction)
	dead      int   // rows still held here that a later batch rewrote
	due       bool  // queued in journal.due for compaction
	need      int64 // compacted: the newest versions of the rows it lacks are in batches up to this seq
}

func (c *changeSet) rows() int {
	return len(c.Accounts) + len(c.Grants) + len(c.Holds) + len(c.Entries) + len(c.Idempotency) + len(c.Jobs)
}

// versioned is an overlay row with the seq of the batch that wrote it.
type versioned[T any] struct {
	seq int64
	v   *T
}

// overlay holds the newest version of every row journaled but not yet
// materialized.
type overlay struct {
	accounts map[string]versioned[ledger.Account]
	grants   map[string]versioned[ledger.Grant]
	refs     map[ledger.GrantReferenceParams]versioned[string] // → grant id
	holds    map[string]versioned[ledger.Hold]
	idem     map[[2]string]versioned[ledger.IdempotencyRecord]
	jobs     map[string]versioned[ledger.Job]
	touched  map[string]int64 // account id → seq of its last journaled change
}

func newOverlay() overlay {
	return overlay{
		accounts: map[string]versioned[ledger.Account]{},
		grants:   map[string]versioned[ledger.Grant]{},
		refs:     map[ledger.GrantReferenceParams]versioned[string]{},
		holds:    map[string]versioned[ledger.Hold]{},
		idem:     map[[2]string]versioned[ledger.IdempotencyRecord]{},
		jobs:     map[string]versioned[ledger.Job]{},
		touched:  map[string]int64{},
	}
}

func refKey(g *ledger.Grant) ledger.GrantReferenceParams {
	return ledger.GrantReferenceParams{AccountID: g.AccountID, Source: g.Source, Reference: g.Reference}
}

// add makes c's rows the newest versions. For every row it replaces (one
// that an earlier batch, or c itself, wrote before), it calls superseded
// with the seq of the batch that holds the replaced version.
func (o *overlay) add(c *changeSet, superseded func(seq int64)) {
	s := c.Seq
	for i := range c.Accounts {
		a := &c.Accounts[i]
		put(o.accounts, a.ID, versioned[ledger.Account]{s, a}, superseded)
		o.touched[a.ID] = s
	}
	for i := range c.Grants {
		g := &c.Grants[i]
		put(o.grants, g.ID, versioned[ledger.Grant]{s, g}, superseded)
		if g.Reference != "" {
			id := g.ID
			o.refs[refKey(g)] = versioned[string]{s, &id}
		}
		o.touched[g.AccountID] = s
	}
	for i := range c.Holds {
		h := &c.Holds[i]
		put(o.holds, h.ID, versioned[ledger.Hold]{s, h}, superseded)
		o.touched[h.AccountID] = s
	}
	for i := range c.Entries {
		o.touched[c.Entries[i].AccountID] = s
	}
	for i := range c.Idempotency {
		r := &c.Idempotency[i]
		put(o.idem, [2]string{r.Principal, r.Key}, versioned[ledger.IdempotencyRecord]{s, r}, superseded)
	}
	for i := range c.Jobs {
		j := &c.Jobs[i]
		put(o.jobs, j.ID, versioned[ledger.Job]{s, j}, superseded)
		o.touched[j.AccountID] = s
	}
}

func put[K comparable, T any](m map[K]versioned[T], k K, v versioned[T], superseded func(seq int64)) {
	if old, ok := m[k]; ok {
		superseded(old.seq)
	}
	m[k] = v
}

// keep copies the rows of src that are live (the overlay's newest version
// of their key: it points at them) into a new slice, and points the overlay
// at the copies.
func keep[K comparable, T any](m map[K]versioned[T], src []T, key func(*T) K) []T {
	live := func(i int) (K, int64, bool) {
		k := key(&src[i])
		v := m[k]
		return k, v.seq, v.v == &src[i]
	}
	n := 0
	for i := range src {
		if _, _, ok := live(i); ok {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	dst := make([]T, 0, n)
	for i := range src {
		if k, seq, ok := live(i); ok {
			dst = append(dst, src[i])
			m[k] = versioned[T]{seq, &dst[len(dst)-1]}
		}
	}
	return dst
}

// prune drops what batches up to seq wrote, unless a later batch wrote the
// same row again.
func (o *overlay) prune(seq int64) {
	pruneMap(o.accounts, seq)
	pruneMap(o.grants, seq)
	pruneMap(o.refs, seq)
	pruneMap(o.holds, seq)
	pruneMap(o.idem, seq)
	pruneMap(o.jobs, seq)
	for k, s := range o.touched {
		if s <= seq {
			delete(o.touched, k)
		}
	}
}

func pruneMap[K comparable, T any](m map[K]versioned[T], seq int64) {
	for k, v := range m {
		if v.seq <= seq {
			delete(m, k)
		}
	}
}

// journal is the write-ahead part of a read-write Store.
type journal struct {
	f *journalFile // <name>.journal/, written under batchMu

	batchMu sync.Mutex // held from BeginBatch to Commit/Rollback: one batch at a time

	mu          sync.Mutex
	committed   int64 // last journaled seq
	applied     int64 // last seq in the tables
	pending     []*changeSet
	pendingRows int
	pendingMax  int           // journalPendingRowsMax; tests lower it
	headroom    int           // rows kept free below pendingMax for a transaction's arrivals (startRows)
	chunkRows   int           // materializeRowsMin: rows a transaction stops after; tests lower it
	delay       time.Duration // materializeDelay; tests raise it
	ov          overlay
	inflight    int64        // last seq of the batches the running transaction writes (0: none)
	due         []*changeSet // pending sets queued by superseded during a Commit (compactDue)
	nextEntry   int64        // next entry id
	nextJobSeq  int64        // next job seq
	err         error        // last materializer failure, cleared on success
	closing     bool
	urgent      bool          // a reader or a batch waits for the materializer
	started     bool          // the materializer runs
	advanced    chan struct{} // closed and replaced whenever applied moves (or err is set)
	kick        chan struct{} // wakes the materializer (buffer 1)
	stopped     chan struct{} // closed when the materializer has exited
	materialize func(ctx context.Context, sets []*changeSet) error
	stats       JournalStats // the counters; JournalStats reads the gauges
}

// JournalStats describe the journal and its materializer (Store.JournalStats).
type JournalStats struct {
	PendingRows    int     // rows journaled but not yet in the tables (the overlay)
	PendingRowsMax int     // journalPendingRowsMax: beyond it batches wait
	PendingBatches int     // batches journaled but not yet in the tables
	Transactions   int64   // materializer transactions committed
	Rows           int64   // journaled rows they covered (a row changed twice counts twice)
	Seconds        float64 // time spent in them
	Failures       int64   // materializer transactions that failed (retried)
	Superseded     int64   // pending rows dropped from memory because a later batch rewrote them (compact)
	FullWaits      int64   // batches that waited because the journal was full
	StartRows      int     // pending rows at which a transaction starts without waiting for the window (startRows)
}

// JournalStats returns the journal's statistics; a read-only store has
// none.
func (s *Store) JournalStats() JournalStats {
	j := s.j
	if j == nil {
		return JournalStats{}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	st := j.stats
	st.PendingRows, st.PendingRowsMax, st.PendingBatches = j.pendingRows, j.pendingMax, len(j.pending)
	st.StartRows = j.startRows()
	return st
}

// openJournal opens the journal of s, replays what the tables lack, and
// starts the materializer.
func (s *Store) openJournal(ctx context.Context) error {
	j := &journal{
		ov:         newOverlay(),
		pendingMax: journalPendingRowsMax,
		chunkRows:  materializeRowsMin,
		delay:      materializeDelay,
		advanced:   make(chan struct{}),
		kick:       make(chan struct{}, 1),
		stopped:    make(chan struct{}),
	}
	s.j = j
	j.materialize = s.materialize
	if err := s.w.QueryRowContext(ctx, `SELECT applied_seq FROM journal_state WHERE id = 1`).Scan(&j.applied); err != nil {
		return wrap("read journal state", err, "")
	}
	pending, err := s.ListPendingHolds(ctx)
	if err != nil {
		return err
	}
	s.tablePending = make(map[string]struct{}, len(pending))
	for _, p := range pending {
		s.tablePending[p.HoldID] = struct{}{}
	}
	if err := s.replayLegacyJournal(ctx, &j.applied); err != nil {
		return err
	}
	jf, recs, _, err := openJournalFile(journalDir(s.path), j.applied)
	if err != nil {
		return err
	}
	j.f = jf
	// Replay, a bounded number of rows per transaction.
	var sets []*changeSet
	rows := 0
	for i, r := range recs {
		c, err := decodeChangeSet(r.data)
		if err != nil {
			return fmt.Errorf("sqlite: journal record %d: %w", r.seq, err)
		}
		if c.Seq != r.seq {
			return fmt.Errorf("sqlite: journal record %d claims seq %d", r.seq, c.Seq)
		}
		sets = append(sets, c)
		rows += c.rows()
		if rows >= materializeRowsMin || i == len(recs)-1 {
			if err := s.materialize(ctx, sets); err != nil {
				return fmt.Errorf("sqlite: replay journal: %w", err)
			}
			j.applied = sets[len(sets)-1].Seq
			sets, rows = sets[:0], 0
		}
	}
	if err := jf.release(j.applied); err != nil {
		return err
	}
	j.committed = j.applied
	if err := s.w.QueryRowContext(ctx, `SELECT next_entry_id FROM journal_state WHERE id = 1`).Scan(&j.nextEntry); err != nil {
		return wrap("read entry ids", err, "")
	}
	if err := s.w.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) + 1 FROM jobs`).Scan(&j.nextJobSeq); err != nil {
		return wrap("read job seqs", err, "")
	}
	j.started = true
	go j.run()
	return nil
}

// replayLegacyJournal writes the batches of a journal left by a version
// that kept it in a SQLite file (<name>.journal.db) into the tables, then
// deletes that file.
func (s *Store) replayLegacyJournal(ctx context.Context, applied *int64) error {
	path := legacyJournalPath(s.path)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}).String())
	if err != nil {
		return fmt.Errorf("sqlite: open old journal: %w", err)
	}
	defer db.Close()
	var sets []*changeSet
	rows, err := db.QueryContext(ctx, `SELECT seq, data FROM batches WHERE seq > ? ORDER BY seq`, *applied)
	if err != nil && !strings.Contains(err.Error(), "no such table") {
		return wrap("read old journal", err, "")
	}
	for err == nil && rows.Next() {
		var seq int64
		var data []byte
		if err := rows.Scan(&seq, &data); err != nil {
			rows.Close()
			return wrap("read old journal", err, "")
		}
		c, err := decodeChangeSet(data)
		if err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: old journal record %d: %w", seq, err)
		}
		if want := *applied + int64(len(sets)) + 1; seq != want || c.Seq != seq {
			rows.Close()
			return fmt.Errorf("sqlite: old journal record %d (seq %d) found where %d was expected", seq, c.Seq, want)
		}
		sets = append(sets, c)
	}
	if rows != nil {
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap("read old journal", err, "")
		}
	}
	if len(sets) > 0 {
		if err := s.materialize(ctx, sets); err != nil {
			return fmt.Errorf("sqlite: replay old journal: %w", err)
		}
		*applied = sets[len(sets)-1].Seq
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("sqlite: close old journal: %w", err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sqlite: remove old journal: %w", err)
		}
	}
	return nil
}

// run is the materializer loop.
func (j *journal) run() {
	defer close(j.stopped)
	var retry <-chan time.Time
	lastRun := time.Now()
	backlog := false // the last transaction left batches that were due
	for {
		j.mu.Lock()
		sets := j.pending
		closing, urgent, rows, start, delay := j.closing, j.urgent, j.pendingRows, j.startRows(), j.delay
		if len(sets) == 0 {
			// Nobody waits for an empty journal: a waiter that flagged
			// urgent after the last transaction began (waitApplied,
			// through a backlog) has what it waited for, and the next
			// batch waits for its window.
			j.urgent = false
		}
		j.mu.Unlock()
		if len(sets) == 0 {
			if closing {
				return
			}
			<-j.kick
			continue
		}
		if wait := delay - time.Since(lastRun); !closing && !urgent && !backlog && rows < start && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-j.kick:
				t.Stop()
				continue
			}
		}
		if retry != nil && !closing {
			select {
			case <-retry:
			case <-j.kick:
				continue
			}
			retry = nil
		}
		j.mu.Lock()
		j.urgent = false
		sets = j.pending
		before := j.pendingRows
		// About chunkRows rows a transaction at most: a backlog
		// goes in steps, each freeing its part of the overlay for waiting
		// batches, and a transaction's dirty pages stay bounded. A step
		// ends only where no batch in it lacks rows whose newest
		// versions lie beyond it (need, from compact): the tables then
		// hold exactly the state after the step's last batch, as read-only
		// stores and a crashed database expect.
		chunk := 0
		need := int64(0)
		backlog = false
		for n, c := range sets {
			if n > 0 && chunk >= j.chunkRows && need < c.Seq {
				sets, backlog = sets[:n], true
				break
			}
			chunk += c.rows()
			need = max(need, c.need)
		}
		// These sets are read without mu from here on: compact leaves
		// them alone.
		j.inflight = sets[len(sets)-1].Seq
		j.mu.Unlock()
		lastRun = time.Now()
		err := j.materialize(context.Background(), sets)
		took := time.Since(lastRun)
		j.mu.Lock()
		j.inflight = 0
		if err != nil && j.closing {
			// Leave the batches in the journal: Open replays them.
			j.err = err
			close(j.advanced)
			j.advanced = make(chan struct{})
			j.mu.Unlock()
			return
		}
		if err != nil {
			j.err = err
			j.stats.Failures++
			retry = time.After(materializeRetry)
		} else {
			j.err = nil
			j.stats.Transactions++
			j.stats.Seconds += took.Seconds()
			last := sets[len(sets)-1].Seq
			j.applied = last
			// Keep room for twice what arrived meanwhile (the rows
			// pending beyond those at the start); forget a burst
			// gradually.
			j.headroom = max(2*(j.pendingRows-before), j.headroom*3/4)
			j.pending = j.pending[len(sets):]
			for _, c := range sets {
				j.pendingRows -= c.rows()
				j.stats.Rows += int64(c.journaled)
			}
			j.ov.prune(last)
		}
		close(j.advanced)
		j.advanced = make(chan struct{})
		j.mu.Unlock()
	}
}

// startRows is the pending rows at which the materializer starts a
// transaction without waiting for the window's delay: materializeRowsMin,
// or lower so that the rows arriving while it writes fit below pendingMax.
// Called with mu held.
func (j *journal) startRows() int {
	return max(0, min(materializeRowsMin, j.pendingMax-j.headroom))
}

func (j *journal) wake() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// waitApplied waits until batches up to seq are in the tables.
func (j *journal) waitApplied(ctx context.Context, seq int64) error {
	for {
		j.mu.Lock()
		if j.applied >= seq {
			j.mu.Unlock()
			return nil
		}
		ch := j.advanced
		j.urgent = true
		j.mu.Unlock()
		j.wake()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("sqlite: wait for the journal: %w", ctx.Err())
		}
	}
}

// sync waits until everything journaled so far is in the tables.
func (j *journal) sync(ctx context.Context) error {
	j.mu.Lock()
	seq := j.committed
	j.mu.Unlock()
	return j.waitApplied(ctx, seq)
}

// syncAccount waits until the account's journaled changes are in the
// tables.
func (j *journal) syncAccount(ctx context.Context, id string) error {
	j.mu.Lock()
	seq := j.ov.touched[id]
	j.mu.Unlock()
	return j.waitApplied(ctx, seq)
}

// close materializes what is pending and stops the materializer.
func (j *journal) close() error {
	if !j.started {
		return j.f.close()
	}
	j.mu.Lock()
	j.closing = true
	j.mu.Unlock()
	j.wake()
	<-j.stopped
	var errs []error
	j.mu.Lock()
	if len(j.pending) > 0 {
		errs = append(errs, fmt.Errorf("%d batches stay in the journal for the next Open: %w", len(j.pending), j.err))
	}
	applied := j.applied
	j.mu.Unlock()
	j.batchMu.Lock()
	defer j.batchMu.Unlock()
	errs = append(errs, j.f.release(applied), j.f.close())
	return errors.Join(errs...)
}

// ---- overlay reads --------------------------------------------------------

func lookup[K comparable, T any](j *journal, m func(*overlay) map[K]versioned[T], k K) (*T, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	v, ok := m(&j.ov)[k]
	if !ok {
		return nil, false
	}
	c := *v.v
	return &c, true
}

func (j *journal) account(id string) (*ledger.Account, bool) {
	return lookup(j, func(o *overlay) map[string]versioned[ledger.Account] { return o.accounts }, id)
}

func (j *journal) grant(id string) (*ledger.Grant, bool) {
	return lookup(j, func(o *overlay) map[string]versioned[ledger.Grant] { return o.grants }, id)
}

func (j *journal) hold(id string) (*ledger.Hold, bool) {
	h, ok := lookup(j, func(o *overlay) map[string]versioned[ledger.Hold] { return o.holds }, id)
	if ok {
		h.Portions = slices.Clone(h.Portions)
	}
	return h, ok
}

func (j *journal) job(id string) (*ledger.Job, bool) {
	jb, ok := lookup(j, func(o *overlay) map[string]versioned[ledger.Job] { return o.jobs }, id)
	if ok {
		jb.Params = slices.Clone(jb.Params)
		jb.Outputs = slices.Clone(jb.Outputs)
	}
	return jb, ok
}

func (j *journal) idempotency(principal, key string) (*ledger.IdempotencyRecord, bool) {
	r, ok := lookup(j, func(o *overlay) map[[2]string]versioned[ledger.IdempotencyRecord] { return o.idem }, [2]string{principal, key})
	if ok {
		r.Body = slices.Clone(r.Body)
	}
	return r, ok
}

func (j *journal) grantIDByReference(p ledger.GrantReferenceParams) (string, bool) {
	id, ok := lookup(j, func(o *overlay) map[ledger.GrantReferenceParams]versioned[string] { return o.refs }, p)
	if !ok {
		return "", false
	}
	return *id, true
}

// ---- batches --------------------------------------------------------------

// jbatch is a batch of a read-write Store: reads see committed data
// (overlay, then tables), writes collect the batch's rows for the journal.
type jbatch struct {
	s          *Store
	j          *journal
	c          changeSet
	nextEntry  int64
	nextJobSeq int64
	refs       map[ledger.GrantReferenceParams]string // grant references saved by this batch → grant id
	saved      map[string]bool                        // ids of the grants saved by this batch
	done       bool
}

// BeginBatch starts a batch, waiting for the running one to end and, if the
// materializer is journalPendingRowsMax rows behind, for it to catch up.
func (s *Store) BeginBatch(ctx context.Context) (ledger.Batch, error) {
	if s.readOnly {
		return nil, fmt.Errorf("sqlite: begin batch: %w", ErrReadOnly)
	}
	j := s.j
	j.batchMu.Lock()
	if err := j.f.err; err != nil {
		// A journal write failed: what is on disk is known only to the
		// next Open.
		j.batchMu.Unlock()
		return nil, fmt.Errorf("sqlite: begin batch: %w: %w", ledger.Errorf(ledger.EUnavailable,
			"the database cannot take writes until the server restarts"), err)
	}
	for waited := false; ; waited = true {
		j.mu.Lock()
		rows, ch, failing := j.pendingRows, j.advanced, j.err
		next, nextJob := j.nextEntry, j.nextJobSeq
		if rows >= j.pendingMax && !waited {
			j.stats.FullWaits++
		}
		j.mu.Unlock()
		if rows < j.pendingMax {
			return &jbatch{s: s, j: j, nextEntry: next, nextJobSeq: nextJob}, nil
		}
		if failing != nil {
			// The journal is full and the tables cannot take it: refuse
			// writes rather than wait for ever.
			j.batchMu.Unlock()
			return nil, fmt.Errorf("sqlite: begin batch: %w: %w", ledger.Errorf(ledger.EUnavailable,
				"the database cannot take writes now"), failing)
		}
		j.mu.Lock()
		j.urgent = true
		j.mu.Unlock()
		j.wake()
		select {
		case <-ch:
		case <-ctx.Done():
			j.batchMu.Unlock()
			return nil, fmt.Errorf("sqlite: begin batch: %w", ctx.Err())
		}
	}
}

func (b *jbatch) check() error {
	if b.done {
		return fmt.Errorf("sqlite: %w", sql.ErrTxDone)
	}
	return nil
}

// last returns the batch's newest write of a row.
func last[T any](rows []T, match func(*T) bool) (*T, bool) {
	for i := len(rows) - 1; i >= 0; i-- {
		if match(&rows[i]) {
			c := rows[i]
			return &c, true
		}
	}
	return nil, false
}

// LockAccounts returns the stored versions of the existing accounts among
// ids. Batches run one at a time, so there is nothing more to lock.
func (b *jbatch) LockAccounts(ctx context.Context, ids []string) (map[string]int64, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(ids))
	for _, id := range ids {
		if a, ok := last(b.c.Accounts, func(a *ledger.Account) bool { return a.ID == id }); ok {
			out[id] = a.Version
			continue
		}
		a, err := b.s.GetAccount(ctx, id)
		if err != nil {
			if errors.Is(err, ledger.ErrNotFound) {
				continue
			}
			return nil, err
		}
		out[id] = a.Version
	}
	return out, nil
}

// LoadState is the committed state with the batch's own writes on top.
func (b *jbatch) LoadState(ctx context.Context, accountID string) (*ledger.State, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	st, err := b.s.LoadState(ctx, accountID)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return nil, err
	}
	if a, ok := last(b.c.Accounts, func(a *ledger.Account) bool { return a.ID == accountID }); ok {
		if st == nil {
			st = &ledger.State{Holds: map[string]*ledger.Hold{}, Jobs: map[string]*ledger.Job{}}
		}
		st.Account = *a
	}
	if st == nil {
		return nil, err
	}
	for i := range b.c.Grants {
		g := b.c.Grants[i]
		if g.AccountID != accountID {
			continue
		}
		st.Grants = slices.DeleteFunc(st.Grants, func(x *ledger.Grant) bool { return x.ID == g.ID })
		if g.RemainingCredits > 0 || g.HeldCredits > 0 {
			st.Grants = append(st.Grants, &g)
		}
	}
	slices.SortStableFunc(st.Grants, func(x, y *ledger.Grant) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	for i := range b.c.Holds {
		h := b.c.Holds[i]
		if h.AccountID != accountID {
			continue
		}
		delete(st.Holds, h.ID)
		if h.Status == ledger.HoldPending {
			h.Portions = slices.Clone(h.Portions)
			st.Holds[h.ID] = &h
		}
	}
	for i := range b.c.Jobs {
		jb := b.c.Jobs[i]
		if jb.AccountID != accountID {
			continue
		}
		delete(st.Jobs, jb.ID)
		if jb.Status.Active() {
			st.Jobs[jb.ID] = &jb
		}
	}
	return st, nil
}

// LoadStates is LoadState for many accounts: one query per table when the
// batch has written nothing yet (the engine loads before it applies).
func (b *jbatch) LoadStates(ctx context.Context, ids []string) (map[string]*ledger.State, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if b.c.rows() > 0 {
		out := make(map[string]*ledger.State, len(ids))
		for _, id := range ids {
			st, err := b.LoadState(ctx, id)
			if err != nil {
				if errors.Is(err, ledger.ErrNotFound) {
					continue
				}
				return nil, err
			}
			out[id] = st
		}
		return out, nil
	}
	return b.s.LoadStates(ctx, ids)
}

func (b *jbatch) GetHold(ctx context.Context, id string) (*ledger.Hold, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if h, ok := last(b.c.Holds, func(h *ledger.Hold) bool { return h.ID == id }); ok {
		h.Portions = slices.Clone(h.Portions)
		return h, nil
	}
	return b.s.GetHold(ctx, id)
}

func (b *jbatch) GetGrantByReference(ctx context.Context, p ledger.GrantReferenceParams) (*ledger.Grant, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if g, ok := last(b.c.Grants, func(g *ledger.Grant) bool { return g.Reference != "" && refKey(g) == p }); ok {
		return g, nil
	}
	g, err := b.s.getGrantByReference(ctx, p)
	if err != nil {
		return nil, err
	}
	if newer, ok := last(b.c.Grants, func(x *ledger.Grant) bool { return x.ID == g.ID }); ok {
		if newer.Reference != "" && refKey(newer) == p {
			return newer, nil
		}
		return nil, fmt.Errorf("sqlite: get grant by reference: %w", ledger.ErrNotFound)
	}
	return g, nil
}

func (b *jbatch) GetIdempotency(ctx context.Context, principal, key string) (*ledger.IdempotencyRecord, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if r, ok := last(b.c.Idempotency, func(r *ledger.IdempotencyRecord) bool { return r.Principal == principal && r.Key == key }); ok {
		r.Body = slices.Clone(r.Body)
		return r, nil
	}
	return b.s.GetIdempotency(ctx, principal, key)
}

func (b *jbatch) GetJob(ctx context.Context, id string) (*ledger.Job, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if jb, ok := last(b.c.Jobs, func(x *ledger.Job) bool { return x.ID == id }); ok {
		jb.Params, jb.Outputs = slices.Clone(jb.Params), slices.Clone(jb.Outputs)
		return jb, nil
	}
	return b.s.GetJob(ctx, id)
}

// usTime is t as the tables keep it: UTC, whole microseconds.
func usTime(t time.Time) time.Time { return rowscan.FromMicros(rowscan.Micros(t)) }

func (b *jbatch) SaveAccounts(ctx context.Context, accounts []*ledger.Account) error {
	if err := b.check(); err != nil {
		return err
	}
	for _, a := range accounts {
		c := *a
		c.CreatedAt, c.UpdatedAt, c.DailyNotBefore = usTime(c.CreatedAt), usTime(c.UpdatedAt), usTime(c.DailyNotBefore)
		b.c.Accounts = append(b.c.Accounts, c)
	}
	return nil
}

// SaveGrants keeps the tables' unique index on (account, source,
// reference) before anything is journaled, so the materializer never meets
// a violation: a grant whose non-empty reference another grant already has
// is an EConflict. References never change, so only grants new to the
// store are looked up by reference; which ones are new takes one query for
// the whole call.
func (b *jbatch) SaveGrants(ctx context.Context, grants []*ledger.Grant) error {
	if err := b.check(); err != nil {
		return err
	}
	if b.refs == nil {
		b.refs, b.saved = map[ledger.GrantReferenceParams]string{}, map[string]bool{}
	}
	unknown := map[string]bool{} // referenced grants neither in this batch nor in the overlay
	var ids []string
	for _, g := range grants {
		if g.Reference == "" || b.saved[g.ID] || unknown[g.ID] {
			continue
		}
		if _, ok := b.j.grant(g.ID); !ok {
			unknown[g.ID] = true
			ids = append(ids, g.ID)
		}
	}
	stored, err := b.s.grantsExist(ctx, ids)
	if err != nil {
		return err
	}
	for _, g := range grants {
		if g.Reference == "" {
			continue
		}
		k := refKey(g)
		if id, ok := b.refs[k]; ok {
			if id != g.ID {
				return errDuplicateReference
			}
			continue
		}
		if unknown[g.ID] && !stored[g.ID] { // new: an existing grant's reference was checked when it was created
			other, err := b.s.getGrantByReference(ctx, k)
			switch {
			case errors.Is(err, ledger.ErrNotFound):
			case err != nil:
				return err
			case other.ID != g.ID:
				return errDuplicateReference
			}
		}
		b.refs[k] = g.ID
	}
	b.c.Grants = slices.Grow(b.c.Grants, len(grants))
	for _, g := range grants {
		c := *g
		c.ExpiresAt, c.CreatedAt = usTime(c.ExpiresAt), usTime(c.CreatedAt)
		b.c.Grants = append(b.c.Grants, c)
		b.saved[g.ID] = true
	}
	return nil
}

var errDuplicateReference = fmt.Errorf("sqlite: save grants: %w: %w", ledger.Errorf(ledger.EConflict,
	"a grant with the same account, source and reference already exists"), ledger.ErrBadData)

func (b *jbatch) SaveHolds(ctx context.Context, holds []*ledger.Hold) error {
	if err := b.check(); err != nil {
		return err
	}
	b.c.Holds = slices.Grow(b.c.Holds, len(holds))
	for _, h := range holds {
		c := *h
		c.Portions = slices.Clone(h.Portions)
		c.CreatedAt, c.ExpiresAt, c.ResolvedAt = usTime(c.CreatedAt), usTime(c.ExpiresAt), usTime(c.ResolvedAt)
		b.c.Holds = append(b.c.Holds, c)
	}
	return nil
}

// InsertEntries appends entries and assigns their ids, written back to
// entries[i].ID (any ID set by the caller is ignored): ascending in slice
// order, above every id committed before.
func (b *jbatch) InsertEntries(ctx context.Context, entries []ledger.Entry) error {
	if err := b.check(); err != nil {
		return err
	}
	b.c.Entries = slices.Grow(b.c.Entries, len(entries))
	for i := range entries {
		entries[i].ID = b.nextEntry
		b.nextEntry++
		c := entries[i]
		c.Legs = slices.Clone(c.Legs)
		c.CreatedAt = usTime(c.CreatedAt)
		b.c.Entries = append(b.c.Entries, c)
	}
	return nil
}

func (b *jbatch) SaveIdempotency(ctx context.Context, records []*ledger.IdempotencyRecord) error {
	if err := b.check(); err != nil {
		return err
	}
	for _, r := range records {
		c := *r
		c.Body = slices.Clone(r.Body)
		if len(c.Body) == 0 {
			c.Body = nil
		}
		c.CreatedAt = usTime(c.CreatedAt)
		b.c.Idempotency = append(b.c.Idempotency, c)
	}
	return nil
}

// SaveJobs upserts jobs and writes their Seqs back: a new job gets the next
// seq, an existing one keeps its own. Params are kept verbatim ("{}" when
// empty), empty Outputs as nil, as the table returns them.
func (b *jbatch) SaveJobs(ctx context.Context, jobs []*ledger.Job) error {
	if err := b.check(); err != nil {
		return err
	}
	seqs := make([]int64, len(jobs))
	for i, jb := range jobs {
		if k := slices.IndexFunc(b.c.Jobs, func(x ledger.Job) bool { return x.ID == jb.ID }); k >= 0 {
			seqs[i] = b.c.Jobs[k].Seq
			continue
		}
		old, err := b.s.GetJob(ctx, jb.ID)
		switch {
		case err == nil:
			seqs[i] = old.Seq
		case errors.Is(err, ledger.ErrNotFound):
			seqs[i] = b.nextJobSeq
			b.nextJobSeq++
		default:
			return err
		}
	}
	for i, jb := range jobs {
		jb.Seq = seqs[i]
		c := *jb
		c.Params = slices.Clone(jb.Params)
		if len(c.Params) == 0 {
			c.Params = json.RawMessage("{}")
		}
		c.Outputs = slices.Clone(jb.Outputs)
		if len(c.Outputs) == 0 {
			c.Outputs = nil
		}
		c.LeaseExpiresAt, c.CreatedAt = usTime(c.LeaseExpiresAt), usTime(c.CreatedAt)
		c.UpdatedAt, c.FinishedAt = usTime(c.UpdatedAt), usTime(c.FinishedAt)
		b.c.Jobs = append(b.c.Jobs, c)
	}
	return nil
}

// Commit journals the batch (one record, one fdatasync); once it returns
// nil the batch is durable and every read sees it.
func (b *jbatch) Commit() error {
	if err := b.check(); err != nil {
		return err
	}
	b.done = true
	j := b.j
	defer j.batchMu.Unlock()
	if b.c.rows() == 0 {
		return nil
	}
	j.mu.Lock()
	b.c.Seq = j.committed + 1
	applied := j.applied
	j.mu.Unlock()
	data, err := encodeChangeSet(&b.c)
	if err != nil {
		return fmt.Errorf("sqlite: commit: encode: %w", err)
	}
	if err := j.f.release(applied); err != nil {
		return err
	}
	if err := j.f.append(b.c.Seq, data); err != nil {
		return err
	}
	j.mu.Lock()
	j.committed = b.c.Seq
	b.c.journaled = b.c.rows()
	j.pending = append(j.pending, &b.c)
	j.pendingRows += b.c.journaled
	j.ov.add(&b.c, j.superseded)
	j.compactDue()
	j.nextEntry, j.nextJobSeq = b.nextEntry, b.nextJobSeq
	j.mu.Unlock()
	j.wake()
	return nil
}

// Rollback discards the batch. After Commit or Rollback it does nothing, so
// it can be deferred.
func (b *jbatch) Rollback() error {
	if b.done {
		return nil
	}
	b.done = true
	b.j.batchMu.Unlock()
	return nil
}

// A pending batch is compacted once a quarter of the rows it holds have
// been rewritten by later batches (1/compactDeadShare). Each compaction
// copies the live rows, at most three for every row it drops, and rewritten
// rows never take more than a quarter of a batch's memory for long. Over
// 10,000 accounts in the benchmark about half of all journaled rows are
// rewritten before they are materialized, spread evenly, so few batches
// reach a half: a threshold of one half dropped 1.4 % of the rows, one quarter
// keeps the journal below its bound (docs/performance.md).
const compactDeadShare = 4

// superseded counts a row of the pending batch seq as rewritten by a later
// one, and queues the batch for compaction once compactDeadShare says so.
// Called with mu held, from overlay.add.
func (j *journal) superseded(seq int64) {
	c := j.pending[j.pendingIndex(seq)]
	c.dead++
	if !c.due && compactDeadShare*c.dead >= c.rows() {
		c.due = true
		j.due = append(j.due, c)
	}
}

// pendingIndex is the index in pending of the batch seq. The overlay keeps
// only pending batches' rows (prune), and pending seqs are consecutive, up
// to committed. Called with mu held.
func (j *journal) pendingIndex(seq int64) int {
	i := int(seq - (j.committed + 1 - int64(len(j.pending))))
	if i < 0 || i >= len(j.pending) || j.pending[i].Seq != seq {
		panic(fmt.Sprintf("sqlite: journal: batch %d is not among the %d pending up to %d", seq, len(j.pending), j.committed))
	}
	return i
}

// compactDue compacts the batches queued by superseded, except those the
// running transaction writes: the materializer reads them without mu.
// Called with mu held.
func (j *journal) compactDue() {
	for _, c := range j.due {
		c.due = false
		if c.Seq <= j.inflight {
			continue // queued again, if still pending, when another of its rows is rewritten
		}
		j.compact(c)
	}
	clear(j.due) // the replaced sets are garbage now
	j.due = j.due[:0]
}

// compact replaces the pending batch c by a copy of its live rows (the
// newest version of their keys), so the versions that later batches
// rewrote no longer take memory nor count against journalPendingRowsMax.
// The tables lose nothing: what they need of a key is its newest version,
// written by the transaction that covers c, since run ends a transaction
// only past every covered batch's need; until then reads find it in the
// overlay, and after a crash replay rewrites it from the journal file,
// which keeps every batch whole. Called with mu held.
func (j *journal) compact(c *changeSet) {
	o := &j.ov
	n := &changeSet{
		Seq:       c.Seq,
		journaled: c.journaled,
		// The versions that replaced the dropped rows are in batches
		// up to the last one committed, and so are any that replace
		// those (their batches' need says so).
		need:     j.committed,
		Accounts: keep(o.accounts, c.Accounts, func(a *ledger.Account) string { return a.ID }),
		Grants:   keep(o.grants, c.Grants, func(g *ledger.Grant) string { return g.ID }),
		Holds:    keep(o.holds, c.Holds, func(h *ledger.Hold) string { return h.ID }),
		Entries:  c.Entries, // never rewritten
		Idempotency: keep(o.idem, c.Idempotency, func(r *ledger.IdempotencyRecord) [2]string {
			return [2]string{r.Principal, r.Key}
		}),
		Jobs: keep(o.jobs, c.Jobs, func(jb *ledger.Job) string { return jb.ID }),
	}
	dropped := c.rows() - n.rows()
	if dropped != c.dead {
		panic(fmt.Sprintf("sqlite: journal: compacting batch %d dropped %d rows, %d were rewritten", c.Seq, dropped, c.dead))
	}
	j.pending[j.pendingIndex(c.Seq)] = n
	j.pendingRows -= dropped
	j.stats.Superseded += int64(dropped)
}

// ---- materializing --------------------------------------------------------

// materialize writes journaled batches into the tables in one transaction
// on the writer connection, each row once in its newest version, and
// records the last batch's seq as applied.
func (s *Store) materialize(ctx context.Context, sets []*changeSet) (err error) {
	accounts := map[string]*ledger.Account{}
	grants := map[string]*ledger.Grant{}
	holds := map[string]*ledger.Hold{}
	idem := map[[2]string]*ledger.IdempotencyRecord{}
	jobs := map[string]*ledger.Job{}
	var entries []*ledger.Entry
	for _, c := range sets {
		for i := range c.Accounts {
			accounts[c.Accounts[i].ID] = &c.Accounts[i]
		}
		for i := range c.Grants {
			grants[c.Grants[i].ID] = &c.Grants[i]
		}
		for i := range c.Holds {
			holds[c.Holds[i].ID] = &c.Holds[i]
		}
		for i := range c.Entries {
			entries = append(entries, &c.Entries[i])
		}
		for i := range c.Idempotency {
			r := &c.Idempotency[i]
			idem[[2]string{r.Principal, r.Key}] = r
		}
		for i := range c.Jobs {
			jobs[c.Jobs[i].ID] = &c.Jobs[i]
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("materialize: begin", err, "")
	}
	w := &batch{s: s, tx: tx, stmts: make(map[*sql.Stmt]*sql.Stmt)}
	defer func() {
		if err != nil {
			_ = w.Rollback()
		}
	}()
	// Rows in key order: neighbouring rows share pages.
	if err = w.SaveAccounts(ctx, sortedValues(accounts, func(a, b *ledger.Account) int { return strings.Compare(a.ID, b.ID) })); err != nil {
		return err
	}
	if err = w.SaveGrants(ctx, sortedValues(grants, func(a, b *ledger.Grant) int { return strings.Compare(a.ID, b.ID) })); err != nil {
		return err
	}
	// Pending holds (and any whose id has no time) go to holds, settled
	// ones to blocks, leaving holds if they were pending there.
	var rows, settledRows []*ledger.Hold
	var blocks []holdBlock
	for _, h := range sortedValues(holds, func(a, b *ledger.Hold) int {
		return cmp.Or(strings.Compare(a.AccountID, b.AccountID), strings.Compare(a.ID, b.ID))
	}) {
		ms, tag, ok := ledger.IDTimeTag(h.ID)
		if h.Status == ledger.HoldPending || !ok {
			rows = append(rows, h)
			continue
		}
		if _, in := s.tablePending[h.ID]; in {
			settledRows = append(settledRows, h)
		}
		// A block: one account, one quantum, one tag (ids from
		// ledger.NewHoldID share their account's; older ids do not).
		// Ids ascend within an account, so its blocks' quanta do too and
		// the last block of its (q, tag) is the one to fill.
		q := holdQuantum(ms)
		i := len(blocks) - 1
		for i >= 0 && blocks[i].holds[0].AccountID == h.AccountID && blocks[i].q == q && blocks[i].tag != tag {
			i--
		}
		if i >= 0 && blocks[i].holds[0].AccountID == h.AccountID && blocks[i].q == q && len(blocks[i].holds) < blockHoldsMax {
			blocks[i].holds = append(blocks[i].holds, h)
		} else {
			blocks = append(blocks, holdBlock{q: q, tag: tag, ms: ms, holds: []*ledger.Hold{h}})
		}
	}
	if err = w.SaveHolds(ctx, rows); err != nil {
		return err
	}
	if len(settledRows) > 0 {
		ids := make([]string, len(settledRows))
		for i, h := range settledRows {
			ids[i] = h.ID
		}
		js, _ := json.Marshal(ids)
		if _, err = w.stmt(ctx, s.wstmt[qDeleteHolds]).ExecContext(ctx, string(js)); err != nil {
			return wrap("materialize: move settled holds", err, "")
		}
	}
	seq := sets[len(sets)-1].Seq
	err = w.write(ctx, tHoldBlocks, len(blocks), func(args []any, i int) ([]any, error) {
		b := &blocks[i]
		hs := b.holds
		return append(args, hs[0].AccountID, b.ms, seq, hs[len(hs)-1].ID, encodeHolds(hs), b.q, b.tag), nil
	})
	if err != nil {
		return wrap("materialize: hold blocks", err, "")
	}
	if err = w.InsertEntries(ctx, entries); err != nil {
		return err
	}
	if err = w.SaveIdempotency(ctx, sortedValues(idem, func(a, b *ledger.IdempotencyRecord) int {
		return cmp.Or(strings.Compare(a.Principal, b.Principal), strings.Compare(a.Key, b.Key))
	})); err != nil {
		return err
	}
	if err = w.SaveJobs(ctx, sortedValues(jobs, func(a, b *ledger.Job) int { return strings.Compare(a.ID, b.ID) })); err != nil {
		return err
	}
	nextEntry := int64(0)
	if len(entries) > 0 {
		nextEntry = entries[len(entries)-1].ID + 1
	}
	if _, err = tx.ExecContext(ctx, `UPDATE journal_state SET applied_seq = ?, next_entry_id = max(next_entry_id, ?) WHERE id = 1`,
		sets[len(sets)-1].Seq, nextEntry); err != nil {
		return wrap("materialize: journal state", err, "")
	}
	if err = w.Commit(); err != nil {
		return err
	}
	for _, h := range rows {
		if h.Status == ledger.HoldPending {
			s.tablePending[h.ID] = struct{}{}
		} else {
			delete(s.tablePending, h.ID)
		}
	}
	for _, h := range settledRows {
		delete(s.tablePending, h.ID)
	}
	return nil
}

// blockHoldsMax bounds the holds of one hold block (one row of
// hold_blocks).
const blockHoldsMax = 256

// holdBlock is a hold block being written: holds of one account, ascending
// ids, all with the same quantum and tag; ms is the first one's.
type holdBlock struct {
	q, tag, ms int64
	holds      []*ledger.Hold
}

func sortedValues[K comparable, T any](m map[K]*T, cmp func(a, b *T) int) []*T {
	out := make([]*T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, cmp)
	return out
}
