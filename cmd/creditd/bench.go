package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"
	"time"

	"github.com/creditd/creditd/internal/bench"
)

const benchAbout = `Measures the charge cycle (reserve 1 × generate = 5 credits, then capture 1)
in every setting in one run: the in-process engine on SQLite and on
PostgreSQL, creditd serve over HTTP on both (one request per operation, and
http-batch: --batch-ops reserves in one POST /v1/batch, then their captures
in another), the naive one-transaction-per-operation baseline on both, and
the machine's HTTP ceiling; each over many accounts and on one hot account. After each setting the books are checked
(charged = 5 × cycles, no negative balance) and the ledger is verified; a
mismatch exits 1.

After the settings it judges the run against the performance targets in
docs/performance.md and lists each as met, not met, or not measured by this
run. For the latency target, a run that measured both the HTTP ceiling and
http-sqlite closed-loop adds http-sqlite-latency: an open loop at 0.49× the
ceiling's cycles/s (--latency=false: not).

Settings: %s
(--settings also takes base names such as engine-sqlite, kinds such as http
or http-batch, or databases: sqlite, pg.)

It starts its own servers with their own settings: the CREDITD_* variables
of its environment do not reach them, except CREDITD_DEBUG_ADDR.`

// benchCmd is `creditd bench`.
func benchCmd(args []string) error {
	fs := newCommand("bench", "creditd bench [flags]", fmt.Sprintf(benchAbout, strings.Join(bench.SettingNames(), ", ")))
	fs.envNote("CREDITD_DEBUG_ADDR", "passed to the servers it starts: their Go profiler's address")
	accounts := fs.Int("accounts", 10000, "accounts of the spread settings (cycles pick one at random)")
	hot := fs.Bool("hot", false, "run only the single-hot-account variants (--hot=false: only the spread ones; default: both)")
	concurrency := fs.Int("concurrency", 256, "concurrent workers, each running cycles back to back")
	rate := fs.Float64("rate", 0, "open loop: start this many cycles per second in every setting, latency measured from each cycle's scheduled start (0: closed loop)")
	duration := fs.Duration("duration", 10*time.Second, "measured time per setting")
	warmup := fs.Duration("warmup", 0, "unmeasured warm-up per setting (default: duration/10, at most 1s; negative: none)")
	rounds := fs.Int("rounds", 1, "repeat every setting this many times, interleaved; each reports its median round")
	batchOps := fs.Int("batch-ops", 100, "operations per POST /v1/batch in the http-batch settings (cycles per worker call)")
	batchWorkers := fs.Int("batch-workers", 0, "workers of the http-batch settings (default: concurrency / batch-ops, rounded up: about as many cycles in flight)")
	settings := fs.String("settings", "", "comma-separated settings to run (default: all)")
	db := fs.String("db", "", "PostgreSQL URL on which a fresh database creditd_bench_<random> is created and dropped\n(default: "+bench.DefaultPGURL+", skipped if unreachable; \"off\": no PostgreSQL)")
	client := fs.String("client", bench.ClientRaw, "HTTP client: raw (keep-alive HTTP/1.1 over net.Conn) or nethttp (tuned net/http)")
	naiveConns := fs.Int("naive-pg-conns", 0, "connection pool of the naive PostgreSQL baseline (default: creditd's pool size, 16)")
	dir := fs.String("dir", "", "working directory for the SQLite database and the server's data (default: a temporary one)")
	keep := fs.Bool("keep", false, "keep the working directory and the PostgreSQL database")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of a table")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the in-process settings and the load generators; the server's: serve --debug-addr) to this file")
	latency := fs.Bool("latency", true, "after a closed-loop run with the HTTP ceiling and http-sqlite, measure http-sqlite's p99 in an open loop at 0.49× the ceiling (the latency target)")
	traceFile := fs.String("trace", "", "write an execution trace of this process (go tool trace) to this file")
	if err := fs.parseNone(args); err != nil {
		return err
	}
	if *rate < 0 {
		return fs.usageError("--rate must be 0 (closed loop) or a positive number of cycles per second")
	}

	cfg := bench.Config{
		Accounts: *accounts, Concurrency: *concurrency, Rate: *rate, Duration: *duration, Warmup: *warmup, Rounds: *rounds, BatchOps: *batchOps, BatchWorkers: *batchWorkers,
		DB: *db, Client: *client, NaivePGConns: *naiveConns, Dir: *dir, Keep: *keep, SkipLatency: !*latency, Progress: os.Stderr,
	}
	if *quiet {
		cfg.Progress = nil
	}
	cfg.Hot = benchHot(fs.FlagSet, *hot)
	cfg.Settings = nonEmptyFields(*settings)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable (to run creditd serve): %w", err)
	}
	cfg.ServerArgv = []string{exe}

	stopProfiles, err := startProfiles(*cpuProfile, *traceFile)
	defer stopProfiles()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		err = rep.WriteJSON(os.Stdout)
	} else {
		err = rep.WriteTable(os.Stdout)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		return exitError(1)
	}
	return nil
}

// nonEmptyFields splits a comma-separated list, dropping empty items.
func nonEmptyFields(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// benchHot is the variants --hot selects: both unless the flag is given.
func benchHot(fs *flag.FlagSet, hot bool) bench.Hot {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "hot" })
	switch {
	case !given:
		return bench.HotBoth
	case hot:
		return bench.HotOnly
	}
	return bench.HotOff
}

// startProfiles starts a CPU profile and an execution trace of this
// process into the files named (none for ""), and returns what stops them.
func startProfiles(cpuProfile, traceFile string) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return stop, err
		}
		stops = append(stops, func() { f.Close() })
		if err := pprof.StartCPUProfile(f); err != nil {
			return stop, err
		}
		stops = append(stops, pprof.StopCPUProfile)
	}
	if traceFile != "" {
		f, err := os.Create(traceFile)
		if err != nil {
			return stop, err
		}
		stops = append(stops, func() { f.Close() })
		if err := trace.Start(f); err != nil {
			return stop, err
		}
		stops = append(stops, trace.Stop)
	}
	return stop, nil
}
