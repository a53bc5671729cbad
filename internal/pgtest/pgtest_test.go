package pgtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// envHelper selects a helper test run in a child process.
const envHelper = "PGTEST_HELPER"

func dial(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := connect(t.Context(), dsn, 5*time.Second)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func currentDatabase(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var name string
	if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestDSN(t *testing.T) {
	dsn1, dsn2 := DSN(t), DSN(t)
	c1, c2 := dial(t, dsn1), dial(t, dsn2)
	n1, n2 := currentDatabase(t, c1), currentDatabase(t, c2)
	if n1 == n2 || !strings.HasPrefix(n1, "creditd_test_") || !strings.HasPrefix(n2, "creditd_test_") {
		t.Fatalf("databases %q and %q: want two distinct creditd_test_ databases", n1, n2)
	}
	if _, err := c1.Exec(t.Context(), "CREATE TABLE only_in_one (x int); INSERT INTO only_in_one VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c1.QueryRow(t.Context(), "SELECT count(*) FROM only_in_one").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count in the first database: %d, %v", n, err)
	}
	var exists bool
	if err := c2.QueryRow(t.Context(), "SELECT to_regclass('only_in_one') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Error("a table created in one test database is visible in the other")
	}
	var enc string
	if err := c1.QueryRow(t.Context(), "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()").Scan(&enc); err != nil || enc != "UTF8" {
		t.Errorf("encoding %q, %v; want UTF8", enc, err)
	}
}

func TestDatabaseDroppedAtCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		dsn := DSN(t)
		// Left open on purpose: DROP … WITH (FORCE) ends the session.
		conn, err := connect(t.Context(), dsn, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		name = currentDatabase(t, conn)
	})
	adminDSN, err := server()
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, adminDSN)
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestWithDatabase(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/db1?sslmode=disable"},
		{"postgresql://u:p%40ss@h/", "postgresql://u:p%40ss@h/db1"},
		{"host=/tmp user=postgres dbname=postgres", "host=/tmp user=postgres dbname=postgres dbname=db1"},
	} {
		got, err := withDatabase(c.in, "db1")
		if err != nil || got != c.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	// The keyword/value form really selects the last dbname.
	cfg, err := pgx.ParseConfig("host=/tmp user=postgres dbname=postgres dbname=db1")
	if err != nil || cfg.Database != "db1" {
		t.Errorf("last dbname: %v, %v", cfg, err)
	}
}

// TestCluster starts a throwaway cluster directly (as the postgres OS user
// when root), uses it and stops it.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c, err := startCluster()
	if err != nil {
		t.Fatalf("startCluster: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			c.stop()
		}
	}()
	dsn, drop, err := createDatabase(c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, dsn)
	var dataDir, listen, fsync string
	err = conn.QueryRow(t.Context(), `SELECT current_setting('data_directory'), current_setting('listen_addresses'),
		current_setting('fsync')`).Scan(&dataDir, &listen, &fsync)
	if err != nil {
		t.Fatal(err)
	}
	if dataDir != filepath.Join(c.dir, "data") || listen != "127.0.0.1" || fsync != "off" {
		t.Errorf("cluster settings: data_directory %s, listen_addresses %s, fsync %s", dataDir, listen, fsync)
	}
	if os.Geteuid() == 0 {
		fi, err := os.Stat(filepath.Join(c.dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid == 0 {
			t.Errorf("running as root, the data directory is owned by root")
		}
	}
	if _, err := conn.Exec(t.Context(), "CREATE TABLE x (y text); INSERT INTO x VALUES ('✓')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	if err := drop(); err != nil {
		t.Fatal(err)
	}
	pid := c.cmd.Process.Pid
	stopped = true
	if err := c.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still there: %v", c.dir, err)
	}
	if alive(pid) {
		t.Errorf("postmaster %d still running", pid)
	}
	if ping(c.dsn) == nil {
		t.Errorf("stopped cluster still answers")
	}
}

// child returns a command that runs the helper test named by helper in a
// child process, with env added.
func child(t *testing.T, helper string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelper$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), append([]string{envHelper + "=" + helper}, env...)...)
	return cmd
}

// TestHelper is run by the tests below in a child process.
func TestHelper(t *testing.T) {
	switch os.Getenv(envHelper) {
	case "":
		return
	case "cluster":
		conn := dial(t, DSN(t))
		if err := conn.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		if running == nil {
			t.Fatal("no throwaway cluster running although forced")
		}
		fmt.Printf("CLUSTER dir=%s pid=%d\n", running.dir, postmasterPID(running.dir))
		if os.Getenv("PGTEST_HANG") == "1" {
			select {} // killed by the parent
		}
	case "dsn":
		DSN(t)
		fmt.Println("GOT A DSN")
	}
}

func parseCluster(t *testing.T, line string) (string, int) {
	t.Helper()
	var dir string
	var pid int
	if _, err := fmt.Sscanf(line, "CLUSTER dir=%s pid=%d", &dir, &pid); err != nil || pid <= 0 {
		t.Fatalf("bad helper line %q: %v", line, err)
	}
	return dir, pid
}

func scanCluster(t *testing.T, r io.Reader) (string, int) {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "CLUSTER ") {
			return parseCluster(t, sc.Text())
		}
	}
	t.Fatal("helper printed no CLUSTER line")
	return "", 0
}

// waitDead waits for pid to exit, polling the kernel.
func waitDead(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive after %v", pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestForcedClusterStoppedAtExit forces the throwaway-cluster path in a
// child test process: DSN works there, and Main stops the cluster and
// removes its directory when the child's tests end.
func TestForcedClusterStoppedAtExit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	cmd := child(t, "cluster", EnvForceCluster+"=1", EnvDSN+"=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var line string
	for l := range strings.Lines(string(out)) {
		if strings.HasPrefix(l, "CLUSTER ") {
			line = strings.TrimSpace(l)
		}
	}
	dir, pid := parseCluster(t, line)
	if !strings.Contains(filepath.Base(dir), dirPrefix) {
		t.Errorf("cluster dir %s", dir)
	}
	if alive(pid) {
		t.Errorf("postmaster %d outlived the test process", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s outlived the test process: %v", dir, err)
	}
}

// TestForcedClusterDiesWithKilledProcess kills a child test process that
// started a cluster: the postmaster dies with it, and the next cluster
// start removes the directory it left.
func TestForcedClusterDiesWithKilledProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	cmd := child(t, "cluster", EnvForceCluster+"=1", EnvDSN+"=", "PGTEST_HANG=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dir, pid := scanCluster(t, stdout)
	if !alive(pid) {
		t.Fatalf("postmaster %d not running while the child runs", pid)
	}
	cmd.Process.Kill()
	go io.Copy(io.Discard, stdout)
	cmd.Wait()
	waitDead(t, pid, 30*time.Second)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("directory of the killed process: %v (expected it left behind)", err)
	}
	removeStale()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("removeStale left %s: %v", dir, err)
	}
}

// TestNoServer: with no reachable server, DSN skips, or fails under
// CREDITD_CI=1.
func TestNoServer(t *testing.T) {
	port, err := freePort() // nothing listens there now
	if err != nil {
		t.Fatal(err)
	}
	bad := EnvDSN + "=postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/postgres?sslmode=disable&connect_timeout=1"

	out, err := child(t, "dsn", bad, EnvCI+"=").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- SKIP: TestHelper") || strings.Contains(string(out), "GOT A DSN") {
		t.Errorf("without CI: want a skip, got %v\n%s", err, out)
	}
	if !strings.Contains(string(out), EnvDSN) {
		t.Errorf("skip message does not say what to set:\n%s", out)
	}

	out, err = child(t, "dsn", bad, EnvCI+"=1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--- FAIL: TestHelper") || strings.Contains(string(out), "GOT A DSN") {
		t.Errorf("with %s=1: want a failure, got %v\n%s", EnvCI, err, out)
	}
}

func currentSchema(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var name string
	if err := conn.QueryRow(t.Context(), "SELECT current_schema()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// Schemas of one database are apart: a table made in one is not seen from
// the other, and each schema is dropped when its test ends.
func TestSchema(t *testing.T) {
	dsn := DSN(t)
	var s1 string
	t.Run("schemas", func(t *testing.T) {
		c1, c2 := dial(t, Schema(t, dsn)), dial(t, Schema(t, dsn))
		s1 = currentSchema(t, c1)
		s2 := currentSchema(t, c2)
		if s1 == s2 || !strings.HasPrefix(s1, "creditd_test_") || !strings.HasPrefix(s2, "creditd_test_") {
			t.Fatalf("schemas %q and %q: want two distinct creditd_test_ schemas", s1, s2)
		}
		if d1, d2 := currentDatabase(t, c1), currentDatabase(t, c2); d1 != d2 {
			t.Fatalf("databases %q and %q: want one", d1, d2)
		}
		if _, err := c1.Exec(t.Context(), "CREATE TABLE only_in_one (x int)"); err != nil {
			t.Fatal(err)
		}
		var exists bool
		if err := c2.QueryRow(t.Context(), "SELECT to_regclass('only_in_one') IS NOT NULL").Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Fatal("a table made in one schema is seen from the other")
		}
	})
	c := dial(t, dsn)
	var n int
	if err := c.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname = $1", s1).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("schema %s still exists after its test ended", s1)
	}
}

func TestWithParam(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?search_path=s&sslmode=disable"},
		{"host=h dbname=db", "host=h dbname=db search_path=s"},
	} {
		got, err := withParam(tc.in, "search_path", "s")
		if err != nil || got != tc.want {
			t.Errorf("withParam(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
