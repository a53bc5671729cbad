package main

// Help test: every command of the built binary answers --help and -h on
// stdout with exit 0, with its usage, exactly its own flags and the
// environment variables it reads; and every CREDITD_* variable the code
// reads is named by some command's help.

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	helpFlagLine = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	helpEnvLine  = regexp.MustCompile(`(?m)^  ([A-Z][A-Z0-9_]+)$`)
)

// helpSections splits a command's help into its flags and its variables.
func helpSections(t *testing.T, out string) (flags, env []string) {
	t.Helper()
	flagPart, envPart := out, ""
	if i := strings.Index(out, "\nenvironment"); i >= 0 {
		flagPart, envPart = out[:i], out[i:]
	}
	for _, m := range helpFlagLine.FindAllStringSubmatch(flagPart, -1) {
		flags = append(flags, m[1])
	}
	for _, m := range helpEnvLine.FindAllStringSubmatch(envPart, -1) {
		env = append(env, m[1])
	}
	slices.Sort(flags)
	slices.Sort(env)
	return flags, env
}

// helpCases are every command and sub-command with the flags and the
// environment variables it takes.
func helpCases() []struct {
	args       []string
	flags, env []string
} {
	client := []string{"data", "key", "server"}
	clientEnv := []string{"CREDITD_ADMIN_KEY", "CREDITD_DATA", "CREDITD_URL"}
	with := func(a []string, more ...string) []string { return append(slices.Clone(a), more...) }
	return []struct {
		args       []string
		flags, env []string
	}{
		{[]string{"serve"}, []string{
			"addr", "builtin-worker", "builtin-worker-memory-bytes", "committers", "config", "data", "db", "db-max-conns",
			"debug-addr", "demo", "log-level", "packs", "ready-probe-interval", "signin-url", "stripe-api-base", "stripe-cancel-url", "stripe-paid-price-ids",
			"stripe-secret-key", "stripe-success-url", "stripe-webhook-secret", "stripe-webhook-tolerance", "support-url",
			"test-clock", "trusted-proxies", "webhooks-allow-private-urls",
		}, []string{
			"CREDITD_ADDR", "CREDITD_ADMIN_KEY", "CREDITD_BUILTIN_WORKER_MEMORY_BYTES", "CREDITD_COMMITTERS", "CREDITD_CONFIG",
			"CREDITD_DATA", "CREDITD_DATABASE_URL", "CREDITD_DB_MAX_CONNS", "CREDITD_DEBUG_ADDR", "CREDITD_LOG_LEVEL",
			"CREDITD_PACKS", "CREDITD_PUBLIC_URL", "CREDITD_READY_PROBE_INTERVAL", "CREDITD_SESSION_SECRET", "CREDITD_SIGNIN_URL", "CREDITD_STRIPE_API_BASE",
			"CREDITD_STRIPE_CANCEL_URL", "CREDITD_STRIPE_PAID_PRICE_IDS", "CREDITD_STRIPE_SECRET_KEY",
			"CREDITD_STRIPE_SUCCESS_URL", "CREDITD_STRIPE_WEBHOOK_SECRET", "CREDITD_STRIPE_WEBHOOK_TOLERANCE",
			"CREDITD_SUPPORT_URL", "CREDITD_TRUSTED_PROXIES", "CREDITD_WEBHOOKS_ALLOW_PRIVATE_URLS", "CREDITD_WORKER_KEY", "GOGC", "GOMEMLIMIT",
		}},
		{[]string{"migrate"}, []string{"db"}, []string{"CREDITD_DATABASE_URL"}},
		{[]string{"verify"}, []string{"config", "data", "db", "json"}, []string{"CREDITD_CONFIG", "CREDITD_DATA", "CREDITD_DATABASE_URL"}},
		{[]string{"bench"}, []string{
			"accounts", "batch-ops", "batch-workers", "client", "concurrency", "cpuprofile", "db", "dir", "duration", "hot",
			"json", "keep", "latency", "naive-pg-conns", "quiet", "rate", "rounds", "settings", "trace", "warmup",
		}, []string{"CREDITD_DEBUG_ADDR"}},
		{[]string{"worker"}, []string{"actions", "concurrency", "data", "key", "log-level", "memory-bytes", "server"},
			[]string{"CREDITD_BUILTIN_WORKER_MEMORY_BYTES", "CREDITD_DATA", "CREDITD_LOG_LEVEL", "CREDITD_URL", "CREDITD_WORKER_KEY"}},
		{[]string{"account", "get"}, client, clientEnv},
		{[]string{"account", "put"}, with(client, "plan", "timezone"), clientEnv},
		{[]string{"grant"}, with(client, "amount", "expires-at", "reference", "source"), clientEnv},
		{[]string{"balance"}, client, clientEnv},
		{[]string{"entries"}, with(client, "cursor", "limit"), clientEnv},
		{[]string{"backup"}, with(client, "from-data", "out"), clientEnv},
		{[]string{"restore"}, []string{"data", "in"}, nil},
	}
}

func TestHelp(t *testing.T) {
	// Secrets in the environment must never show up as a flag's default.
	secrets := []string{
		"CREDITD_ADMIN_KEY=sk_admin_help_test_secret_0123456789abcdef",
		"CREDITD_WORKER_KEY=sk_worker_help_test_secret_0123456789abcdef",
		"CREDITD_STRIPE_SECRET_KEY=sk_test_help_test_secret",
		"CREDITD_STRIPE_WEBHOOK_SECRET=whsec_help_test_secret",
	}
	top, _ := wantCLI(t, 0, nil, "--help")
	for _, c := range helpCases() {
		name := strings.Join(c.args, " ")
		if !strings.Contains(top, "creditd "+c.args[0]) {
			t.Errorf("creditd --help does not list %q:\n%s", c.args[0], top)
		}
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			var first string
			for _, args := range [][]string{
				append(slices.Clone(c.args), "--help"),
				append(slices.Clone(c.args), "-h"),
				append([]string{"help"}, c.args...),
			} {
				out, errOut := wantCLI(t, 0, secrets, args...)
				if errOut != "" {
					t.Errorf("creditd %s: stderr %q", strings.Join(args, " "), errOut)
				}
				if first == "" {
					first = out
				} else if out != first {
					t.Errorf("creditd %s differs from creditd %s --help:\n%s", strings.Join(args, " "), name, out)
				}
			}
			if !strings.HasPrefix(first, "usage: creditd "+name+" ") {
				t.Errorf("help does not start with its usage line:\n%s", first)
			}
			flags, env := helpSections(t, first)
			if want := slices.Sorted(slices.Values(c.flags)); !slices.Equal(flags, want) {
				t.Errorf("flags %v, want %v:\n%s", flags, want, first)
			}
			if want := slices.Sorted(slices.Values(c.env)); !slices.Equal(env, want) {
				t.Errorf("environment %v, want %v:\n%s", env, want, first)
			}
			for _, s := range secrets {
				if strings.Contains(first, s[strings.Index(s, "=")+1:]) {
					t.Errorf("help shows the secret of %s", s)
				}
			}
			if c.args[0] == "serve" {
				// The configuration reference documents each of them.
				doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range flags {
					if !strings.Contains(string(doc), "`--"+f+"`") {
						t.Errorf("docs/configuration.md does not document serve's --%s", f)
					}
				}
				for _, e := range env {
					if !strings.Contains(string(doc), "`"+e+"`") {
						t.Errorf("docs/configuration.md does not document %s", e)
					}
				}
			}
			if strings.Contains(strings.ToLower(first), "issue") {
				t.Errorf("help speaks of an issue (internal jargon):\n%s", first)
			}
		})
	}

	// account alone: its two sub-commands, exit 0 when asked, 2 when not.
	for _, args := range [][]string{{"account", "--help"}, {"account", "-h"}, {"help", "account"}} {
		out, _ := wantCLI(t, 0, nil, args...)
		if !strings.Contains(out, "creditd account get ID") || !strings.Contains(out, "creditd account put ID") {
			t.Errorf("creditd %s:\n%s", strings.Join(args, " "), out)
		}
	}
	if _, errOut := wantCLI(t, 2, nil, "account"); !strings.Contains(errOut, "creditd account get ID") {
		t.Errorf("creditd account: stderr %q", errOut)
	}
	// A flag of another command is refused, with the help on stderr.
	out, errOut := wantCLI(t, 2, nil, "account", "get", "x", "--plan", "paid")
	if out != "" || !strings.Contains(errOut, "flag provided but not defined: -plan") || !strings.Contains(errOut, "usage: creditd account get ID") {
		t.Errorf("account get --plan: stdout %q stderr %q", out, errOut)
	}
}

// TestHelpNamesEveryVariable: each CREDITD_* variable the code reads
// (outside tests) is listed by the help of some command.
func TestHelpNamesEveryVariable(t *testing.T) {
	listed := map[string]bool{}
	for _, c := range helpCases() {
		out, _ := wantCLI(t, 0, nil, append(c.args, "--help")...)
		_, env := helpSections(t, out)
		for _, e := range env {
			listed[e] = true
		}
	}
	name := regexp.MustCompile(`"(CREDITD_[A-Z0-9_]+)`)
	read := map[string]string{}
	err := filepath.WalkDir(filepath.Join("..", ".."), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && d.Name() != "." && d.Name() != "..") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range name.FindAllStringSubmatch(string(b), -1) {
			read[m[1]] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(read) < 10 {
		t.Fatalf("found only %d variables in the source: %v", len(read), read)
	}
	for v, path := range read {
		// Test set-up: how the test suites find PostgreSQL and CI.
		if strings.HasPrefix(v, "CREDITD_TEST_") || v == "CREDITD_CI" {
			continue
		}
		if !listed[v] {
			t.Errorf("%s (read in %s) is listed by no command's --help", v, path)
		}
	}
}
