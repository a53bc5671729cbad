// Package bench is `creditd bench`: the charge-cycle benchmark of the
// performance issue.
//
// The workload is the charge cycle: reserve quantity 1 of "generate"
// (5 credits with the built-in prices), then capture 1. Concurrency
// workers run cycles back to back for a duration, over many accounts
// (each cycle picks one at random) or, in the "-hot" variants, all on one
// account. Every setting is measured in the same run, on the same machine:
//
//   - engine-sqlite, engine-pg: the in-process engine (group commit) on
//     SQLite and on PostgreSQL, through its Go API;
//   - naive-sqlite, naive-pg: the naive baseline (naive.go), one
//     transaction per operation with a row lock, on its own tables in the
//     same database at the same durability;
//   - http-sqlite, http-pg: a real `creditd serve` process (the bench binary
//     re-executed) over HTTP, driven by a lean keep-alive client;
//   - http-batch-sqlite, http-batch-pg: the same server driven through
//     POST /v1/batch: each worker sends BatchOps reserves in one request,
//     then their captures in a second (batch.go); ⌈Concurrency / BatchOps⌉
//     workers by default, so about as many cycles are in flight;
//   - ceiling-raw, ceiling-nethttp: the machine's HTTP ceiling, an
//     in-bench net/http server answering hold- and capture-shaped JSON from
//     memory, driven by the raw client and by net/http.
//
// After each setting the bench checks the books — the charged credits of
// the setting's accounts are exactly 5 × completed cycles, no balance is
// negative — and runs ledger.VerifyStore (the naive baseline gets the
// equivalent SQL checks). A mismatch fails the run: a fast wrong answer
// fails.
package bench

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/postgres"
	"github.com/creditd/creditd/store/sqlite"
)

const (
	// cycleAction is reserved and captured, quantity 1.
	cycleAction = "generate"
	// grantCredits is each account's admin grant: enough for 2×10⁸ cycles.
	grantCredits = 1_000_000_000
	// dbFileName is the SQLite file, the same name `creditd serve` uses in
	// its data directory, so the HTTP setting serves the same file.
	dbFileName = "creditd.db"
)

// Hot selects the single-hot-account variants.
type Hot string

const (
	HotBoth Hot = "both" // spread and hot variants (default)
	HotOnly Hot = "only" // hot variants only
	HotOff  Hot = "off"  // spread variants only
)

// Config is one bench run.
type Config struct {
	Accounts    int // accounts of the spread variants (default 10,000)
	Concurrency int // workers (default 256)
	// Rate, if > 0, makes every setting open-loop: cycles start at Rate per
	// second (spread over the workers) and latency counts from each
	// cycle's scheduled start. 0: closed loop, each worker back to back.
	Rate     float64
	Duration time.Duration // measured time per setting (default 10s)
	// Warmup runs before each measurement, not counted (0: Duration/10,
	// at most 1s; negative: none).
	Warmup time.Duration
	// Rounds repeats the whole sequence of settings (default 1); each
	// setting then reports its median round, and every round is checked.
	Rounds int
	// BatchOps is the operations per POST /v1/batch of the http-batch
	// settings (default 100): each worker runs that many cycles per call.
	BatchOps int
	// BatchWorkers is the workers of the http-batch settings (0:
	// ⌈Concurrency / BatchOps⌉, about as many cycles in flight as the
	// other settings).
	BatchWorkers int
	Hot          Hot
	// Settings selects settings by name (engine-sqlite-hot), base name
	// (engine-sqlite: both variants), kind (engine, naive, http, ceiling;
	// http-batch: the batch settings only) or database (sqlite, pg).
	// Empty: all.
	Settings []string
	// DB is the PostgreSQL URL on which a fresh database is created and
	// dropped afterwards. "": DefaultPGURL, and the PostgreSQL settings are
	// skipped with a note if it is unreachable; "off": skip them.
	DB string
	// ServerArgv runs creditd: ServerArgv[0] is the executable, the rest
	// come before "serve". Empty: the creditd-over-HTTP settings are
	// skipped with a note.
	ServerArgv []string
	// Client is the HTTP client of the creditd-over-HTTP settings and of
	// the reference ceiling: ClientRaw (default) or ClientNetHTTP.
	Client string
	// NaivePGConns is the naive baseline's PostgreSQL pool size (default:
	// creditd's, postgres.DefaultMaxConns = 16, at most Concurrency).
	NaivePGConns int
	// Dir holds the SQLite database and the server's data directory
	// ("": a temporary directory, removed afterwards unless Keep).
	Dir  string
	Keep bool // keep Dir and the PostgreSQL database
	// SkipLatency turns off the latency target's extra run (an open loop
	// over HTTP SQLite at 0.49× the ceiling, after a closed-loop run that
	// measured both; see Report.Targets).
	SkipLatency bool
	// Progress receives a line per step (nil: none).
	Progress io.Writer
	// Logger is the in-process engines' logger (nil: warnings to stderr).
	Logger *slog.Logger
}

// Report is the outcome of a run.
type Report struct {
	Machine Machine   `json:"machine"`
	Config  RunConfig `json:"config"`
	Results []*Result `json:"results"`
	// Targets judges the run against the performance issue's targets.
	Targets []Target `json:"targets"`
	Notes   []string `json:"notes"`
	// OK is false when a setting failed its checks or could not run.
	OK bool `json:"ok"`
}

// RunConfig is the configuration as reported.
type RunConfig struct {
	Accounts        int     `json:"accounts"`
	Concurrency     int     `json:"concurrency"`
	DurationSeconds float64 `json:"duration_seconds"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	Rounds          int     `json:"rounds"`
	BatchOps        int     `json:"batch_ops"`
	BatchWorkers    int     `json:"batch_workers,omitempty"`
	RatePerSec      float64 `json:"rate_per_sec,omitempty"`
	Client          string  `json:"client"`
	Action          string  `json:"action"`
	UnitCredits     int64   `json:"unit_credits"`
	NaivePGConns    int     `json:"naive_pg_conns,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU        string `json:"cpu,omitempty"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Kernel     string `json:"kernel,omitempty"`
	SQLite     string `json:"sqlite,omitempty"`
	PostgreSQL string `json:"postgresql,omitempty"`
}

// Result is one setting's measurement.
type Result struct {
	Setting  string `json:"setting"`
	Kind     string `json:"kind"`     // engine, naive, http, ceiling
	Database string `json:"database"` // sqlite, postgres, none
	Hot      bool   `json:"hot"`
	Client   string `json:"client,omitempty"`
	Accounts int    `json:"accounts"`
	// BatchOps is the operations per POST /v1/batch (http-batch settings).
	BatchOps int `json:"batch_ops,omitempty"`

	Concurrency int `json:"concurrency"`
	// RatePerSec is the open-loop rate the setting ran at (0: closed loop).
	RatePerSec      float64 `json:"rate_per_sec,omitempty"`
	SetupSeconds    float64 `json:"setup_seconds"`
	DurationSeconds float64 `json:"duration_seconds"` // measured window
	Cycles          int64   `json:"cycles"`           // completed in the window
	Errors          int64   `json:"errors"`           // failed cycles in the window
	CyclesPerSec    float64 `json:"cycles_per_sec"`
	LatencyP50Ms    float64 `json:"latency_p50_ms"`
	LatencyP99Ms    float64 `json:"latency_p99_ms"`
	LatencyP999Ms   float64 `json:"latency_p999_ms"`
	// Commits in the window: creditd's creditd_engine_batch_ops count,
	// the naive baseline's transactions; absent for the ceiling.
	Commits       *int64   `json:"commits,omitempty"`
	CommitsPerSec *float64 `json:"commits_per_sec,omitempty"`
	OpsPerCommit  *float64 `json:"ops_per_commit,omitempty"`
	// JournalFullWaits counts the batches in the window that found the
	// SQLite journal full and waited for a materializer transaction
	// (creditd on SQLite only).
	JournalFullWaits *int64 `json:"journal_full_waits,omitempty"`
	// PeakRSSBytes is VmHWM of PeakRSSOf: "server" (the creditd process)
	// or "bench" (this process, reset before the setting).
	PeakRSSBytes int64  `json:"peak_rss_bytes"`
	PeakRSSOf    string `json:"peak_rss_of"`
	// AllocsPerCycle counts heap allocations in this process per cycle
	// (for the HTTP settings: the client's).
	AllocsPerCycle float64 `json:"allocs_per_cycle"`
	// VsNaive is cycles/s over the naive baseline's on the same database
	// and variant; VsCeiling is cycles/s over the reference ceiling's.
	// RoundsCyclesPerSec lists every round's cycles/s (--rounds > 1); the
	// other fields are of the median round.
	RoundsCyclesPerSec []float64 `json:"rounds_cycles_per_sec,omitempty"`
	VsNaive            *float64  `json:"vs_naive,omitempty"`
	VsCeiling          *float64  `json:"vs_ceiling,omitempty"`

	Check        *Check   `json:"check,omitempty"`
	ErrorSamples []string `json:"error_samples,omitempty"`
	Skipped      string   `json:"skipped,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// Check is what the bench found in the books after a setting.
type Check struct {
	OK               bool     `json:"ok"`
	Accounts         int      `json:"accounts"`
	ChargedCredits   int64    `json:"charged_credits"`
	ExpectedCharged  int64    `json:"expected_charged_credits"`
	HeldCredits      int64    `json:"held_credits"`
	VerifiedAccounts int      `json:"verified_accounts"`
	VerifiedEntries  int      `json:"verified_entries"`
	Seconds          float64  `json:"seconds"`
	Problems         []string `json:"problems"`
}

// setting is one entry of the catalogue.
type setting struct {
	name, base, kind, db string
	hot                  bool
	batch                bool // kind http, through POST /v1/batch
	client               string
	prefix               string // account id prefix
	// rate, if > 0, runs this setting open-loop at that many cycles/s
	// whatever Config.Rate says (the latency target's run).
	rate float64
}

func (s setting) tags() []string {
	if s.batch {
		return []string{s.name, s.base, s.kind, s.db, "http-batch"}
	}
	return []string{s.name, s.base, s.kind, s.db}
}

// catalogue lists every setting in run order; client is the reference
// client (the other one only drives the second ceiling).
func catalogue(client string) []setting {
	other := ClientNetHTTP
	if client == ClientNetHTTP {
		other = ClientRaw
	}
	ss := []setting{
		{name: "ceiling-" + client, base: "ceiling", kind: "ceiling", db: "none", client: client, prefix: "c"},
		{name: "ceiling-" + other, base: "ceiling", kind: "ceiling", db: "none", client: other, prefix: "c"},
	}
	for _, db := range []struct{ name, p string }{{"sqlite", "s"}, {"pg", "p"}} {
		for _, kind := range []string{"engine", "naive", "http", "http-batch"} {
			for _, hot := range []bool{false, true} {
				s := setting{base: kind + "-" + db.name, kind: kind, db: db.name, hot: hot, prefix: kind[:1] + db.p}
				if kind == "http-batch" {
					s.kind, s.batch, s.prefix = "http", true, "b"+db.p
				}
				s.name = s.base
				if hot {
					s.name += "-hot"
					s.prefix += "h"
				}
				if s.kind == "http" {
					s.client = client
				}
				ss = append(ss, s)
			}
		}
	}
	return ss
}

// SettingNames lists every setting name, in run order.
func SettingNames() []string {
	var names []string
	for _, s := range catalogue(ClientRaw) {
		names = append(names, s.name)
	}
	return names
}

func (c *Config) defaults() error {
	if c.Accounts == 0 {
		c.Accounts = 10000
	}
	if c.Concurrency == 0 {
		c.Concurrency = 256
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = min(time.Second, c.Duration/10)
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Rounds == 0 {
		c.Rounds = 1
	}
	if c.BatchOps == 0 {
		c.BatchOps = 100
	}
	if c.Hot == "" {
		c.Hot = HotBoth
	}
	if c.Client == "" {
		c.Client = ClientRaw
	}
	if c.NaivePGConns == 0 {
		c.NaivePGConns = min(c.Concurrency, postgres.DefaultMaxConns)
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	switch {
	case c.Accounts < 1 || c.Concurrency < 1 || c.Duration <= 0 || c.Rounds < 1:
		return errors.New("accounts, concurrency, duration and rounds must be positive")
	case c.Hot != HotBoth && c.Hot != HotOnly && c.Hot != HotOff:
		return fmt.Errorf("hot must be both, only or off, not %q", c.Hot)
	case c.Client != ClientRaw && c.Client != ClientNetHTTP:
		return fmt.Errorf("client must be %s or %s, not %q", ClientRaw, ClientNetHTTP, c.Client)
	case c.NaivePGConns < 1:
		return errors.New("naive PostgreSQL pool size must be positive")
	case c.BatchWorkers < 0:
		return errors.New("batch workers must not be negative")
	case c.BatchOps < 1 || c.BatchOps > ledger.DefaultConfig().Limits.BatchRequestOpsMax:
		return fmt.Errorf("batch operations must be 1..%d (batch_request_ops_max)", ledger.DefaultConfig().Limits.BatchRequestOpsMax)
	}
	return nil
}

// selected returns the settings to run.
func (c *Config) selected() ([]setting, error) {
	all := catalogue(c.Client)
	known := map[string]bool{}
	for _, s := range all {
		for _, t := range s.tags() {
			known[t] = true
		}
	}
	for _, sel := range c.Settings {
		if !known[sel] {
			return nil, fmt.Errorf("unknown setting %q (settings: %s; or a base name, kind or database: engine-sqlite, http, pg, …)",
				sel, strings.Join(SettingNames(), ", "))
		}
	}
	var out []setting
	for _, s := range all {
		if len(c.Settings) > 0 && !slices.ContainsFunc(s.tags(), func(t string) bool { return slices.Contains(c.Settings, t) }) {
			continue
		}
		// An explicitly named variant runs whatever Hot says.
		explicit := slices.Contains(c.Settings, s.name)
		if !explicit && s.kind != "ceiling" && ((c.Hot == HotOnly && !s.hot) || (c.Hot == HotOff && s.hot)) {
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("no setting selected")
	}
	return out, nil
}

// runner is the state of one Run.
type runner struct {
	cfg    Config
	lcfg   *ledger.Config
	unit   int64
	dir    string
	pg     *pgDatabase
	report *Report
}

// Run runs the selected settings and returns the report. It returns an
// error only when the run cannot start; a setting that fails is recorded
// in its Result and makes Report.OK false.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	settings, err := cfg.selected()
	if err != nil {
		return nil, err
	}
	lcfg := ledger.DefaultConfig()
	price, ok := lcfg.Price(cycleAction)
	if !ok {
		return nil, fmt.Errorf("no price for %q", cycleAction)
	}
	r := &runner{cfg: cfg, lcfg: lcfg, unit: price.UnitCredits}
	r.report = &Report{
		Machine: machine(),
		Config: RunConfig{Accounts: cfg.Accounts, Concurrency: cfg.Concurrency, DurationSeconds: cfg.Duration.Seconds(),
			WarmupSeconds: cfg.Warmup.Seconds(), Rounds: cfg.Rounds, BatchOps: cfg.BatchOps, BatchWorkers: cfg.BatchWorkers, RatePerSec: cfg.Rate, Client: cfg.Client, Action: cycleAction, UnitCredits: price.UnitCredits},
		Notes: []string{},
	}
	if cfg.Rate > 0 {
		r.note("open loop: every setting starts %.0f cycles/s whatever the answers (spread over its workers); latency counts from each cycle's scheduled start, so falling behind shows as latency, and cycles/s above the rate cannot be measured", cfg.Rate)
	}
	cleanup, err := r.makeDir()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	pgSkip, dropPG, err := r.openPG(ctx, settings)
	if err != nil {
		return nil, err
	}
	defer dropPG()
	if len(cfg.ServerArgv) == 0 && slices.ContainsFunc(settings, func(s setting) bool { return s.kind == "http" }) {
		r.note("no creditd executable given: creditd-over-HTTP settings skipped")
	}
	if slices.ContainsFunc(settings, func(s setting) bool { return s.db == "sqlite" }) {
		r.note("SQLite %s: one database file %s for every SQLite setting (creditd's tables and the naive_* tables), WAL, synchronous=FULL",
			r.report.Machine.SQLite, filepath.Join(r.dir, "sqlite", dbFileName))
	}
	rounds := make([][]*Result, len(settings)) // per setting, per round
	for round := 1; round <= cfg.Rounds; round++ {
		for i, s := range settings {
			rounds[i] = append(rounds[i], r.runRound(ctx, s, round, pgSkip))
		}
	}
	for _, rs := range rounds {
		r.report.Results = append(r.report.Results, median(rs))
	}
	r.ratios()
	r.runLatency(ctx)
	r.report.Targets = r.targets()
	r.judge()
	r.closingNotes(settings)
	return r.report, nil
}

// note adds a note to the report.
func (r *runner) note(format string, args ...any) {
	r.report.Notes = append(r.report.Notes, fmt.Sprintf(format, args...))
}

// makeDir makes the run's directory (a temporary one unless Config.Dir
// names it) and returns what removes it unless Config.Keep.
func (r *runner) makeDir() (cleanup func(), err error) {
	cleanup = func() {}
	r.dir = r.cfg.Dir
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "creditd-bench-"); err != nil {
			return nil, err
		}
		if !r.cfg.Keep {
			dir := r.dir
			cleanup = func() { os.RemoveAll(dir) }
		}
	} else if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, err
	}
	if r.cfg.Keep {
		r.note("kept: %s", r.dir)
	}
	return cleanup, nil
}

// openPG creates a fresh PostgreSQL database when a setting needs one,
// and returns why PostgreSQL settings are skipped ("" if they run) and
// what drops the database afterwards (unless Config.Keep).
func (r *runner) openPG(ctx context.Context, settings []setting) (skip string, drop func(), err error) {
	drop = func() {}
	cfg := r.cfg
	if !slices.ContainsFunc(settings, func(s setting) bool { return s.db == "pg" }) {
		return "", drop, nil
	}
	switch cfg.DB {
	case "off", "none":
		skip = "PostgreSQL disabled (--db off)"
	default:
		admin := cfg.DB
		if admin == "" {
			admin = DefaultPGURL
		}
		fmt.Fprintf(cfg.Progress, "creating a PostgreSQL database on %s\n", redact(admin))
		r.pg, err = createPGDatabase(ctx, admin)
		if err != nil {
			if cfg.DB != "" {
				return "", drop, fmt.Errorf("PostgreSQL at %s: %w", redact(admin), err)
			}
			skip = fmt.Sprintf("PostgreSQL unreachable at %s (%v): PostgreSQL settings skipped; pass --db postgres://… to use another server", redact(admin), err)
			break
		}
		fate := "kept"
		if !cfg.Keep {
			fate = "dropped afterwards"
			drop = func() {
				if err := r.pg.drop(ctx); err != nil {
					fmt.Fprintf(cfg.Progress, "warning: drop database %s: %v\n", r.pg.name, err)
				}
			}
		}
		r.report.Machine.PostgreSQL = r.pg.version
		r.note("PostgreSQL %s: fresh database %s (%s), synchronous_commit=%s, fsync=%s; engine pool %d connections, naive pool %d",
			r.pg.version, r.pg.name, fate, r.pg.sync, r.pg.fsync, postgres.DefaultMaxConns, cfg.NaivePGConns)
		r.report.Config.NaivePGConns = cfg.NaivePGConns
		if r.pg.sync != "on" || r.pg.fsync != "on" {
			r.note("warning: PostgreSQL runs with synchronous_commit=%s fsync=%s: commits are not durable", r.pg.sync, r.pg.fsync)
		}
	}
	if skip != "" {
		r.note("%s", skip)
	}
	return skip, drop, nil
}

// runRound runs one round of one setting, or records why it is skipped.
func (r *runner) runRound(ctx context.Context, s setting, round int, pgSkip string) *Result {
	cfg := r.cfg
	res := &Result{Setting: s.name, Kind: s.kind, Database: s.db, Hot: s.hot, Client: s.client,
		Accounts: cfg.Accounts, Concurrency: cfg.Concurrency}
	if s.hot {
		res.Accounts = 1
	}
	if s.batch {
		res.BatchOps = cfg.BatchOps
		res.Concurrency = r.workers(s)
	}
	if s.db == "pg" {
		res.Database = "postgres"
	}
	switch {
	case s.db == "pg" && r.pg == nil:
		res.Skipped = pgSkip
		return res
	case s.kind == "http" && len(cfg.ServerArgv) == 0:
		res.Skipped = "no creditd executable"
		return res
	case ctx.Err() != nil:
		res.Skipped = "interrupted"
		return res
	}
	label := s.name
	if cfg.Rounds > 1 {
		// Fresh accounts every round.
		s.prefix += strconv.Itoa(round)
		label = fmt.Sprintf("%s [%d/%d]", s.name, round, cfg.Rounds)
	}
	if s.kind == "ceiling" {
		fmt.Fprintf(cfg.Progress, "%-26s starting the in-bench server…\n", label)
	} else {
		fmt.Fprintf(cfg.Progress, "%-26s setting up %d account(s)…\n", label, res.Accounts)
	}
	if err := r.run(ctx, s, label, res); err != nil {
		res.Error = err.Error()
		fmt.Fprintf(cfg.Progress, "%-26s FAILED: %v\n", label, err)
		return res
	}
	line := fmt.Sprintf("%-26s %.0f cycles/s, p99 %.1f ms", label, res.CyclesPerSec, res.LatencyP99Ms)
	if res.Check != nil {
		if res.Check.OK {
			line += fmt.Sprintf(", books ok (%d accounts, %d entries verified in %.1fs)", res.Check.VerifiedAccounts, res.Check.VerifiedEntries, res.Check.Seconds)
		} else {
			line += fmt.Sprintf(", BOOKS WRONG: %s", strings.Join(firstN(res.Check.Problems, 3), "; "))
		}
	}
	fmt.Fprintln(cfg.Progress, line)
	return res
}

// runLatency runs the open-loop setting of the latency target, when the
// run measures it.
func (r *runner) runLatency(ctx context.Context) {
	ls, ok := r.latencySetting(ctx)
	if !ok {
		return
	}
	cfg := r.cfg
	res := &Result{Setting: ls.name, Kind: ls.kind, Database: ls.db, Client: ls.client, Accounts: cfg.Accounts, Concurrency: cfg.Concurrency}
	r.report.Results = append(r.report.Results, res)
	fmt.Fprintf(cfg.Progress, "%-26s open loop at %.0f cycles/s (the latency target's rate); setting up %d account(s)…\n", ls.name, ls.rate, res.Accounts)
	if err := r.run(ctx, ls, ls.name, res); err != nil {
		res.Error = err.Error()
		fmt.Fprintf(cfg.Progress, "%-26s FAILED: %v\n", ls.name, err)
	} else {
		fmt.Fprintf(cfg.Progress, "%-26s %.0f cycles/s, p99 %.1f ms\n", ls.name, res.CyclesPerSec, res.LatencyP99Ms)
	}
}

// judge sets Report.OK: every setting ran, balanced its books and
// completed cycles.
func (r *runner) judge() {
	r.report.OK = true
	for _, res := range r.report.Results {
		if res.Error != "" || (res.Check != nil && !res.Check.OK) || (res.Skipped == "interrupted") {
			r.report.OK = false
		}
		if res.Error == "" && res.Skipped == "" && res.Cycles == 0 {
			// Balanced books with nothing done prove nothing.
			r.report.OK = false
			r.note("%s completed no cycle in its window (%d errors): the run fails", res.Setting, res.Errors)
		}
	}
}

// closingNotes says how the figures of the report were measured.
func (r *runner) closingNotes(settings []setting) {
	cfg := r.cfg
	r.note("latency is of a whole cycle (reserve + capture) as the client saw it; cycles/s, commits/s and latency count the measured window only (after %s of warm-up)", cfg.Warmup)
	if slices.ContainsFunc(settings, func(s setting) bool { return s.batch }) {
		spread, hot := r.workers(setting{batch: true}), r.workers(setting{batch: true, hot: true})
		how := fmt.Sprintf("--batch-workers %d", cfg.BatchWorkers)
		if cfg.BatchWorkers == 0 {
			how = fmt.Sprintf("⌈%d / %d⌉, so about as many cycles are in flight as in the other settings; --batch-workers to change", cfg.Concurrency, cfg.BatchOps)
		}
		r.note("http-batch-*: %d workers (%s), each sending %d reserves in one POST /v1/batch, then their captures in a second: %d cycles in flight; a cycle's latency is the time of both requests (every cycle of a call completes when its capture batch answers); a reserve or capture refused within a batch counts as that cycle's error",
			spread, how, cfg.BatchOps, spread*cfg.BatchOps)
		if hot < spread {
			r.note("http-batch-*-hot: %d workers, not %d, so that their %d pending holds stay within pending_holds_per_account_max (%d)",
				hot, spread, hot*cfg.BatchOps, r.lcfg.Limits.PendingHoldsPerAccountMax)
		}
	}
	r.note("peak RSS: VmHWM of the creditd server process for http-*, else of this process (reset before each setting; it includes the load generator)")
	if r.pg != nil {
		r.note("PostgreSQL settings run ANALYZE after their setup and at the end of their warm-up, so plans rest on statistics as on a database in service (a fresh database has none)")
	}
	r.note("naive baseline: one transaction per operation (ops/commit = 1); SQLite through one writer connection, PostgreSQL two round trips per operation")
	if n := fullWaitsNote(r.report.Results); n != "" {
		r.note("%s", n)
	}
}

// fullWaitsNote names the settings whose batches found the SQLite journal
// full in the measured window: each such batch, and every operation behind
// it, waited for a whole materializer transaction, which shows in the
// p99.9. Empty if none did.
func fullWaitsNote(rs []*Result) string {
	var parts []string
	for _, r := range rs {
		if r.JournalFullWaits != nil && *r.JournalFullWaits > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r.Setting, *r.JournalFullWaits))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "batches that found the SQLite journal full and waited for a materializer transaction (creditd_sqlite_journal_full_waits_total): " +
		strings.Join(parts, ", ")
}

// median merges the rounds of one setting: the round with the median
// cycles/s stands for the setting (ratios use it); every round's books
// must balance, and a failed round fails the setting.
func median(rs []*Result) *Result {
	if len(rs) == 1 {
		return rs[0]
	}
	var ok []*Result
	problems, errs := []string{}, []string(nil)
	for i, r := range rs {
		switch {
		case r.Error != "":
			errs = append(errs, fmt.Sprintf("round %d: %s", i+1, r.Error))
		case r.Skipped != "":
		default:
			ok = append(ok, r)
			if r.Check != nil {
				for _, p := range r.Check.Problems {
					problems = append(problems, fmt.Sprintf("round %d: %s", i+1, p))
				}
			}
		}
	}
	if len(ok) == 0 {
		m := rs[0]
		if len(errs) > 0 {
			m.Error = strings.Join(errs, "\n")
		}
		return m
	}
	sorted := slices.Clone(ok)
	slices.SortFunc(sorted, func(a, b *Result) int { return cmp.Compare(a.CyclesPerSec, b.CyclesPerSec) })
	m := sorted[(len(sorted)-1)/2]
	for _, r := range ok {
		m.RoundsCyclesPerSec = append(m.RoundsCyclesPerSec, r.CyclesPerSec)
	}
	if m.Check != nil {
		m.Check.Problems = problems
		m.Check.OK = len(problems) == 0
	}
	if len(errs) > 0 {
		m.Error = strings.Join(errs, "\n")
	}
	return m
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// redact hides a URL's password.
func redact(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if at := strings.Index(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				return u[:i+3] + rest[:colon] + ":***" + rest[at:]
			}
		}
	}
	return u
}

func (r *runner) ids(s setting, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", s.prefix, i)
	}
	return ids
}

func (r *runner) sqlitePath() (string, error) {
	d := filepath.Join(r.dir, "sqlite")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	return filepath.Join(d, dbFileName), nil
}

// workers returns the setting's workers: Concurrency, except for the
// batch settings, where each worker has BatchOps cycles in flight: there
// it is BatchWorkers, by default ⌈Concurrency / BatchOps⌉ (about as many
// cycles in flight as the other settings; 256 workers × 100 would queue
// 25,600 cycles and measure an overload), and on one hot account at most
// pending_holds_per_account_max / BatchOps (beyond it reserves are
// refused with 409 and the setting would measure refusals).
func (r *runner) workers(s setting) int {
	if !s.batch {
		return r.cfg.Concurrency
	}
	w := r.cfg.BatchWorkers
	if w == 0 {
		w = (r.cfg.Concurrency + r.cfg.BatchOps - 1) / r.cfg.BatchOps
	}
	if s.hot {
		w = min(w, r.lcfg.Limits.PendingHoldsPerAccountMax/r.cfg.BatchOps)
	}
	return max(1, w)
}

// run measures one setting into res.
func (r *runner) run(ctx context.Context, s setting, label string, res *Result) error {
	n := r.cfg.Accounts
	if s.hot {
		n = 1
	}
	ids := r.ids(s, n)
	runtime.GC()
	debug.FreeOSMemory()
	inProcess := s.kind != "http"
	if inProcess {
		res.PeakRSSOf = "bench"
		if !resetPeakRSS() {
			res.PeakRSSOf = "bench (not reset)"
		}
	} else {
		res.PeakRSSOf = "server"
	}
	setupStart := time.Now()
	p := &prepared{}
	defer p.closeAll()
	var err error
	switch s.kind {
	case "ceiling":
		err = r.prepareCeiling(p, s, ids)
	case "engine":
		err = r.prepareEngine(ctx, p, s, ids, res)
	case "naive":
		err = r.prepareNaive(ctx, p, s, ids, res)
	case "http":
		err = r.prepareHTTP(ctx, p, s, ids, res)
	}
	if err != nil {
		return err
	}
	// PostgreSQL plans by statistics, and a fresh database has none: without
	// them the first setting measured ran at less than half its speed.
	// ANALYZE after the setup and again at the end of the warm-up (when the
	// holds and entries tables have rows), as autovacuum would have done on a
	// database in service.
	var beforeMeasure func() error
	if s.db == "pg" {
		if err := r.pg.analyze(ctx); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
		beforeMeasure = func() error { return r.pg.analyze(ctx) }
	}
	res.SetupSeconds = time.Since(setupStart).Seconds()
	if err := r.measure(ctx, s, label, res, p, n, beforeMeasure); err != nil {
		return err
	}
	if inProcess && res.PeakRSSBytes == 0 {
		res.PeakRSSBytes = peakRSS(0)
	}
	return nil
}

// measure drives the load of a prepared setting and checks its books.
func (r *runner) measure(ctx context.Context, s setting, label string, res *Result, p *prepared, n int, beforeMeasure func() error) error {
	fmt.Fprintf(r.cfg.Progress, "%-26s running %s (+%s warm-up), %d workers…\n", label, r.cfg.Duration, r.cfg.Warmup, r.workers(s))
	rate := r.cfg.Rate
	if s.rate > 0 {
		rate = s.rate
	}
	res.RatePerSec = rate
	lr, err := drive(ctx, p.tgt, n, s.hot, r.workers(s), r.cfg.Warmup, r.cfg.Duration, newPacer(rate), beforeMeasure)
	if err != nil {
		return err
	}
	fillResult(res, lr)
	checkStart := time.Now()
	if s.kind != "ceiling" {
		fmt.Fprintf(r.cfg.Progress, "%-26s checking the books…\n", label)
	}
	chk, err := p.finish(lr.total)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if chk != nil {
		chk.Seconds = time.Since(checkStart).Seconds()
		res.Check = chk
	}
	return nil
}

// prepared is a setting's target, ready for the load: what checks the
// books after it, and what closes it (in reverse order, as defers would).
type prepared struct {
	tgt    target
	finish func(tl tally) (*Check, error) // after the load: release, check
	closes []func()
}

func (p *prepared) onClose(f func()) { p.closes = append(p.closes, f) }

func (p *prepared) closeAll() {
	for i := len(p.closes) - 1; i >= 0; i-- {
		p.closes[i]()
	}
}

// loadDeadline is when the connections of the load end: the run's end
// plus slack, counted from when they are made (after the setup, which
// takes minutes at a million accounts).
func (r *runner) loadDeadline() time.Time {
	return time.Now().Add(r.cfg.Warmup + r.cfg.Duration + 5*time.Minute)
}

// openStore opens the store of a setting's db: the SQLite file at path,
// or the bench's PostgreSQL database.
func (r *runner) openStore(ctx context.Context, db, path string) (ledger.Store, error) {
	if db == "sqlite" {
		return sqlite.Open(ctx, path)
	}
	return postgres.Open(ctx, r.pg.dsn, postgres.Options{})
}

// prepareCeiling starts the empty HTTP server the ceiling settings load.
func (r *runner) prepareCeiling(p *prepared, s setting, ids []string) error {
	cs, err := startCeiling("bench", r.unit)
	if err != nil {
		return err
	}
	p.onClose(cs.close)
	ht, err := newHTTPTarget(cs.url(), "bench", ids, r.unit, s.client, r.cfg.Concurrency, r.loadDeadline())
	if err != nil {
		return err
	}
	p.onClose(ht.close)
	p.tgt = ht
	p.finish = func(tally) (*Check, error) { return nil, nil }
	return nil
}

// prepareEngine opens a store and an engine in this process and creates
// the accounts.
func (r *runner) prepareEngine(ctx context.Context, p *prepared, s setting, ids []string, res *Result) error {
	path := ""
	if s.db == "sqlite" {
		var err error
		if path, err = r.sqlitePath(); err != nil {
			return err
		}
	}
	store, err := r.openStore(ctx, s.db, path)
	if err != nil {
		return err
	}
	p.onClose(func() { _ = store.Close() })
	e, reg, err := newEngine(ctx, r.lcfg, store, r.cfg.Logger)
	if err != nil {
		return err
	}
	closed := false
	p.onClose(func() {
		if !closed {
			e.Close()
		}
	})
	if err := setupEngineAccounts(ctx, e, ids, min(r.cfg.Concurrency, 256)); err != nil {
		return err
	}
	et := &engineTarget{e: e, reg: reg, ids: ids, unit: r.unit}
	if sq, ok := store.(*sqlite.Store); ok {
		et.journal = sq.JournalStats
	}
	p.tgt = et
	p.finish = func(tl tally) (*Check, error) {
		e.Close() // commits what is queued
		closed = true
		res.PeakRSSBytes = peakRSS(0)
		return checkStore(ctx, r.lcfg, store, ids, r.unit, tl)
	}
	return nil
}

// prepareNaive opens the naive baseline's tables.
func (r *runner) prepareNaive(ctx context.Context, p *prepared, s setting, ids []string, res *Result) error {
	var nt *naiveTarget
	if s.db == "sqlite" {
		path, err := r.sqlitePath()
		if err != nil {
			return err
		}
		if nt, err = openNaiveSQLite(ctx, path, ids, r.unit); err != nil {
			return err
		}
	} else {
		var err error
		if nt, err = openNaivePG(ctx, r.pg.dsn, int32(r.cfg.NaivePGConns), ids, r.unit); err != nil {
			return err
		}
	}
	p.onClose(nt.close)
	p.tgt = nt
	p.finish = func(tl tally) (*Check, error) {
		res.PeakRSSBytes = peakRSS(0)
		return nt.check(ctx, s.prefix+"-", tl)
	}
	return nil
}

// prepareHTTP starts a creditd server and creates the accounts over HTTP;
// its finish stops the server and checks the store it wrote.
func (r *runner) prepareHTTP(ctx context.Context, p *prepared, s setting, ids []string, res *Result) error {
	dataDir := filepath.Join(r.dir, "sqlite")
	dbURL := ""
	if s.db == "pg" {
		dataDir = filepath.Join(r.dir, "server-pg")
		dbURL = r.pg.dsn
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	srv, err := startServer(ctx, r.cfg.ServerArgv, dataDir, dbURL)
	if err != nil {
		return err
	}
	stopped := false
	p.onClose(func() {
		if !stopped {
			_ = srv.stop()
		}
	})
	serverPID := srv.pid()
	setupClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}, Timeout: time.Minute}
	p.onClose(setupClient.CloseIdleConnections)
	if err := setupHTTPAccounts(setupClient, srv.url, srv.key, ids, 64); err != nil {
		return fmt.Errorf("setup over HTTP: %w", err)
	}
	ht, err := newHTTPTarget(srv.url, srv.key, ids, r.unit, s.client, r.cfg.Concurrency, r.loadDeadline())
	if err != nil {
		return err
	}
	p.onClose(ht.close)
	ht.metrics = func() (counters, error) { return scrapeCounters(setupClient, srv.url) }
	p.tgt = ht
	if s.batch {
		p.tgt = newBatchTarget(ht, r.cfg.BatchOps)
	}
	p.finish = func(tl tally) (*Check, error) {
		ht.close()
		res.PeakRSSBytes = peakRSS(serverPID)
		stopped = true
		if err := srv.stop(); err != nil {
			return nil, err
		}
		store, err := r.openStore(ctx, s.db, filepath.Join(dataDir, dbFileName))
		if err != nil {
			return nil, err
		}
		defer store.Close()
		return checkStore(ctx, r.lcfg, store, ids, r.unit, tl)
	}
	return nil
}

func fillResult(res *Result, lr *loadResult) {
	el := lr.elapsed.Seconds()
	res.DurationSeconds = el
	res.Cycles = lr.window.cycles
	res.Errors = lr.window.errors()
	res.ErrorSamples = lr.errs
	if el > 0 {
		res.CyclesPerSec = float64(lr.window.cycles) / el
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.LatencyP50Ms = ms(lr.hist.quantile(0.50))
	res.LatencyP99Ms = ms(lr.hist.quantile(0.99))
	res.LatencyP999Ms = ms(lr.hist.quantile(0.999))
	if lr.commitOK {
		c := int64(lr.commits + 0.5)
		res.Commits = &c
		cps := lr.commits / el
		res.CommitsPerSec = &cps
		if lr.commits > 0 {
			opc := lr.ops / lr.commits
			res.OpsPerCommit = &opc
		}
	}
	if lr.waitsOK {
		w := int64(lr.fullWaits + 0.5)
		res.JournalFullWaits = &w
	}
	if lr.window.cycles > 0 {
		res.AllocsPerCycle = float64(lr.mallocs) / float64(lr.window.cycles)
	}
}

// ratios fills VsNaive and VsCeiling.
func (r *runner) ratios() {
	find := func(pred func(*Result) bool) *Result {
		for _, res := range r.report.Results {
			if pred(res) && res.Error == "" && res.Skipped == "" && res.CyclesPerSec > 0 {
				return res
			}
		}
		return nil
	}
	ceiling := find(func(x *Result) bool { return x.Kind == "ceiling" && x.Client == r.cfg.Client })
	for _, res := range r.report.Results {
		if res.Error != "" || res.Skipped != "" {
			continue
		}
		if res.Kind == "engine" || res.Kind == "http" {
			if naive := find(func(x *Result) bool { return x.Kind == "naive" && x.Database == res.Database && x.Hot == res.Hot }); naive != nil {
				v := res.CyclesPerSec / naive.CyclesPerSec
				res.VsNaive = &v
			}
		}
		if (res.Kind == "http" || res.Kind == "ceiling") && ceiling != nil && res != ceiling {
			v := res.CyclesPerSec / ceiling.CyclesPerSec
			res.VsCeiling = &v
		}
	}
}

// machine describes this machine.
func machine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if db, err := sql.Open("sqlite", "file::memory:"); err == nil {
		_ = db.QueryRow("SELECT sqlite_version()").Scan(&m.SQLite)
		db.Close()
	}
	return m
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteTable writes the report as a table with notes.
func (rep *Report) WriteTable(w io.Writer) error {
	m := rep.Machine
	fmt.Fprintf(w, "creditd bench — charge cycle (reserve 1 × %s = %d credits, capture 1); %d workers, %gs per setting, %d accounts (hot: 1)\n",
		rep.Config.Action, rep.Config.UnitCredits, rep.Config.Concurrency, rep.Config.DurationSeconds, rep.Config.Accounts)
	fmt.Fprintf(w, "machine: %s, %d CPUs (GOMAXPROCS %d), %s, %s, linux %s; SQLite %s", m.CPU, m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.OS, m.Kernel, m.SQLite)
	if m.PostgreSQL != "" {
		fmt.Fprintf(w, ", PostgreSQL %s", m.PostgreSQL)
	}
	fmt.Fprintf(w, "\n\n")
	if rep.Config.Rounds > 1 {
		fmt.Fprintf(w, "%d rounds: each row is the setting's median round (by cycles/s); \"rounds\" is the range over all rounds\n\n", rep.Config.Rounds)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	roundsCol := ""
	if rep.Config.Rounds > 1 {
		roundsCol = "rounds\t"
	}
	fmt.Fprintln(tw, "setting\tcycles/s\t"+roundsCol+"p50 ms\tp99 ms\tp99.9 ms\tcommits/s\tops/commit\tpeak RSS\tvs naive\tvs ceiling\terrors\tbooks\t")
	for _, r := range rep.Results {
		if r.Skipped != "" || r.Error != "" {
			state := "skipped"
			if r.Error != "" {
				state = "FAILED"
			}
			fmt.Fprintf(tw, "%s\t—\t%s\t\t\t\t\t\t\t\t\t%s\t\n", r.Setting, strings.Repeat("\t", strings.Count(roundsCol, "\t")), state)
			continue
		}
		writeRow(tw, r, roundsCol != "")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, r := range rep.Results {
		writeProblems(w, r)
	}
	writeTargets(w, rep.Targets)
	fmt.Fprintln(w)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if rep.OK {
		fmt.Fprintln(w, "result: every setting's books balance and verify")
	} else {
		fmt.Fprintln(w, "result: FAILED")
	}
	return nil
}

// writeRow writes the table row of a setting that ran.
func writeRow(tw io.Writer, r *Result, withRounds bool) {
	commits, opc := "—", "—"
	if r.CommitsPerSec != nil {
		commits = fmt.Sprintf("%.0f", *r.CommitsPerSec)
	}
	if r.OpsPerCommit != nil {
		opc = fmt.Sprintf("%.1f", *r.OpsPerCommit)
	}
	ratio := func(p *float64) string {
		if p == nil {
			return "—"
		}
		return fmt.Sprintf("%.2f×", *p)
	}
	rss := fmt.Sprintf("%.0f MiB", float64(r.PeakRSSBytes)/(1<<20))
	if r.PeakRSSOf == "server" {
		rss += " (srv)"
	}
	books := "n/a"
	if r.Check != nil {
		books = "ok"
		if !r.Check.OK {
			books = "WRONG"
		}
	}
	rounds := ""
	if withRounds {
		rounds = "—\t"
		if len(r.RoundsCyclesPerSec) > 0 {
			rounds = fmt.Sprintf("%.0f–%.0f\t", slices.Min(r.RoundsCyclesPerSec), slices.Max(r.RoundsCyclesPerSec))
		}
	}
	fmt.Fprintf(tw, "%s\t%.0f\t%s%.2f\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", r.Setting, r.CyclesPerSec, rounds,
		r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyP999Ms, commits, opc, rss, ratio(r.VsNaive), ratio(r.VsCeiling), r.Errors, books)
}

// writeProblems writes why a setting was skipped or failed, its books'
// problems and a sample of its failed cycles.
func writeProblems(w io.Writer, r *Result) {
	switch {
	case r.Skipped != "":
		fmt.Fprintf(w, "%s: skipped: %s\n", r.Setting, r.Skipped)
	case r.Error != "":
		fmt.Fprintf(w, "%s: FAILED: %s\n", r.Setting, strings.Join(firstN(strings.Split(r.Error, "\n"), 5), "\n    "))
	default:
		if r.Check != nil && !r.Check.OK {
			fmt.Fprintf(w, "%s: BOOKS WRONG (charged %d, want %d):\n", r.Setting, r.Check.ChargedCredits, r.Check.ExpectedCharged)
			for _, p := range firstN(r.Check.Problems, 20) {
				fmt.Fprintf(w, "    %s\n", p)
			}
		}
		if len(r.ErrorSamples) > 0 {
			fmt.Fprintf(w, "%s: %d failed cycles, e.g. %s\n", r.Setting, r.Errors, r.ErrorSamples[0])
		}
	}
}
