package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/creditd/creditd/billing"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
	"github.com/creditd/creditd/web"
	"github.com/creditd/creditd/worker"
)

// Server timeouts and limits.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	shutdownTimeout   = 20 * time.Second
	dbFileName        = "creditd.db"
	adminKeyFileName  = "admin.key"
	workerKeyFileName = "worker.key"
	assetsDirName     = "assets"
)

// The server's garbage collector, unless GOGC or GOMEMLIMIT say otherwise:
// collect when the heap has grown by serveGCPercent, under a soft limit of
// serveMemoryLimit on the Go heap (the runtime collects more often near
// it; SQLite's page caches are outside it). With Go's default (100) a
// collection ran about every 100 ms under load, and its mark phase took
// one of two cores for ~35 ms, which set the tail: creditd bench, in
// process at 8,000 cycles/s over 10,000 accounts, p99 21 ms (GOGC=100) →
// 13 ms (GOGC=400); see docs/performance.md for the HTTP settings and
// the memory at 1,000,000 accounts.
const (
	serveGCPercent   = 400
	serveMemoryLimit = 768 << 20
)

// gcDefaults applies serveGCPercent and serveMemoryLimit where GOGC and
// GOMEMLIMIT are unset, and returns the settings in force.
func gcDefaults() (gcPercent int, memoryLimit int64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(serveMemoryLimit)
	}
	gcPercent = debug.SetGCPercent(-1)
	debug.SetGCPercent(gcPercent)
	return gcPercent, debug.SetMemoryLimit(-1)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", envOr("CREDITD_ADDR", "127.0.0.1:8080"), "listen address")
	data := fs.String("data", envOr("CREDITD_DATA", "./data"), "data directory")
	testClock := fs.Bool("test-clock", false, "enable the test clock endpoint /v1/test-clock")
	cfgPath := fs.String("config", os.Getenv("CREDITD_CONFIG"), "JSON config file (prices, sources, limits)")
	logLevel := fs.String("log-level", envOr("CREDITD_LOG_LEVEL", "info"), "debug, info, warn or error")
	dbURL, maxConns := dbFlags(fs)
	builtin := fs.Int("builtin-worker", 2, "concurrency of the in-process image worker (0 disables it)")
	builtinMemory := builtinMemoryFlag(fs, "builtin-worker-memory-bytes")
	committers := fs.Int("committers", envInt("CREDITD_COMMITTERS", 0),
		fmt.Sprintf("committer goroutines (0: 1 on SQLite, %d on PostgreSQL)", engine.DefaultSharedCommitters))
	debugAddr := fs.String("debug-addr", os.Getenv("CREDITD_DEBUG_ADDR"), "listen address of the Go profiler (net/http/pprof under /debug/pprof/); empty: off")
	billingCfg, err := billing.LoadFromEnv()
	if err != nil {
		return err
	}
	billingCfg.RegisterFlags(fs)
	_ = fs.Parse(args)

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if *builtinMemory < 1 {
		return fmt.Errorf("--builtin-worker-memory-bytes must be at least 1")
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	gcPercent, memLimit := gcDefaults()
	slog.SetDefault(log)

	cfg, err := ledger.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	key, err := loadKey(*data, "CREDITD_ADMIN_KEY", adminKeyFileName, "sk_admin_")
	if err != nil {
		return err
	}
	wkey, err := loadKey(*data, "CREDITD_WORKER_KEY", workerKeyFileName, "sk_worker_")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	be, err := openBackend(ctx, *dbURL, *data, int32(*maxConns), log)
	if err != nil {
		return err
	}
	defer be.close()
	store, blobs := be.store, be.blobs

	var clock ledger.Clock = ledger.SystemClock{}
	var tc *ledger.TestClock
	if *testClock {
		tc = ledger.NewTestClock(time.Now())
		clock = tc
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if lite, ok := store.(*sqlite.Store); ok {
		reg.MustRegister(journalCollector{lite})
	}
	eng, err := engine.New(ctx, engine.Options{Config: cfg, Store: store, Bus: be.bus, Clock: clock, Logger: log, Metrics: engine.NewMetrics(reg),
		Committers: *committers})
	if err != nil {
		return err
	}
	defer eng.Close()

	api := &httpapi.Server{Engine: eng, Store: store, AdminKey: key, WorkerKey: wkey, Blobs: blobs, TestClock: tc, Logger: log, Registry: reg}
	if api.Billing, err = billing.New(billingCfg, eng, store, log.With("component", "billing")); err != nil {
		return err
	}
	// --- web app (issue 5): signed user credentials, pages under /app/ ---
	sessionKey, err := loadKey(*data, "CREDITD_SESSION_SECRET", "session.key", "ss_")
	if err != nil {
		return err
	}
	if len(sessionKey) < httpapi.SessionKeyBytesMin {
		return fmt.Errorf("CREDITD_SESSION_SECRET must be at least %d characters", httpapi.SessionKeyBytesMin)
	}
	api.SessionKey, api.PublicURL = []byte(sessionKey), os.Getenv("CREDITD_PUBLIC_URL")
	api.Web = web.New(api)
	// --- end web app ---
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if *debugAddr != "" {
		dl, err := net.Listen("tcp", *debugAddr)
		if err != nil {
			return fmt.Errorf("--debug-addr: %w", err)
		}
		// http.DefaultServeMux carries net/http/pprof's handlers and nothing
		// else; it is never served on the API address.
		go func() { _ = http.Serve(dl, http.DefaultServeMux) }()
		defer dl.Close()
		log.Info("profiler listening", "addr", "http://"+dl.Addr().String()+"/debug/pprof/")
	}
	url := "http://" + ln.Addr().String()
	fmt.Printf("creditd listening on %s\n", url)
	fmt.Printf("data directory: %s\n", *data)
	if os.Getenv("CREDITD_ADMIN_KEY") == "" {
		fmt.Printf("admin key: %s (stored in %s)\n", key, filepath.Join(*data, adminKeyFileName))
	} else {
		fmt.Printf("admin key: from CREDITD_ADMIN_KEY\n")
	}
	if os.Getenv("CREDITD_WORKER_KEY") == "" {
		fmt.Printf("worker key: %s (stored in %s)\n", wkey, filepath.Join(*data, workerKeyFileName))
	} else {
		fmt.Printf("worker key: from CREDITD_WORKER_KEY\n")
	}
	if tc != nil {
		fmt.Printf("test clock enabled: POST %s/v1/test-clock\n", url)
	}
	// --- web app (issue 5): end event streams on shutdown; demo user ---
	srv.RegisterOnShutdown(api.CloseEvents)
	if link, err := web.DemoSignIn(ctx, api, url); err != nil {
		log.Warn("demo user", "err", err)
	} else {
		fmt.Printf("demo sign-in: %s\n", link)
	}
	// --- end web app ---
	log.Info("serving", "addr", ln.Addr().String(), "data", *data, "test_clock", *testClock,
		"gc_percent", gcPercent, "memory_limit_bytes", memLimit)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	wctx, stopWorker := context.WithCancel(context.Background())
	defer stopWorker()
	if *builtin > 0 {
		go func() {
			if err := worker.RunBuiltin(wctx, url, wkey, *builtin, *builtinMemory, log.With("component", "builtin-worker")); err != nil && wctx.Err() == nil {
				log.Error("built-in worker stopped", "err", err)
			}
		}()
	}
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		log.Info("shutting down")
		stopWorker()
		eng.Drain()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("shutdown", "err", err)
		}
	}
	eng.Close()
	log.Info("stopped")
	return nil
}

// loadKey returns the key from env, or the key stored in the data
// directory, generating and storing it on first start.
func loadKey(data, env, file, prefix string) (string, error) {
	if k := os.Getenv(env); k != "" {
		return k, nil
	}
	path := filepath.Join(data, file)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	k := prefix + rand.Text()
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		return "", err
	}
	return k, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// builtinMemoryFlag defines the built-in worker's memory budget flag,
// defaulting to $CREDITD_BUILTIN_WORKER_MEMORY_BYTES.
func builtinMemoryFlag(fs *flag.FlagSet, name string) *int64 {
	def := int64(worker.DefaultBuiltinMemoryBytes)
	if v, err := strconv.ParseInt(os.Getenv("CREDITD_BUILTIN_WORKER_MEMORY_BYTES"), 10, 64); err == nil && v > 0 {
		def = v
	}
	return fs.Int64(name, def, "memory budget of the built-in image worker, in bytes: jobs wait until the images they need fit in it")
}

// envInt is the integer in the environment variable name, or def when it
// is unset or not an integer.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
