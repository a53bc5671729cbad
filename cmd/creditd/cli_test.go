package main

// CLI test: the built creditd binary's client commands against a running
// server (output and exit codes), and `creditd verify` on a clean and on a
// deliberately corrupted data directory.

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// cliJSON decodes a command's stdout.
func cliJSON(t *testing.T, what, stdout string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(stdout), v); err != nil {
		t.Fatalf("%s: stdout is not JSON (%v):\n%s", what, err, stdout)
	}
}

// wantCLI runs the binary and requires the exit code.
func wantCLI(t *testing.T, code int, env []string, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, got := runCLI(t, env, args...)
	if got != code {
		t.Fatalf("creditd %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, code, stdout, stderr)
	}
	return stdout, stderr
}

func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server process")
	}
	data := filepath.Join(t.TempDir(), "data")
	// No CREDITD_ADMIN_KEY: the server generates a key, prints it and
	// stores it in the data directory.
	srv := startServer(t, data)
	if srv.Key == "" || !strings.HasPrefix(srv.Key, "sk_admin_") {
		t.Fatalf("admin key line: key %q", srv.Key)
	}
	if want := filepath.Join(data, "admin.key"); srv.KeyFile != want {
		t.Errorf("admin key stored in %q, want %q", srv.KeyFile, want)
	}
	if b, err := os.ReadFile(filepath.Join(data, "admin.key")); err != nil || strings.TrimSpace(string(b)) != srv.Key {
		t.Errorf("admin.key holds %q (%v), server printed %q", b, err, srv.Key)
	}
	// The client commands talk through a proxy that checks each exchange
	// against the API's document.
	api := checkedProxy(t, srv.URL)
	conn := []string{"--server", api, "--key", srv.Key}
	cli := func(code int, args ...string) (string, string) {
		t.Helper()
		return wantCLI(t, code, nil, append(args, conn...)...)
	}

	// Usage.
	out, _ := wantCLI(t, 0, nil, "help")
	if !strings.Contains(out, "creditd verify") || !strings.Contains(out, "creditd account put") {
		t.Errorf("help output:\n%s", out)
	}
	_, errOut := wantCLI(t, 2, nil)
	if !strings.Contains(errOut, "usage:") {
		t.Errorf("no command: stderr %q", errOut)
	}
	_, errOut = wantCLI(t, 2, nil, "frobnicate")
	if !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: stderr %q", errOut)
	}
	_, errOut = wantCLI(t, 2, nil, "account", "delete", "x")
	if !strings.Contains(errOut, "usage: creditd account get ID") || !strings.Contains(errOut, "creditd account put ID") {
		t.Errorf("account delete: stderr %q", errOut)
	}
	_, errOut = cli(2, "grant")
	if !strings.Contains(errOut, "usage: creditd grant") {
		t.Errorf("grant without id: stderr %q", errOut)
	}
	wantCLI(t, 2, nil, "balance", "x", "--no-such-flag")

	// account put creates (30 signup + 15 daily on the free plan).
	var acct struct {
		ID       string `json:"id"`
		Plan     string `json:"plan"`
		Timezone string `json:"timezone"`
	}
	out, _ = cli(0, "account", "put", "cli-1", "--timezone", "Europe/Berlin")
	cliJSON(t, "account put", out, &acct)
	if acct.ID != "cli-1" || acct.Plan != "free" || acct.Timezone != "Europe/Berlin" {
		t.Errorf("account put: %+v", acct)
	}
	out, _ = cli(0, "account", "get", "cli-1")
	cliJSON(t, "account get", out, &acct)
	if acct.ID != "cli-1" || acct.Plan != "free" || acct.Timezone != "Europe/Berlin" {
		t.Errorf("account get: %+v", acct)
	}
	out, errOut = cli(1, "account", "get", "nobody")
	if out != "" || !strings.Contains(errOut, "not_found") || !strings.Contains(errOut, "404") {
		t.Errorf("account get nobody: stdout %q stderr %q", out, errOut)
	}
	_, errOut = cli(1, "account", "put", "cli-bad", "--plan", "gold")
	if !strings.Contains(errOut, "invalid_request") || !strings.Contains(errOut, "400") {
		t.Errorf("account put --plan gold: stderr %q", errOut)
	}
	// The key from the data directory (no --key) and from the environment.
	out, _ = wantCLI(t, 0, nil, "account", "get", "cli-1", "--server", api, "--data", data)
	cliJSON(t, "account get --data", out, &acct)
	out, _ = wantCLI(t, 0, []string{"CREDITD_URL=" + api, "CREDITD_ADMIN_KEY=" + srv.Key}, "account", "get", "cli-1")
	cliJSON(t, "account get (env)", out, &acct)
	if acct.ID != "cli-1" {
		t.Errorf("account get via env: %+v", acct)
	}
	_, errOut = wantCLI(t, 1, nil, "account", "get", "cli-1", "--server", api, "--key", "sk_admin_wrong")
	if !strings.Contains(errOut, "unauthenticated") || !strings.Contains(errOut, "401") {
		t.Errorf("wrong key: stderr %q", errOut)
	}
	_, errOut = wantCLI(t, 1, nil, "account", "get", "cli-1", "--server", api, "--data", filepath.Join(t.TempDir(), "empty"))
	if !strings.Contains(errOut, "no admin key") {
		t.Errorf("no key anywhere: stderr %q", errOut)
	}

	// grant, idempotent by reference.
	var g struct {
		ID        string `json:"id"`
		AccountID string `json:"account_id"`
		Source    string `json:"source"`
		Reference string `json:"reference"`
		Amount    int64  `json:"amount"`
		Remaining int64  `json:"remaining"`
	}
	out, _ = cli(0, "grant", "cli-1", "--amount", "100", "--source", "admin", "--reference", "ref-1")
	cliJSON(t, "grant", out, &g)
	if g.ID == "" || g.AccountID != "cli-1" || g.Source != "admin" || g.Amount != 100 || g.Remaining != 100 || g.Reference != "ref-1" {
		t.Errorf("grant: %+v", g)
	}
	first := g.ID
	out, _ = cli(0, "grant", "cli-1", "--amount", "100", "--reference", "ref-1")
	cliJSON(t, "grant again", out, &g)
	if g.ID != first {
		t.Errorf("grant with the same reference made grant %s, first was %s", g.ID, first)
	}
	_, errOut = cli(1, "grant", "cli-1", "--amount", "99", "--reference", "ref-1")
	if !strings.Contains(errOut, "conflict") || !strings.Contains(errOut, "409") {
		t.Errorf("grant with a reused reference and another amount: stderr %q", errOut)
	}
	_, errOut = cli(1, "grant", "cli-1", "--amount", "0")
	if !strings.Contains(errOut, "invalid_request") {
		t.Errorf("grant --amount 0: stderr %q", errOut)
	}
	_, errOut = cli(1, "grant", "cli-1", "--amount", "5", "--source", "signup")
	if !strings.Contains(errOut, "invalid_request") {
		t.Errorf("grant --source signup: stderr %q", errOut)
	}
	_, errOut = cli(1, "grant", "nobody", "--amount", "5")
	if !strings.Contains(errOut, "not_found") {
		t.Errorf("grant to nobody: stderr %q", errOut)
	}

	// balance: 30 signup + 15 daily + 100 admin.
	var bal struct {
		AccountID string           `json:"account_id"`
		Available int64            `json:"available"`
		Held      int64            `json:"held"`
		ByCat     map[string]int64 `json:"available_by_category"`
	}
	out, _ = cli(0, "balance", "cli-1")
	cliJSON(t, "balance", out, &bal)
	if bal.AccountID != "cli-1" || bal.Available != 145 || bal.Held != 0 || bal.ByCat["video"] != 100 || bal.ByCat["image"] != 145 {
		t.Errorf("balance: %+v", bal)
	}
	_, errOut = cli(1, "balance", "nobody")
	if !strings.Contains(errOut, "not_found") {
		t.Errorf("balance nobody: stderr %q", errOut)
	}

	// entries, newest first, paged.
	type entry struct {
		ID     int64  `json:"id"`
		Type   string `json:"type"`
		Amount int64  `json:"amount"`
		Source string `json:"source"`
	}
	type entryPage struct {
		Object     string  `json:"object"`
		Data       []entry `json:"data"`
		HasMore    bool    `json:"has_more"`
		NextCursor string  `json:"next_cursor"`
	}
	var p1, p2 entryPage
	out, _ = cli(0, "entries", "cli-1", "--limit", "2")
	cliJSON(t, "entries", out, &p1)
	if p1.Object != "list" || len(p1.Data) != 2 || !p1.HasMore || p1.NextCursor == "" {
		t.Fatalf("entries --limit 2: %+v", p1)
	}
	out, _ = cli(0, "entries", "cli-1", "--limit", "2", "--cursor", p1.NextCursor)
	cliJSON(t, "entries page 2", out, &p2)
	all := append(p1.Data, p2.Data...)
	if p2.HasMore || p2.NextCursor != "" || len(all) != 3 {
		t.Fatalf("entries: %+v, then %+v", p1, p2)
	}
	want := []entry{{Type: "grant", Amount: 100, Source: "admin"}, {Type: "daily_refresh", Amount: 15, Source: "daily"}, {Type: "grant", Amount: 30, Source: "signup"}}
	for i, e := range all {
		if e.Type != want[i].Type || e.Amount != want[i].Amount || e.Source != want[i].Source || (i > 0 && e.ID >= all[i-1].ID) {
			t.Errorf("entry %d: %+v, want %+v (newest first)", i, e, want[i])
		}
	}
	_, errOut = cli(1, "entries", "cli-1", "--limit", "0")
	if !strings.Contains(errOut, "invalid_request") {
		t.Errorf("entries --limit 0: stderr %q", errOut)
	}

	// verify while the server runs, text and JSON. Without --demo the
	// server created no account of its own: cli-1 is the only one.
	out, _ = wantCLI(t, 0, nil, "verify", "--data", data)
	if strings.TrimSpace(out) != "verified 1 accounts, 3 entries: 0 problems" {
		t.Errorf("verify: %q", out)
	}
	var rep struct {
		Accounts int `json:"accounts"`
		Entries  int `json:"entries"`
		Problems []struct {
			AccountID string `json:"account_id"`
			Message   string `json:"message"`
		} `json:"problems"`
	}
	out, _ = wantCLI(t, 0, nil, "verify", "--data", data, "--json")
	cliJSON(t, "verify --json", out, &rep)
	if rep.Accounts != 1 || rep.Entries != 3 || rep.Problems == nil || len(rep.Problems) != 0 {
		t.Errorf("verify --json: %+v\n%s", rep, out)
	}
	_, errOut = wantCLI(t, 1, nil, "verify", "--data", filepath.Join(t.TempDir(), "none"))
	if !strings.Contains(errOut, "no database") {
		t.Errorf("verify of an empty dir: stderr %q", errOut)
	}

	// Corrupt the stopped server's database behind the ledger's back:
	// verify must find it and exit 1.
	srv.stop()
	wantCLI(t, 0, nil, "verify", "--data", data)
	db, err := sql.Open("sqlite", filepath.Join(data, "creditd.db"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.ExecContext(context.Background(), `UPDATE grants SET remaining = remaining + 1 WHERE source = 'admin'`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("corrupted %d grants, want 1", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ = wantCLI(t, 1, nil, "verify", "--data", data)
	if !strings.Contains(out, "MISMATCH cli-1: ") || !strings.Contains(out, first) || !strings.Contains(out, "verified 1 accounts, 3 entries:") ||
		strings.Contains(out, ": 0 problems") {
		t.Errorf("verify of the corrupted database:\n%s", out)
	}
	out, _ = wantCLI(t, 1, nil, "verify", "--data", data, "--json")
	rep.Problems = nil
	cliJSON(t, "verify --json (corrupted)", out, &rep)
	if len(rep.Problems) == 0 || rep.Problems[0].AccountID != "cli-1" {
		t.Errorf("verify --json of the corrupted database: %+v", rep)
	}
	for _, p := range rep.Problems {
		t.Logf("verify found: %s: %s", p.AccountID, p.Message)
	}
}
