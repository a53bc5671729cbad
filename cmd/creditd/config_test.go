package main

// Tests that a config is checked whole before serve starts: a broken one
// stops the real binary with one message naming every problem, and every
// config example in the docs loads as serve loads it.

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/worker"
)

// TestServeRefusesBrokenConfig starts `creditd serve --config` with
// configs that are each wrong in one way, and one wrong in several: it
// exits 1 before opening the data directory's database, saying what is
// wrong and how to fix it.
func TestServeRefusesBrokenConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	generateOnly := `{"prices": [{"action": "generate", "category": "image", "unit_credits": 6}]}`
	for _, c := range []struct {
		name, config string
		builtin      string
		want         []string
	}{
		{"BuiltinActionsUnpriced", generateOnly, "2",
			[]string{"prices lacks crop, upscale, expand, adjust, filter, which the built-in worker serves: add them", "or start with --builtin-worker 0"}},
		{"UnknownKey", `{"daily_credit": 20}`, "0", []string{`unknown field "daily_credit"`}},
		{"UnknownAction", `{"prices": [{"action": "teleport", "category": "image", "unit_credits": 5}]}`, "0",
			[]string{`prices: unknown action "teleport": use one of generate, edit,`}},
		{"ZeroPrice", `{"prices": [{"action": "generate", "category": "image", "unit_credits": 0}]}`, "0",
			[]string{`prices: "generate" costs 0 credits: unit_credits must be 1..1000000`}},
		{"SourceWithoutCategory", `{"sources": [
			{"source": "daily", "categories": [], "rank": 0},
			{"source": "promo", "categories": ["image"], "rank": 1, "grantable": true},
			{"source": "signup", "categories": ["image"], "rank": 2},
			{"source": "admin", "categories": ["image", "video"], "rank": 3, "grantable": true},
			{"source": "purchase", "categories": ["image", "video"], "rank": 4, "grantable": true}]}`, "0",
			[]string{`sources: "daily" pays for no category: give it "categories"`}},
		{"UnknownAndMissingSources", `{"sources": [{"source": "gift", "categories": ["image"], "rank": 0}]}`, "0",
			[]string{"has 2 problems", `sources: unknown source "gift"`, "sources lacks signup, daily, purchase, promo, admin"}},
		{"LimitOutOfRange", `{"limits": {"job_queue_seconds_max": 0}}`, "0",
			[]string{"limits: job_queue_seconds_max must be between 1 and hold_ttl_seconds_max"}},
		{"EverythingAtOnce", `{"prices": [{"action": "generate", "category": "image", "unit_credits": -1}], "daily_credits": -5}`, "1",
			[]string{"has 3 problems", `"generate" costs -1 credits`, "prices lacks crop", "daily_credits must be 0 or more"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := t.TempDir()
			cfg := filepath.Join(t.TempDir(), "broken.json")
			if err := os.WriteFile(cfg, []byte(c.config), 0o600); err != nil {
				t.Fatal(err)
			}
			_, errOut := wantCLI(t, 1, nil, "serve", "--addr", "127.0.0.1:0", "--data", data, "--builtin-worker", c.builtin, "--config", cfg)
			for _, w := range append(c.want, "config "+cfg) {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not say %q:\n%s", w, errOut)
				}
			}
			if _, err := os.Stat(filepath.Join(data, dbFileName)); !os.IsNotExist(err) {
				t.Errorf("a refused start opened the database (%v)", err)
			}
		})
	}
	// The same generate-only config starts without the built-in worker.
	t.Run("BuiltinOffNeedsNoImagePrices", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "generate.json")
		if err := os.WriteFile(cfg, []byte(generateOnly), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ledger.LoadConfig(cfg); err != nil {
			t.Fatalf("without the built-in worker's check: %v", err)
		}
	})
}

// TestDocsConfigExamplesLoad loads every config example of the docs as
// `creditd serve` (with its built-in worker) would. A config example is
// a fenced json block in README.md or a .md file under docs/ whose object has a top-level
// key of the config; the test finds them itself, so an example added
// later is checked too.
func TestDocsConfigExamplesLoad(t *testing.T) {
	keys := configKeys()
	files := []string{"../../README.md"}
	err := filepath.WalkDir("../../docs", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```json\\s*\\n(.*?)\\n```")
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllSubmatch(b, -1) {
			var obj map[string]json.RawMessage
			if json.Unmarshal(m[1], &obj) != nil || !hasAny(obj, keys) {
				continue
			}
			found++
			path := filepath.Join(t.TempDir(), "example.json")
			if err := os.WriteFile(path, m[1], 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := ledger.LoadConfig(path, worker.BuiltinConfigProblems); err != nil {
				t.Errorf("%s: config example does not load: %v\n%s", f, err, m[1])
			}
		}
	}
	if found == 0 {
		t.Fatal("no config example found in README.md or docs/")
	}
}

// configKeys are the top-level JSON keys of ledger.Config.
func configKeys() []string {
	var keys []string
	rt := reflect.TypeFor[ledger.Config]()
	for i := range rt.NumField() {
		if name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

func hasAny(obj map[string]json.RawMessage, keys []string) bool {
	for _, k := range keys {
		if _, ok := obj[k]; ok {
			return true
		}
	}
	return false
}
