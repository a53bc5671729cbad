package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/billing"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/httpx"
	"github.com/creditd/creditd/internal/publicurl"
	"github.com/creditd/creditd/internal/readiness"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
	"github.com/creditd/creditd/web"
	"github.com/creditd/creditd/webhook"
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
	sessionKeyFile    = "session.key"
	assetsDirName     = "assets"
	// keyCharsMin is the shortest admin or worker key an operator may set
	// (CREDITD_ADMIN_KEY, CREDITD_WORKER_KEY), and the least length of
	// every key serve generates. Keys stored in a data directory by
	// earlier versions keep working, with a warning when shorter.
	keyCharsMin = 32
)

// The server's garbage collector, unless GOGC or GOMEMLIMIT say otherwise:
// collect when the heap has grown by serveGCPercent, under a soft limit of
// serveMemoryLimit on the Go heap (the runtime collects more often near
// it; SQLite's page caches are outside it). With Go's default (100)
// frequent collections' mark phases set the latency tail; the
// measurements are in docs/performance.md (Tuning constants, Memory).
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

const serveAbout = `Runs the credits service: the JSON API under /v1, the web app under /app/,
and the built-in image worker. It prints its URL and the admin and worker
keys (generated on first start and stored in the data directory unless set
in the environment), and stops gracefully on SIGINT or SIGTERM.

The flags and variables are described in docs/configuration.md.`

// envWebhooksAllowPrivate sets --webhooks-allow-private-urls.
const envWebhooksAllowPrivate = "CREDITD_WEBHOOKS_ALLOW_PRIVATE_URLS"

// serveFlags are serve's flags as defined, before they are checked.
type serveFlags struct {
	addr, data, cfgPath, logLevel, dbURL *string
	trustedProxies, debugAddr, signInURL *string
	readyInterval, supportURL            *string
	testClock, demo, allowPrivate        *bool
	maxConns, builtin, committers        *int
	builtinMemory                        *int64
}

// serveConfig is serve's flags and environment, parsed and checked.
type serveConfig struct {
	addr, data, cfgPath, dbURL       string
	debugAddr, signInURL, supportURL string
	testClock, demo, allowPrivate    bool
	maxConns, builtin, committers    int
	builtinMemory                    int64
	level                            slog.Level
	probeEvery                       time.Duration
	proxies                          []netip.Prefix
	billing                          billing.Config
}

func serve(args []string) error {
	sc, err := parseServe(args)
	if err != nil {
		return err
	}
	return runServe(sc)
}

// defineServeFlags defines serve's own flags on c.
func defineServeFlags(c *command) serveFlags {
	var f serveFlags
	f.addr = c.stringEnv("addr", "CREDITD_ADDR", "127.0.0.1:8080", "listen address")
	f.data = c.stringEnv("data", "CREDITD_DATA", "./data", "data directory: the SQLite database, the keys it generates, uploaded and produced images")
	f.testClock = c.Bool("test-clock", false, "freeze the service's clock at the start time; only POST /v1/test-clock moves it\n"+
		"(holds, worker leases and daily credits then never expire in real time: for trying out and tests only)")
	f.cfgPath = c.stringEnv("config", "CREDITD_CONFIG", "", "JSON config file (prices, sources, amounts, limits; see docs/configuration.md)")
	f.logLevel = c.stringEnv("log-level", "CREDITD_LOG_LEVEL", "info", "debug, info, warn or error (JSON logs on stderr)")
	f.dbURL, f.maxConns = dbFlag(c), dbPoolFlag(c)
	f.builtin = c.Int("builtin-worker", 2, "concurrency of the in-process image worker (0 disables it)")
	f.demo = c.Bool("demo", false, `create the account "demo" when absent and print a sign-in link for it (for trying creditd out; never in production)`)
	f.builtinMemory = builtinMemoryFlag(c, "builtin-worker-memory-bytes")
	f.committers = c.intEnv("committers", "CREDITD_COMMITTERS", 0,
		fmt.Sprintf("committer goroutines (0: 1 on SQLite, %d on PostgreSQL)", engine.DefaultSharedCommitters))
	f.trustedProxies = c.stringEnv("trusted-proxies", httpx.EnvTrustedProxies, "",
		"comma-separated IPs and CIDRs of reverse proxies whose X-Forwarded-For names the client (rate limits of failed sign-ins)")
	f.debugAddr = c.stringEnv("debug-addr", "CREDITD_DEBUG_ADDR", "", "listen address of the Go profiler (net/http/pprof under /debug/pprof/); empty: off")
	f.signInURL = c.stringEnv("signin-url", "CREDITD_SIGNIN_URL", "", "your product's page where users get a sign-in link (http(s) URL or path); the web app's signed-out pages link to it")
	f.readyInterval = c.stringEnv("ready-probe-interval", "CREDITD_READY_PROBE_INTERVAL", readiness.DefaultInterval.String(),
		"how often the store's write probe runs (GET /readyz and creditd_store_writable follow it)")
	f.allowPrivate = c.boolEnv("webhooks-allow-private-urls", envWebhooksAllowPrivate,
		"let webhooks reach private, loopback and link-local addresses (refused by default, checked when connecting)")
	f.supportURL = c.stringEnv("support-url", "CREDITD_SUPPORT_URL", "", "your product's support page (http(s) URL, path or mailto: address); the web app links to it")
	return f
}

// defineServeEnv defines billing's flags on c and records, for the help,
// the environment variables serve reads.
func defineServeEnv(c *command, billingCfg *billing.Config) {
	billingCfg.RegisterFlags(c.FlagSet)
	for _, f := range []struct{ flag, env string }{
		{"stripe-secret-key", billing.EnvSecretKey},
		{"stripe-webhook-secret", billing.EnvWebhookSecret},
		{"stripe-api-base", billing.EnvAPIBase},
		{"stripe-success-url", billing.EnvSuccessURL},
		{"stripe-cancel-url", billing.EnvCancelURL},
		{"stripe-webhook-tolerance", billing.EnvWebhookTolerance},
		{"stripe-paid-price-ids", billing.EnvPaidPriceIDs},
		{"packs", billing.EnvPacks},
	} {
		c.envFlag(f.flag, f.env, "")
	}
	c.helpDefault["stripe-webhook-tolerance"] = billing.DefaultWebhookTolerance.String()
	for _, e := range [][2]string{
		{"CREDITD_ADMIN_KEY", "admin API key, at least 32 characters (default: generated into DATA/" + adminKeyFileName + ")"},
		{"CREDITD_WORKER_KEY", "worker API key, at least 32 characters (default: generated into DATA/" + workerKeyFileName + ")"},
		{"CREDITD_SESSION_SECRET", "signs sessions, user tokens and sign-in links, at least 16 characters; the same on every node (default: generated into DATA/" + sessionKeyFile + ")"},
		{publicurl.Env, "where users reach creditd, e.g. https://app.example.com: the base of sign-in links and Stripe's return URLs (unset: links only for requests on a loopback address)"},
		{"GOGC", fmt.Sprintf("the Go garbage collector's target percentage (default here: %d)", serveGCPercent)},
		{"GOMEMLIMIT", fmt.Sprintf("the Go heap's soft limit (default here: %dMiB)", serveMemoryLimit>>20)},
	} {
		c.envNote(e[0], e[1])
	}
}

// parseServe parses serve's flags and checks them.
func parseServe(args []string) (serveConfig, error) {
	c := newCommand("serve", "creditd serve [--addr 127.0.0.1:8080] [--data ./data | --db postgres://…] [--config FILE] [flags]",
		serveAbout)
	f := defineServeFlags(c)
	// A bad CREDITD_STRIPE_* or CREDITD_PACKS is reported after the
	// flags are parsed, so that --help still answers.
	billingCfg, billingErr := billing.LoadFromEnv()
	defineServeEnv(c, &billingCfg)
	if err := c.parseNone(args); err != nil {
		return serveConfig{}, err
	}
	if billingErr != nil {
		return serveConfig{}, billingErr
	}
	if err := envBoolError("webhooks-allow-private-urls", envWebhooksAllowPrivate); err != nil {
		return serveConfig{}, err
	}
	sc := serveConfig{addr: *f.addr, data: *f.data, cfgPath: *f.cfgPath, dbURL: *f.dbURL, debugAddr: *f.debugAddr,
		signInURL: *f.signInURL, supportURL: *f.supportURL, testClock: *f.testClock, demo: *f.demo, allowPrivate: *f.allowPrivate,
		maxConns: *f.maxConns, builtin: *f.builtin, committers: *f.committers, builtinMemory: *f.builtinMemory,
		billing: billingCfg}
	if err := sc.level.UnmarshalText([]byte(*f.logLevel)); err != nil {
		return sc, fmt.Errorf("--log-level: %w", err)
	}
	if sc.builtinMemory < 1 {
		return sc, fmt.Errorf("--builtin-worker-memory-bytes must be at least 1")
	}
	var err error
	if sc.probeEvery, err = time.ParseDuration(*f.readyInterval); err != nil || sc.probeEvery <= 0 {
		return sc, fmt.Errorf("--ready-probe-interval (CREDITD_READY_PROBE_INTERVAL): want a positive duration such as 2s, got %q", *f.readyInterval)
	}
	if err := web.CheckLinkURL("--signin-url (CREDITD_SIGNIN_URL)", sc.signInURL); err != nil {
		return sc, err
	}
	if err := web.CheckLinkURL("--support-url (CREDITD_SUPPORT_URL)", sc.supportURL); err != nil {
		return sc, err
	}
	sc.proxies, err = httpx.ParseTrustedProxies(*f.trustedProxies)
	return sc, err
}

// runServe runs the service until SIGINT or SIGTERM, or until the server
// fails.
func runServe(sc serveConfig) error {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: sc.level}))
	gcPercent, memLimit := gcDefaults()
	slog.SetDefault(log)

	cfg, keys, err := loadServeFiles(sc, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	be, err := openBackend(ctx, sc.dbURL, sc.data, int32(sc.maxConns), log)
	if err != nil {
		return err
	}
	defer be.close()

	eng, tc, reg, err := serveEngine(ctx, sc, cfg, be, log)
	if err != nil {
		return err
	}
	defer eng.Close()

	ready, stopProbe := startProbe(eng, sc.probeEvery, reg, log)
	defer stopProbe() // before the engine and the store close

	stopHooks := startWebhooks(sc, eng, be, reg, log)
	defer stopHooks() // before the engine and the store close

	svc, handler, err := serveHandler(sc, eng, be, keys, tc, ready, reg, log)
	if err != nil {
		return err
	}
	srv := newHTTPServer(handler, log)
	ln, err := net.Listen("tcp", sc.addr)
	if err != nil {
		return err
	}
	if sc.debugAddr != "" {
		dl, err := listenDebug(sc.debugAddr, log)
		if err != nil {
			return err
		}
		defer dl.Close()
	}
	url := "http://" + ln.Addr().String()
	printServing(url, sc.data, keys, tc)
	srv.RegisterOnShutdown(svc.CloseEvents) // ends the event streams
	if sc.demo {
		printDemoSignIn(ctx, svc, url, log)
	}
	log.Info("serving", "addr", ln.Addr().String(), "data", sc.data, "test_clock", sc.testClock, "webhooks_allow_private_urls", sc.allowPrivate,
		"gc_percent", gcPercent, "memory_limit_bytes", memLimit)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	stopWorker := startBuiltin(sc, url, keys.worker.value, log)
	defer stopWorker()
	if err := awaitStop(ctx, errc, srv, func() { ready.Drain(); stopWorker(); stopHooks(); eng.Drain() }, log); err != nil {
		return err
	}
	eng.Close()
	log.Info("stopped")
	return nil
}

// loadServeFiles loads the config file and creates the data directory
// with the keys it lacks.
func loadServeFiles(sc serveConfig, log *slog.Logger) (*ledger.Config, serverKeys, error) {
	var checks []func(*ledger.Config) []string
	if sc.builtin > 0 {
		checks = append(checks, worker.BuiltinConfigProblems)
	}
	cfg, err := ledger.LoadConfig(sc.cfgPath, checks...)
	if err != nil {
		return nil, serverKeys{}, err
	}
	if err := os.MkdirAll(sc.data, 0o700); err != nil {
		return nil, serverKeys{}, err
	}
	keys, err := loadKeys(sc.data, log)
	return cfg, keys, err
}

// serveEngine starts the engine over the backend, with the test clock
// when --test-clock asks for it and the metrics registry.
func serveEngine(ctx context.Context, sc serveConfig, cfg *ledger.Config, be *backend, log *slog.Logger) (
	*engine.Engine, *ledger.TestClock, *prometheus.Registry, error) {
	var clock ledger.Clock = ledger.SystemClock{}
	var tc *ledger.TestClock
	if sc.testClock {
		tc = ledger.NewTestClock(time.Now())
		clock = tc
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if lite, ok := be.store.(*sqlite.Store); ok {
		reg.MustRegister(journalCollector{lite})
	}
	eng, err := engine.New(ctx, engine.Options{Config: cfg, Store: be.store, Bus: be.bus, Clock: clock, Logger: log,
		Metrics: engine.NewMetrics(reg), Committers: sc.committers, Blobs: be.blobs})
	return eng, tc, reg, err
}

// startBuiltin starts the built-in worker against the server at url
// (unless --builtin-worker is 0) and returns what stops it.
func startBuiltin(sc serveConfig, url, workerKey string, log *slog.Logger) (stop func()) {
	wctx, stopWorker := context.WithCancel(context.Background())
	if sc.builtin > 0 {
		go func() {
			err := worker.RunBuiltin(wctx, url, workerKey, sc.builtin, sc.builtinMemory, log.With("component", "builtin-worker"))
			if err != nil && wctx.Err() == nil {
				log.Error("built-in worker stopped", "err", err)
			}
		}()
	}
	return stopWorker
}

// serveHandler builds the application layer and its three edges side by
// side: the JSON API (which mounts billing's routes and the web app), the
// web app and billing. None of them imports another.
func serveHandler(sc serveConfig, eng *engine.Engine, be *backend, keys serverKeys, tc *ledger.TestClock,
	ready *readiness.Probe, reg *prometheus.Registry, log *slog.Logger) (*app.Service, http.Handler, error) {
	svc := app.New(app.Options{Engine: eng, Store: be.store, Blobs: be.blobs, Logger: log, Registry: reg,
		SessionKey: []byte(keys.session.value), PublicURL: os.Getenv(publicurl.Env), WebhooksAllowPrivate: sc.allowPrivate})
	api := &httpapi.Server{App: svc, AdminKey: keys.admin.value, WorkerKey: keys.worker.value, TestClock: tc, Logger: log,
		Registry: reg, Readiness: ready}
	api.TrustedProxies = sc.proxies
	if lite, ok := be.store.(*sqlite.Store); ok {
		api.Backup = sqliteBackup(sc.data, lite)
	}
	bill, err := billing.New(sc.billing, svc, log.With("component", "billing"))
	if err != nil {
		return nil, nil, err
	}
	api.Billing = bill
	webApp := web.New(svc)
	webApp.SignInURL, webApp.SupportURL = sc.signInURL, sc.supportURL
	webApp.Billing, webApp.TrustedProxies = bill, sc.proxies
	api.Web = webApp
	return svc, api.Handler(), nil
}

// newHTTPServer is the HTTP server of handler, with serve's timeouts and
// limits.
func newHTTPServer(handler http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// startProbe runs the readiness probe over eng until stop, which waits
// for it to end.
func startProbe(eng *engine.Engine, every time.Duration, reg *prometheus.Registry, log *slog.Logger) (
	ready *readiness.Probe, stop func()) {
	ready = readiness.New(eng, every, log.With("component", "readiness"), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ready.Run(ctx) }()
	return ready, func() { cancel(); <-done }
}

// startWebhooks runs the outbound webhooks' dispatcher, which tails the
// store's events and delivers them; stop ends it (at most once).
func startWebhooks(sc serveConfig, eng *engine.Engine, be *backend, reg *prometheus.Registry, log *slog.Logger) (stop func()) {
	hooks := webhook.New(webhook.Options{Store: be.store, Clock: eng.Clock(), Logger: log.With("component", "webhooks"), Registry: reg,
		AllowPrivate: sc.allowPrivate, Schedule: eng.Config().Webhooks.Schedule(), DisableAfter: eng.Config().Webhooks.DisableAfter()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); hooks.Run(ctx) }()
	return sync.OnceFunc(func() { cancel(); <-done })
}

// printDemoSignIn creates the account "demo" when absent and prints a
// sign-in link for it.
func printDemoSignIn(ctx context.Context, svc *app.Service, url string, log *slog.Logger) {
	link, err := web.DemoSignIn(ctx, svc, url)
	if err != nil {
		log.Warn("demo user", "err", err)
		return
	}
	fmt.Printf("demo sign-in: %s\n", link)
}

// listenDebug serves the Go profiler on addr. http.DefaultServeMux
// carries net/http/pprof's handlers and nothing else; it is never served
// on the API address.
func listenDebug(addr string, log *slog.Logger) (net.Listener, error) {
	dl, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	go func() { _ = http.Serve(dl, http.DefaultServeMux) }()
	log.Info("profiler listening", "addr", "http://"+dl.Addr().String()+"/debug/pprof/")
	return dl, nil
}

// printServing prints the URL, the data directory and the keys on stdout.
func printServing(url, data string, keys serverKeys, tc *ledger.TestClock) {
	fmt.Printf("creditd listening on %s\n", url)
	fmt.Printf("data directory: %s\n", data)
	for _, k := range []struct {
		key  serverKey
		file string
	}{{keys.admin, adminKeyFileName}, {keys.worker, workerKeyFileName}} {
		if os.Getenv(k.key.env) == "" {
			fmt.Printf("%s: %s (stored in %s)\n", k.key.name, k.key.value, filepath.Join(data, k.file))
		} else {
			fmt.Printf("%s: from %s\n", k.key.name, k.key.env)
		}
	}
	if tc != nil {
		fmt.Printf("test clock enabled: POST %s/v1/test-clock\n", url)
	}
}

// awaitStop waits for the server to fail (its error) or for ctx to end;
// then it runs drain and shuts the server down gracefully.
func awaitStop(ctx context.Context, errc <-chan error, srv *http.Server, drain func(), log *slog.Logger) error {
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		log.Info("shutting down")
		drain()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("shutdown", "err", err)
		}
	}
	return nil
}

// serverKey is one of the server's keys and where it came from.
type serverKey struct {
	name  string // "admin key"
	env   string // the environment variable that sets it
	value string
	from  string // the environment variable, or the file it is stored in
	set   bool   // set by the operator (env), not stored or generated
}

// serverKeys are the admin and worker API keys and the session secret.
type serverKeys struct{ admin, worker, session serverKey }

// loadKeys loads the three keys (loadKey) and refuses, with a message that
// says which and why: an admin or worker key set by the operator shorter
// than keyCharsMin; a session secret shorter than
// app.SessionKeyBytesMin; and any two equal keys (a worker key equal
// to the admin key would give workers admin rights). A short admin or
// worker key stored in the data directory by an earlier version keeps
// working, with a warning.
func loadKeys(data string, log *slog.Logger) (serverKeys, error) {
	var ks serverKeys
	var err error
	if ks.admin, err = loadKey(data, "admin key", "CREDITD_ADMIN_KEY", adminKeyFileName, "sk_admin_"); err != nil {
		return ks, err
	}
	if ks.worker, err = loadKey(data, "worker key", "CREDITD_WORKER_KEY", workerKeyFileName, "sk_worker_"); err != nil {
		return ks, err
	}
	if ks.session, err = loadKey(data, "session secret", "CREDITD_SESSION_SECRET", sessionKeyFile, "ss_"); err != nil {
		return ks, err
	}
	for _, k := range []serverKey{ks.admin, ks.worker} {
		switch {
		case len(k.value) >= keyCharsMin:
		case k.set:
			return ks, fmt.Errorf("%s is %d characters long; the %s must be at least %d (e.g. the output of `openssl rand -hex 32`)",
				k.env, len(k.value), k.name, keyCharsMin)
		default:
			log.Warn("the "+k.name+" is short: replace it with a longer one (delete the file to have a new one generated on the next start, or set "+k.env+")",
				"file", k.from, "length", len(k.value), "min_length", keyCharsMin)
		}
	}
	if len(ks.session.value) < app.SessionKeyBytesMin {
		return ks, fmt.Errorf("the session secret (%s) must be at least %d characters", ks.session.from, app.SessionKeyBytesMin)
	}
	all := []serverKey{ks.admin, ks.worker, ks.session}
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.value == b.value {
				return ks, fmt.Errorf("the %s (%s) and the %s (%s) are the same key; every key must be different "+
					"(a worker key equal to the admin key would give workers admin rights)", a.name, a.from, b.name, b.from)
			}
		}
	}
	return ks, nil
}

// loadKey returns the key from env, or the key stored in the data
// directory, generating and storing it on first start (prefix and random
// text, at least keyCharsMin characters).
func loadKey(data, name, env, file, prefix string) (serverKey, error) {
	if k := os.Getenv(env); k != "" {
		return serverKey{name: name, env: env, value: k, from: env, set: true}, nil
	}
	path := filepath.Join(data, file)
	k := serverKey{name: name, env: env, from: path}
	b, err := os.ReadFile(path)
	if err == nil {
		k.value = strings.TrimSpace(string(b))
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	k.value = prefix
	for len(k.value) < keyCharsMin {
		k.value += rand.Text()
	}
	if err := os.WriteFile(path, []byte(k.value+"\n"), 0o600); err != nil {
		return k, err
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
func builtinMemoryFlag(c *command, name string) *int64 {
	return c.int64Env(name, "CREDITD_BUILTIN_WORKER_MEMORY_BYTES", worker.DefaultBuiltinMemoryBytes,
		"memory budget of the built-in image worker, in bytes: jobs wait until the images they need fit in it")
}

// envInt is the integer in the environment variable name, or def when it
// is unset or not an integer.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
