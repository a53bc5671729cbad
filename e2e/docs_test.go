package e2e

// The curl tour (docs/tour.md) runs as written: its shell blocks, in
// order, in bash, against a real `creditd serve --test-clock` whose data
// directory is ./data, from a directory that looks like the repository's
// root (go run ./examples/worker and go build ./cmd/creditd work there).

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
)

// shellBlocks are the ```sh blocks of a Markdown file; with a heading,
// only those of that "## " section.
func shellBlocks(t *testing.T, path, heading string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur *strings.Builder
	in := heading == ""
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok && cur == nil && heading != "" {
			in = h == heading
		}
		switch {
		case !in:
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = new(strings.Builder)
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks
}

func TestDocsTourRunsAsWritten(t *testing.T) {
	runTour(t, "../docs/tour.md", "", []string{
		`"available":45`,                       // a new account: 30 + 15
		`"status":"captured"`,                  // 3 of 4 delivered
		`"status":"released"`,                  // a failed job
		`"code":"insufficient_credits"`,        // video without purchased credits
		`"reference":"order-42"`,               // the purchase
		`"code":"method_not_allowed"`,          // the 405 example
		`succeeded with 3 outputs, charged 15`, // the example worker
		`"charged":15`,                         // the job
		`"action":"crop"`,                      // the crop job
		`"status":"cancelled"`,                 // the cancelled job
		`/app/login?token=`,                    // a sign-in link
		`event: balance`,                       // the user's event stream
		`verified 2 accounts`,                  // creditd verify: alice and bob
		`"expires_at": "2030-12-31T23:00:00Z"`, // the CLI's grant
	})
}

func TestReadmeTourRunsAsWritten(t *testing.T) {
	runTour(t, "../README.md", "A ten-line tour", []string{
		`"affordable":true`,
		`succeeded with 3 outputs, charged 15`,
		`"available":30`,
		`"type":"capture","amount":15`,
	})
}

// runTour runs the shell blocks of a tour and requires each of want in
// their output. The first block must be the command that starts the
// server; the test starts it itself.
func runTour(t *testing.T, path, heading string, want []string) {
	if testing.Short() {
		t.Skip("runs a server, the example worker and go build")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	blocks := shellBlocks(t, path, heading)
	if len(blocks) < 2 || !strings.HasPrefix(blocks[0], "go run ./cmd/creditd serve --test-clock\n") {
		t.Fatalf("%s: want the serve command first, then the tour; found %d blocks:\n%s", path, len(blocks), strings.Join(blocks, "\n---\n"))
	}
	// A directory that looks like the repository's root, with the
	// server's data directory in ./data.
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "data" && n != "creditd" && !strings.HasPrefix(n, ".") {
			if err := os.Symlink(filepath.Join(root, n), filepath.Join(dir, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	// The keys the server would generate into ./data (the test's own, so
	// that its helpers can use them too).
	for name, key := range map[string]string{"admin.key": adminKey, "worker.key": workerKey} {
		if err := os.WriteFile(filepath.Join(data, name), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := launchIn(t, data, []string{"--test-clock"})
	now, err := time.Parse(time.RFC3339Nano, s.admin(200, "GET", "/v1/test-clock", nil).str("now"))
	if err != nil {
		t.Fatal(err)
	}
	s.admin(200, "POST", "/v1/test-clock", map[string]any{"now": clockStart(now)})

	// The tour as written, but for the server's address; the live event
	// stream (which a reader ends with Ctrl-C) ends after 2 s.
	script := "set -euo pipefail\n" +
		"curl() { if [ \"$1\" = -sN ]; then command curl --max-time 2 \"$@\" || [ $? = 28 ]; else command curl \"$@\"; fi; }\n" +
		strings.ReplaceAll(strings.Join(blocks[1:], "\n"), "http://127.0.0.1:8080", s.url)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CREDITD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "CREDITD_URL="+s.url) // the CLI's server, as the tour's own server would be the default
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: the tour failed (%v):\n%s", path, err, out.String())
	}
	got := out.String()
	for _, want := range want {
		if !strings.Contains(got, want) {
			t.Errorf("%s: the tour's output lacks %s:\n%s", path, want, got)
		}
	}
	if strings.Contains(got, `"code":"internal`) || strings.Contains(got, "invalid_request") {
		t.Errorf("%s: the tour met an error it does not expect:\n%s", path, got)
	}
}

// TestDocsLinksResolve: every relative link of the README, docs/ and the
// example worker's README names a file that exists and, with #anchor, one
// of its headings (GitHub's slugs).
func TestDocsLinksResolve(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../README.md", "../examples/worker/README.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	anchors := map[string]map[string]bool{}
	headingsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		a := map[string]bool{}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		inCode := false
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "```") {
				inCode = !inCode
			}
			if h, ok := strings.CutPrefix(line, "#"); ok && !inCode {
				a[slug(strings.TrimLeft(h, "#"))] = true
			}
		}
		anchors[path] = a
		return a
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := f
			if file != "" {
				path = filepath.Join(filepath.Dir(f), file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %s: %v", f, target, err)
				continue
			}
			if anchor != "" && strings.HasSuffix(path, ".md") && !headingsOf(path)[anchor] {
				t.Errorf("%s: link %s: %s has no heading #%s", f, target, path, anchor)
			}
		}
	}
}

// slug is GitHub's anchor for a heading: lower case, spaces to hyphens,
// punctuation other than hyphens and underscores dropped.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
