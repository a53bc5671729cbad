// Package pgtest finds a PostgreSQL server for tests and gives each test a
// database of its own.
//
// DSN creates a uniquely named database (creditd_test_<random>) and drops it
// WITH (FORCE) when the test ends, so tests never share state and may run in
// parallel. The server is found once per test process, in this order:
//
//  1. $CREDITD_TEST_PG_DSN, an admin DSN (a role that may CREATE DATABASE;
//     PostgreSQL 13 or later for DROP DATABASE … WITH (FORCE)); when it is
//     set but unreachable there is no server, rather than another one;
//  2. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable, tried
//     with a short connect timeout;
//  3. a throwaway cluster that pgtest creates with initdb in a temporary
//     directory and starts on a free loopback port (pg_config --bindir, or
//     /usr/lib/postgresql/*/bin, gives the binaries). PostgreSQL refuses to
//     run as root, so as root the cluster runs as the "postgres" OS user.
//     It runs with fsync off: it is for tests only.
//
// $CREDITD_TEST_PG_FORCE_CLUSTER=1 skips 1 and 2.
//
// A package that may start a cluster calls Main from its TestMain, which
// stops the cluster and removes its directory when the tests end; the
// server also dies with the test process (parent-death signal), and a
// directory left by a killed process is removed by the next one.
//
// When no server can be had, DSN skips the test with the reason, unless
// $CREDITD_CI=1: CI must never pass by skipping, so there it fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables.
const (
	EnvDSN          = "CREDITD_TEST_PG_DSN"
	EnvForceCluster = "CREDITD_TEST_PG_FORCE_CLUSTER"
	EnvCI           = "CREDITD_CI"
)

// DefaultDSN is the local server tried when $CREDITD_TEST_PG_DSN is unset.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

const (
	probeTimeout = 2 * time.Second
	startTimeout = 60 * time.Second
	adminTimeout = 30 * time.Second
	dirPrefix    = "creditd-pgtest-"
)

var (
	mu      sync.Mutex
	found   bool
	admin   string   // admin DSN of the server in use; "" if none
	why     error    // why there is none
	running *cluster // the cluster this process started, if any
)

// DSN returns the DSN of a new, empty database that is dropped when t ends.
// It skips t when no PostgreSQL server is available (fails it under
// $CREDITD_CI=1).
func DSN(t testing.TB) string {
	t.Helper()
	adminDSN, err := server()
	if err != nil {
		if os.Getenv(EnvCI) == "1" {
			t.Fatalf("pgtest: no PostgreSQL server (%s=1, so this is a failure, not a skip): %v", EnvCI, err)
		}
		t.Skipf("pgtest: no PostgreSQL server, skipping: %v (set %s to an admin DSN)", err, EnvDSN)
	}
	dsn, drop, err := createDatabase(adminDSN)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return dsn
}

// Schema returns a DSN of the database of dsn (one that DSN returned)
// whose sessions work in a new, empty schema (search_path), dropped with
// everything in it when t ends. Tests given schemas of one database may
// run in parallel without seeing each other's tables, at the cost of one
// CREATE SCHEMA instead of a CREATE DATABASE each; they do share the
// database's advisory locks and LISTEN channels.
func Schema(t testing.TB, dsn string) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	name := "creditd_test_" + hex.EncodeToString(b[:])
	if err := adminExec(dsn, `CREATE SCHEMA `+name); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := adminExec(dsn, `DROP SCHEMA IF EXISTS `+name+` CASCADE`); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
		}
	})
	out, err := withParam(dsn, "search_path", name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return out
}

// Main runs the tests and then stops the cluster pgtest started, if any.
// Call it from TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if err := Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
	}
	os.Exit(code)
}

// Stop stops the cluster this process started, if any, and removes its
// directory. Main calls it; DSN finds a server afresh afterwards.
func Stop() error {
	mu.Lock()
	defer mu.Unlock()
	found, admin, why = false, "", nil
	if running == nil {
		return nil
	}
	c := running
	running = nil
	return c.stop()
}

// server returns the admin DSN, finding the server on first use.
func server() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if !found {
		admin, why = find()
		found = true
	}
	return admin, why
}

func find() (string, error) {
	if os.Getenv(EnvForceCluster) != "1" {
		if dsn := os.Getenv(EnvDSN); dsn != "" {
			if err := ping(dsn); err != nil {
				return "", fmt.Errorf("%s: %w", EnvDSN, err)
			}
			return dsn, nil
		}
		if ping(DefaultDSN) == nil {
			return DefaultDSN, nil
		}
	}
	c, err := startCluster()
	if err != nil {
		return "", fmt.Errorf("no server at %s and no throwaway cluster: %w", DefaultDSN, err)
	}
	running = c
	return c.dsn, nil
}

func connect(ctx context.Context, dsn string, timeout time.Duration) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > timeout {
		cfg.ConnectTimeout = timeout
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func ping(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	conn, err := connect(ctx, dsn, probeTimeout)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// createDatabase creates a uniquely named database on the server of
// adminDSN and returns its DSN and a function that drops it.
func createDatabase(adminDSN string) (string, func() error, error) {
	var b [8]byte
	rand.Read(b[:])
	name := "creditd_test_" + hex.EncodeToString(b[:])
	dsn, err := withDatabase(adminDSN, name)
	if err != nil {
		return "", nil, err
	}
	// UTF8 as in production; the C locale is compatible with any server
	// encoding. The schema sets its own collations.
	err = adminExec(adminDSN, `CREATE DATABASE `+name+` TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`)
	if err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() error {
		if err := adminExec(adminDSN, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return dsn, drop, nil
}

func adminExec(adminDSN, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	conn, err := connect(ctx, adminDSN, probeTimeout)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns dsn (a URL or keyword/value DSN) naming database db.
func withDatabase(dsn, db string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse admin DSN: %w", err)
		}
		u.Path, u.RawPath = "/"+db, ""
		return u.String(), nil
	}
	return dsn + " dbname=" + db, nil // the last keyword wins
}

// withParam returns dsn (a URL or keyword/value DSN) with a connection
// parameter set.
func withParam(dsn, key, value string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse DSN: %w", err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return dsn + " " + key + "=" + value, nil // the last keyword wins
}

// ---- throwaway cluster ----------------------------------------------------

type cluster struct {
	dir    string // temporary directory: data/, sockets, logs
	bindir string
	cred   *syscall.Credential // run as (nil: this user)
	port   int
	dsn    string
	cmd    *exec.Cmd
	done   chan struct{} // closed when the postmaster has exited
	err    error         // its exit status, valid after done
}

// startCluster initialises and starts a cluster in a new temporary
// directory, as the postgres OS user when running as root.
func startCluster() (c *cluster, err error) {
	c, err = initCluster()
	if err != nil {
		return nil, err
	}
	if err := c.start(); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// initCluster runs initdb in a new temporary directory and picks a free
// port; start starts the postmaster.
func initCluster() (c *cluster, err error) {
	bindir, err := binDir()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no postgres OS user to run initdb as: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	removeStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	c = &cluster{dir: dir, bindir: bindir, cred: cred}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bindir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if err := run(initdb, cred, filepath.Join(dir, "initdb.log")); err != nil {
		return nil, fmt.Errorf("initdb: %w", err)
	}
	if c.port, err = freePort(); err != nil {
		return nil, err
	}
	c.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	return c, nil
}

// start starts the cluster's postmaster on its port and waits until it
// answers.
func (c *cluster) start() error {
	log, err := os.OpenFile(filepath.Join(c.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	c.done, c.err = make(chan struct{}), nil
	c.cmd = exec.Command(filepath.Join(c.bindir, "postgres"), "-D", filepath.Join(c.dir, "data"), "-p", strconv.Itoa(c.port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200")
	c.cmd.Dir, c.cmd.Env, c.cmd.Stdout, c.cmd.Stderr = c.dir, env(), log, log
	// The postmaster dies with this process (SIGQUIT: immediate shutdown).
	// The kernel sends the signal when the thread that forked it ends, so a
	// goroutine locked to its thread starts it and waits for it.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	started := make(chan error, 1)
	cmd, done := c.cmd, c.done
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			close(done)
			return
		}
		started <- nil
		c.err = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		perr := ping(c.dsn)
		if perr == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("postgres exited: %v\n%s", c.err, tail(filepath.Join(c.dir, "postgres.log")))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %v: %v\n%s", startTimeout, perr, tail(filepath.Join(c.dir, "postgres.log")))
		}
	}
}

// stop shuts the postmaster down (fast shutdown, then kill) and removes
// the directory.
func (c *cluster) stop() error {
	errs := []error{c.halt()}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// halt shuts the postmaster down, if it runs: fast shutdown (every client
// is disconnected), then kill after 15 s.
func (c *cluster) halt() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	select {
	case <-c.done:
		return nil
	default:
	}
	c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-c.done:
		return nil
	case <-time.After(15 * time.Second):
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
		return errors.New("postgres did not shut down in 15s; killed")
	}
}

// binDir finds the directory of initdb and postgres.
func binDir() (string, error) {
	var tried []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
		tried = append(tried, d)
	} else {
		tried = append(tried, "pg_config: "+err.Error())
	}
	// Debian's layout; pg_config may belong to libpq-dev of another version.
	ds, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(ds, func(a, b string) int { // newest version first
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range ds {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
		tried = append(tried, d)
	}
	return "", fmt.Errorf("no initdb and postgres binaries found (tried %s)", strings.Join(tried, ", "))
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// run runs cmd to completion as cred (nil: this user), output to logPath.
func run(cmd *exec.Cmd, cred *syscall.Credential, logPath string) error {
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = filepath.Dir(logPath), env(), log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(logPath))
	}
	return nil
}

// env is this process's environment without PG* variables, which would
// steer initdb and postgres.
func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			out = append(out, kv)
		}
	}
	return out
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// removeStale removes cluster directories whose owning test process is
// gone (killed before Main could clean up; its postmaster died with it).
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		if alive(pid) || alive(postmasterPID(d)) {
			continue
		}
		os.RemoveAll(d)
	}
}

func alive(pid int) bool {
	return pid > 0 && !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// postmasterPID reads the pid of a cluster directory's postmaster, 0 if none.
func postmasterPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}
