package bench

import (
	"context"
	"fmt"
	"io"
)

// The performance issue's targets (docs/performance.md), as judged by
// every run on what it measured.
const (
	targetAccounts        = 10_000    // the spread settings' accounts the targets speak of
	targetEngineSQLite    = 100_000.0 // in-process SQLite over targetAccounts, cycles/s
	targetEngineSQLiteHot = 50_000.0  // in-process SQLite, one hot account, cycles/s
	targetVsCeiling       = 0.7       // HTTP SQLite over the HTTP ceiling
	// The latency target: p99 at most targetLatencyP99Ms while cycles start
	// at targetLatencyShare of targetVsCeiling × the ceiling.
	targetLatencyShare = 0.7
	targetLatencyP99Ms = 10.0
	targetHTTPPG       = 10_000.0 // HTTP PostgreSQL, cycles/s
	targetVsNaive      = 10.0     // every creditd setting over its naive baseline
	targetRSSAccounts  = 1_000_000
	targetRSSMiB       = 1024.0 // server peak RSS at targetRSSAccounts
)

// latencyKeptUp is the share of the open loop's rate below which the
// latency run is reported as having fallen behind.
const latencyKeptUp = 0.98

// latencySettingName is the extra open-loop run of the latency target.
const latencySettingName = "http-sqlite-latency"

// Target is one target of the performance issue, judged on this run.
type Target struct {
	Target    string   `json:"target"`            // what the issue asks
	Setting   string   `json:"setting,omitempty"` // the result it is judged on
	Measured  *float64 `json:"measured,omitempty"`
	Threshold float64  `json:"threshold"`
	Unit      string   `json:"unit"`          // cycles/s, × ceiling, × naive, ms, MiB
	AtMost    bool     `json:"at_most"`       // the threshold is an upper bound
	Met       *bool    `json:"met,omitempty"` // absent: not measured by this run
	Note      string   `json:"note,omitempty"`
}

// latencySetting is the open-loop run of the latency target, when this
// run measured what it needs and the caller did not turn it off: the HTTP
// ceiling and http-sqlite, closed loop. It runs at targetLatencyShare ×
// targetVsCeiling × the ceiling's cycles/s.
func (r *runner) latencySetting(ctx context.Context) (setting, bool) {
	if r.cfg.SkipLatency || r.cfg.Rate > 0 || ctx.Err() != nil || len(r.cfg.ServerArgv) == 0 {
		return setting{}, false
	}
	ceiling := r.result("ceiling-" + r.cfg.Client)
	if ceiling == nil || r.result("http-sqlite") == nil {
		return setting{}, false
	}
	return setting{name: latencySettingName, base: "http-sqlite", kind: "http", db: "sqlite", client: r.cfg.Client,
		prefix: "ls", rate: targetLatencyShare * targetVsCeiling * ceiling.CyclesPerSec}, true
}

// result is the named setting's result if it ran, did work and its books
// balance; else nil.
func (r *runner) result(name string) *Result {
	for _, res := range r.report.Results {
		if res.Setting == name && res.Error == "" && res.Skipped == "" && res.CyclesPerSec > 0 && (res.Check == nil || res.Check.OK) {
			return res
		}
	}
	return nil
}

// targets judges the run's results against the performance issue's
// targets. A target this run did not measure is listed with a note on
// how to measure it.
func (r *runner) targets() []Target {
	j := &judging{r: r}
	j.add(Target{Target: fmt.Sprintf("in-process, SQLite, %d accounts", targetAccounts), Threshold: targetEngineSQLite, Unit: "cycles/s"},
		j.spread("engine-sqlite"), cyclesOf, j.spreadMissing("engine-sqlite"))
	j.add(Target{Target: "in-process, SQLite, one hot account", Threshold: targetEngineSQLiteHot, Unit: "cycles/s"},
		r.result("engine-sqlite-hot"), cyclesOf, notRun("engine-sqlite-hot"))
	j.add(Target{Target: "over HTTP, SQLite, against the HTTP ceiling", Threshold: targetVsCeiling, Unit: "× ceiling"},
		j.spread("http-sqlite"), ratioOf(func(res *Result) *float64 { return res.VsCeiling }),
		j.spreadMissing("http-sqlite")+" (with ceiling-"+r.cfg.Client+")")
	j.latency()
	j.add(Target{Target: "over HTTP, PostgreSQL", Threshold: targetHTTPPG, Unit: "cycles/s"},
		j.spread("http-pg"), cyclesOf, j.spreadMissing("http-pg"))
	j.vsNaive()
	j.memory()
	return j.ts
}

// judging collects the targets of a run as targets judges them.
type judging struct {
	r  *runner
	ts []Target
}

// add judges t on res by the value v reads from it; without res or its
// value, t is listed as not measured with the note missing.
func (j *judging) add(t Target, res *Result, v func(*Result) (float64, bool), missing string) {
	if res == nil {
		t.Note = missing
		j.ts = append(j.ts, t)
		return
	}
	t.Setting = res.Setting
	x, ok := v(res)
	if !ok {
		t.Note = missing
		j.ts = append(j.ts, t)
		return
	}
	met := x >= t.Threshold
	if t.AtMost {
		met = x <= t.Threshold
	}
	t.Measured, t.Met = &x, &met
	j.ts = append(j.ts, t)
}

func cyclesOf(res *Result) (float64, bool) { return res.CyclesPerSec, true }

// ratioOf reads a ratio the run may not have (no ceiling, no naive run).
func ratioOf(get func(*Result) *float64) func(*Result) (float64, bool) {
	return func(res *Result) (float64, bool) {
		if p := get(res); p != nil {
			return *p, true
		}
		return 0, false
	}
}

func notRun(name string) string {
	return fmt.Sprintf("%s was not in this run (--settings %s)", name, name)
}

// spread is the named setting's result when the run was over the
// targets' number of accounts.
func (j *judging) spread(name string) *Result {
	if j.r.cfg.Accounts != targetAccounts {
		return nil
	}
	return j.r.result(name)
}

// spreadMissing says why spread found no result.
func (j *judging) spreadMissing(name string) string {
	if j.r.cfg.Accounts != targetAccounts {
		return fmt.Sprintf("the target is over %d accounts; this run used %d", targetAccounts, j.r.cfg.Accounts)
	}
	return notRun(name)
}

// latency judges the p99 of the open-loop run.
func (j *judging) latency() {
	lat := Target{Target: fmt.Sprintf("over HTTP, SQLite, p99 at %.0f %% of %.1f× the ceiling", 100*targetLatencyShare, targetVsCeiling),
		Threshold: targetLatencyP99Ms, Unit: "ms", AtMost: true}
	latRes := j.spread(latencySettingName)
	if latRes != nil {
		lat.Note = fmt.Sprintf("open loop at %.0f cycles/s", latRes.RatePerSec)
		if latRes.CyclesPerSec < latencyKeptUp*latRes.RatePerSec {
			// Cycles started late: the p99 is mostly the queue.
			lat.Note += fmt.Sprintf(", of which the server kept up with %.0f: the load fell behind", latRes.CyclesPerSec)
		}
	}
	latMissing := "needs ceiling-" + j.r.cfg.Client + " and http-sqlite in a closed-loop run (the latency run follows them)"
	if j.r.cfg.SkipLatency {
		latMissing = "the latency run was turned off (--latency=false)"
	}
	j.add(lat, latRes, func(res *Result) (float64, bool) { return res.LatencyP99Ms, true }, latMissing)
}

// vsNaive judges every engine and HTTP setting against its naive baseline.
func (j *judging) vsNaive() {
	r := j.r
	for _, res := range r.report.Results {
		if (res.Kind != "engine" && res.Kind != "http") || res.Setting == latencySettingName || res.Skipped != "" {
			continue
		}
		naive := "naive-sqlite"
		if res.Database == "postgres" {
			naive = "naive-pg"
		}
		if res.Hot {
			naive += "-hot"
		}
		var ok *Result
		missing := notRun(naive)
		if !res.Hot && r.cfg.Accounts != targetAccounts {
			missing = j.spreadMissing(res.Setting)
		} else if ok = r.result(res.Setting); ok == nil {
			missing = res.Setting + " failed or its books are wrong"
		}
		j.add(Target{Target: "against the naive baseline (" + naive + ")", Setting: res.Setting, Threshold: targetVsNaive, Unit: "× naive"},
			ok, ratioOf(func(res *Result) *float64 { return res.VsNaive }), missing)
	}
}

// memory judges the largest server among the spread HTTP settings, when
// they ran over at least a million accounts.
func (j *judging) memory() {
	r := j.r
	var big *Result
	for _, res := range r.report.Results {
		if res.Kind == "http" && !res.Hot && res.PeakRSSOf == "server" && r.result(res.Setting) != nil &&
			(big == nil || res.PeakRSSBytes > big.PeakRSSBytes) {
			big = res
		}
	}
	memMissing := fmt.Sprintf("needs a run over %d accounts: --settings http-sqlite --hot=false --accounts %d --db off", targetRSSAccounts, targetRSSAccounts)
	if r.cfg.Accounts < targetRSSAccounts {
		big = nil
	}
	j.add(Target{Target: fmt.Sprintf("server memory at %d accounts, while serving", targetRSSAccounts), Threshold: targetRSSMiB, Unit: "MiB", AtMost: true},
		big, func(res *Result) (float64, bool) { return float64(res.PeakRSSBytes) / (1 << 20), res.PeakRSSBytes > 0 }, memMissing)
}

// writeTargets writes the targets section of the table.
func writeTargets(w io.Writer, ts []Target) {
	if len(ts) == 0 {
		return
	}
	met, judged := 0, 0
	for _, t := range ts {
		if t.Met != nil {
			judged++
			if *t.Met {
				met++
			}
		}
	}
	fmt.Fprintf(w, "targets of the performance issue, judged on this run: %d of %d measured are met (%d not measured)\n", met, judged, len(ts)-judged)
	for _, t := range ts {
		name := t.Target
		if t.Setting != "" {
			name += " [" + t.Setting + "]"
		}
		op := "≥"
		if t.AtMost {
			op = "≤"
		}
		want := fmt.Sprintf("%s %s %s", op, formatTarget(t.Threshold, t.Unit), t.Unit)
		switch {
		case t.Met == nil:
			fmt.Fprintf(w, "  —        %s %s: not measured: %s\n", name, want, t.Note)
		default:
			state := "met     "
			if !*t.Met {
				state = "NOT MET "
			}
			line := fmt.Sprintf("  %s %s: %s %s (target %s)", state, name, formatTarget(*t.Measured, t.Unit), t.Unit, want)
			if t.Note != "" {
				line += "; " + t.Note
			}
			fmt.Fprintln(w, line)
		}
	}
}

func formatTarget(v float64, unit string) string {
	switch unit {
	case "cycles/s", "MiB":
		return fmt.Sprintf("%.0f", v)
	case "ms":
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
