package main

// Upgrade test: data written by an earlier version opens with this one,
// every ledger entry unchanged.
//
// Each testdata/upgrade-<commit> holds what creditd at that commit wrote:
//   - sqlite/: a whole data directory (tables, journal segment, generated
//     keys, asset files), left by SIGTERM;
//   - postgres.sql: `pg_dump --inserts --no-owner --no-privileges` of a
//     database that version wrote (psql meta-commands removed);
//   - {sqlite,postgres}-{alice,bob}-entries.json: GET
//     /v1/accounts/{id}/entries?limit=100 as that version answered it.
//
// Both were made with `creditd serve --test-clock --builtin-worker 1` and
// the same requests: accounts alice (free, Europe/Berlin) and bob (paid),
// grants, a reserve captured 3 of 4, a released reserve, a pending hold,
// an uploaded PNG, a crop job the built-in worker ran (with its output
// asset) and a queued generate job. upgrade-3de921d was made by
// scripts/make-upgrade-fixture, which lists its requests (also a daily
// refresh, an expired hold, a cancelled job, help-article feedback, a
// signed-out web session and revoked credentials); a later version's
// fixture is made by running it at that commit.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/creditd/creditd/internal/pgtest"
)

// upgradeFixture is one version's data and what the test expects of it
// beyond its entries.
type upgradeFixture struct {
	dir      string
	feedback int // answers GET /v1/feedback lists
}

var upgradeFixtures = []upgradeFixture{
	{dir: "testdata/upgrade-66653fa"},
	{dir: "testdata/upgrade-3de921d", feedback: 1},
}

func TestUpgradeKeepsData(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real server processes")
	}
	for _, fx := range upgradeFixtures {
		t.Run(filepath.Base(fx.dir), func(t *testing.T) { testUpgrade(t, fx) })
	}
}

// testUpgrade opens one fixture's SQLite directory and PostgreSQL dump.
func testUpgrade(t *testing.T, fx upgradeFixture) {
	t.Run("SQLite", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "data")
		if err := os.CopyFS(data, os.DirFS(filepath.Join(fx.dir, "sqlite"))); err != nil {
			t.Fatal(err)
		}
		runVerify(t, data, "before the first start")
		srv := startServer(t, data)
		stored, err := os.ReadFile(filepath.Join(data, "admin.key"))
		if err != nil || srv.Key != strings.TrimSpace(string(stored)) {
			t.Fatalf("the server did not use the stored admin key: printed %q, stored %q (%v)", srv.Key, stored, err)
		}
		c := newAPIClient(srv.URL, srv.Key)
		defer c.close()
		checkUpgraded(t, c, fx, "sqlite")
		srv.stop()
		runVerify(t, data, "after the upgrade")
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		dump, err := os.ReadFile(filepath.Join(fx.dir, "postgres.sql"))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		// Without arguments Exec uses the simple protocol, which runs the
		// dump's statements in one round.
		if _, err := conn.Exec(ctx, string(dump)); err != nil {
			t.Fatalf("load the dump: %v", err)
		}
		_ = conn.Close(ctx)
		env := []string{"CREDITD_DATABASE_URL=" + dsn}
		if out, errOut, code := runCLI(t, env, "verify"); code != 0 || !strings.Contains(out, ": 0 problems") {
			t.Fatalf("verify before the upgrade: exit %d\n%s\n%s", code, out, errOut)
		}
		srv := startServer(t, filepath.Join(t.TempDir(), "data"), env...)
		c := newAPIClient(srv.URL, srv.Key)
		defer c.close()
		checkUpgraded(t, c, fx, "postgres")
		srv.stop()
		if out, errOut, code := runCLI(t, env, "verify"); code != 0 || !strings.Contains(out, ": 0 problems") {
			t.Fatalf("verify after the upgrade: exit %d\n%s\n%s", code, out, errOut)
		}
	})
}

// checkUpgraded requires every entry the old version listed to be listed
// unchanged (new entries, such as today's daily credits, may be added),
// and the old version's jobs and assets to be served.
func checkUpgraded(t *testing.T, c *apiClient, fx upgradeFixture, store string) {
	t.Helper()
	for _, acct := range []string{"alice", "bob"} {
		raw, err := os.ReadFile(filepath.Join(fx.dir, store+"-"+acct+"-entries.json"))
		if err != nil {
			t.Fatal(err)
		}
		var old struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &old); err != nil || len(old.Data) == 0 {
			t.Fatalf("fixture %s entries: %v (%d)", acct, err, len(old.Data))
		}
		byID, err := rawEntries(c, acct)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range old.Data {
			var want struct {
				ID int64 `json:"id"`
			}
			if err := json.Unmarshal(o, &want); err != nil {
				t.Fatal(err)
			}
			got, ok := byID[want.ID]
			if !ok {
				t.Errorf("%s: %s entry %d is gone after the upgrade", store, acct, want.ID)
				continue
			}
			if g, w := canonicalJSON(t, got), canonicalJSON(t, o); g != w {
				t.Errorf("%s: %s entry %d changed:\n got %s\nwant %s", store, acct, want.ID, g, w)
			}
		}
	}
	var jobs struct {
		Data []struct {
			Action  string   `json:"action"`
			Status  string   `json:"status"`
			Charged int64    `json:"charged"`
			Outputs []string `json:"outputs"`
		} `json:"data"`
	}
	if err := c.getJSON("/v1/accounts/alice/jobs", &jobs); err != nil {
		t.Fatal(err)
	}
	var crop int
	for _, j := range jobs.Data {
		if j.Action != "crop" {
			continue
		}
		crop++
		if j.Status != "succeeded" || j.Charged != 5 || len(j.Outputs) != 1 {
			t.Fatalf("%s: the old crop job reads %+v", store, j)
		}
		req, _ := http.NewRequest("GET", c.base+"/v1/assets/"+j.Outputs[0], nil)
		req.Header.Set("Authorization", "Bearer "+c.key)
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "\x89PNG") {
			t.Errorf("%s: the old output's content: %d, %d bytes", store, resp.StatusCode, len(b))
		}
	}
	if crop != 1 {
		t.Fatalf("%s: %d crop jobs after the upgrade, want 1", store, crop)
	}
	var feedback struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := c.getJSON("/v1/feedback", &feedback); err != nil {
		t.Fatal(err)
	}
	if len(feedback.Data) != fx.feedback {
		t.Errorf("%s: %d feedback answers after the upgrade, want %d", store, len(feedback.Data), fx.feedback)
	}
}

// rawEntries lists all of an account's entries as the API writes them,
// by id.
func rawEntries(c *apiClient, acct string) (map[int64]json.RawMessage, error) {
	out := map[int64]json.RawMessage{}
	path := "/v1/accounts/" + acct + "/entries?limit=100"
	for {
		var page struct {
			Data       []json.RawMessage `json:"data"`
			HasMore    bool              `json:"has_more"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := c.getJSON(path, &page); err != nil {
			return nil, err
		}
		for _, e := range page.Data {
			var id struct {
				ID int64 `json:"id"`
			}
			if err := json.Unmarshal(e, &id); err != nil {
				return nil, err
			}
			out[id.ID] = e
		}
		if !page.HasMore {
			return out, nil
		}
		path = "/v1/accounts/" + acct + "/entries?limit=100&cursor=" + page.NextCursor
	}
}

// canonicalJSON re-encodes a JSON value with sorted keys.
func canonicalJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return string(mustMarshal(v))
}
