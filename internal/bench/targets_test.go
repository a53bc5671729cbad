package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestTargets judges made-up results: each target is met, not met or not
// measured as its numbers say, and the table says so.
func TestTargets(t *testing.T) {
	ok := func(name, kind, db string, hot bool, cps float64) *Result {
		return &Result{Setting: name, Kind: kind, Database: db, Hot: hot, CyclesPerSec: cps, Cycles: 1, Check: &Check{OK: true}, PeakRSSOf: "bench"}
	}
	ratio := func(v float64) *float64 { return &v }
	results := func() []*Result {
		ceiling := ok("ceiling-raw", "ceiling", "none", false, 30000)
		ceiling.Check = nil
		eng := ok("engine-sqlite", "engine", "sqlite", false, 99000)
		eng.VsNaive = ratio(49.5)
		hot := ok("engine-sqlite-hot", "engine", "sqlite", true, 50000) // exactly the target: met
		hot.VsNaive = ratio(25)
		http := ok("http-sqlite", "http", "sqlite", false, 21000)
		http.VsCeiling, http.VsNaive, http.PeakRSSOf, http.PeakRSSBytes = ratio(0.70), ratio(9.99), "server", 900<<20
		lat := ok(latencySettingName, "http", "sqlite", false, 14700)
		lat.LatencyP99Ms, lat.RatePerSec, lat.PeakRSSOf = 10.5, 14700, "server"
		pg := ok("http-pg", "http", "postgres", false, 10000)
		wrong := ok("engine-pg", "engine", "postgres", false, 1e6)
		wrong.Check.OK = false // fast and wrong: not judged
		return []*Result{ceiling, eng, hot, ok("naive-sqlite", "naive", "sqlite", false, 2000), http, lat, pg, wrong,
			{Setting: "http-pg-hot", Kind: "http", Database: "postgres", Hot: true, Skipped: "PostgreSQL disabled"}}
	}
	r := &runner{cfg: Config{Accounts: targetAccounts, Client: ClientRaw, ServerArgv: []string{"creditd"}}, report: &Report{Results: results()}}
	ts := r.targets()
	type want struct {
		measured bool
		met      bool
	}
	byKey := map[string]Target{}
	for _, tg := range ts {
		byKey[tg.Target+"|"+tg.Setting] = tg
	}
	check := func(key string, w want) {
		t.Helper()
		tg, found := byKey[key]
		if !found {
			t.Fatalf("no target %q in %+v", key, ts)
		}
		if (tg.Met != nil) != w.measured || (tg.Met != nil && *tg.Met != w.met) {
			t.Errorf("%s: met %v (measured %v), want measured %v met %v; note %q", key, tg.Met, tg.Measured, w.measured, w.met, tg.Note)
		}
	}
	check("in-process, SQLite, 10000 accounts|engine-sqlite", want{true, false})
	check("in-process, SQLite, one hot account|engine-sqlite-hot", want{true, true})
	check("over HTTP, SQLite, against the HTTP ceiling|http-sqlite", want{true, true})
	check("over HTTP, SQLite, p99 at 70 % of 0.7× the ceiling|"+latencySettingName, want{true, false})
	check("over HTTP, PostgreSQL|http-pg", want{true, true})
	check("against the naive baseline (naive-sqlite)|engine-sqlite", want{true, true})
	check("against the naive baseline (naive-sqlite-hot)|engine-sqlite-hot", want{true, true})
	check("against the naive baseline (naive-sqlite)|http-sqlite", want{true, false})
	check("against the naive baseline (naive-pg)|http-pg", want{false, false})     // no naive-pg
	check("against the naive baseline (naive-pg)|engine-pg", want{false, false})   // books wrong
	check("server memory at 1000000 accounts, while serving|", want{false, false}) // 10,000 accounts
	for _, tg := range ts {
		if tg.Setting == "http-pg-hot" {
			t.Errorf("a skipped setting is judged: %+v", tg)
		}
		if tg.Met == nil && tg.Note == "" {
			t.Errorf("%s: not measured, and no note on how to", tg.Target)
		}
	}
	var table bytes.Buffer
	writeTargets(&table, ts)
	for _, s := range []string{"5 of 8 measured are met (3 not measured)", "NOT MET  in-process, SQLite, 10000 accounts [engine-sqlite]: 99000 cycles/s (target ≥ 100000 cycles/s)",
		"met      over HTTP, PostgreSQL [http-pg]: 10000 cycles/s", "open loop at 14700 cycles/s", "—        server memory"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}

	if strings.Contains(table.String(), "fell behind") {
		t.Errorf("a latency run that kept its rate is said to have fallen behind:\n%s", table.String())
	}
	// A latency run that could not keep its rate says so.
	rs := results()
	rs[5].CyclesPerSec = 0.9 * rs[5].RatePerSec
	r = &runner{cfg: Config{Accounts: targetAccounts, Client: ClientRaw}, report: &Report{Results: rs}}
	for _, tg := range r.targets() {
		if tg.Setting == latencySettingName && !strings.Contains(tg.Note, "kept up with 13230: the load fell behind") {
			t.Errorf("note %q", tg.Note)
		}
	}

	// Over a million accounts the memory target is judged on the largest
	// server, and the targets of 10,000 accounts are not.
	r = &runner{cfg: Config{Accounts: targetRSSAccounts, Client: ClientRaw}, report: &Report{Results: results()}}
	byKey = map[string]Target{}
	ts = r.targets()
	for _, tg := range ts {
		byKey[tg.Target+"|"+tg.Setting] = tg
	}
	check("server memory at 1000000 accounts, while serving|http-sqlite", want{true, true})
	if tg := byKey["server memory at 1000000 accounts, while serving|http-sqlite"]; tg.Measured == nil || *tg.Measured != 900 {
		t.Errorf("memory measured %v, want 900 MiB", tg.Measured)
	}
	check("in-process, SQLite, 10000 accounts|", want{false, false})
	if tg := byKey["in-process, SQLite, 10000 accounts|"]; !strings.Contains(tg.Note, "this run used 1000000") {
		t.Errorf("note %q", tg.Note)
	}
}

// TestLatencySetting: the latency run follows a closed-loop run that
// measured the ceiling and http-sqlite, at 0.49× the ceiling, and only
// then.
func TestLatencySetting(t *testing.T) {
	res := func(name, kind string, cps float64) *Result {
		return &Result{Setting: name, Kind: kind, CyclesPerSec: cps, Cycles: 1}
	}
	both := []*Result{res("ceiling-raw", "ceiling", 30000), res("http-sqlite", "http", 12000)}
	r := &runner{cfg: Config{Client: ClientRaw, ServerArgv: []string{"creditd"}}, report: &Report{Results: both}}
	s, ok := r.latencySetting(context.Background())
	if !ok || s.name != latencySettingName || s.kind != "http" || s.db != "sqlite" || s.hot || s.rate != 0.49*30000 {
		t.Fatalf("%v %+v", ok, s)
	}
	for name, r := range map[string]*runner{
		"open loop":    {cfg: Config{Client: ClientRaw, ServerArgv: []string{"creditd"}, Rate: 100}, report: &Report{Results: both}},
		"turned off":   {cfg: Config{Client: ClientRaw, ServerArgv: []string{"creditd"}, SkipLatency: true}, report: &Report{Results: both}},
		"no server":    {cfg: Config{Client: ClientRaw}, report: &Report{Results: both}},
		"no ceiling":   {cfg: Config{Client: ClientRaw, ServerArgv: []string{"creditd"}}, report: &Report{Results: both[1:]}},
		"no http":      {cfg: Config{Client: ClientRaw, ServerArgv: []string{"creditd"}}, report: &Report{Results: both[:1]}},
		"other client": {cfg: Config{Client: ClientNetHTTP, ServerArgv: []string{"creditd"}}, report: &Report{Results: both}},
	} {
		if _, ok := r.latencySetting(context.Background()); ok {
			t.Errorf("%s: latency run planned", name)
		}
	}
}
