package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsDescribeThePresent: the README and docs/ say what creditd is and
// does now; the history of the work lives in git. A phrase that dates the
// text by a work period ("earlier sessions", "last week", "earlier runs") fails,
// and docs/performance.md stays a page of current figures (at most 300
// lines).
func TestDocsDescribeThePresent(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs: %v", err)
	}
	files = append(files, "../../README.md", "../../examples/worker/README.md")
	// "session" alone is the product's web session, so only its diary
	// senses count.
	diary := regexp.MustCompile(`(?i)\b((this|last|previous|earlier|next) (work )?(week|sprint)s?|(this|last|previous|earlier|next) work sessions?|(previous|earlier) sessions?|work[- ]periods?|earlier (runs|weeks|measurements)|runs? of earlier|yesterday)\b`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := diary.FindString(line); m != "" {
				t.Errorf("%s:%d: %q dates the text by a work period; say what is true now:\n%s", f, i+1, m, line)
			}
		}
	}
	perf, err := os.ReadFile("../../docs/performance.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(perf), "\n"); n > 300 {
		t.Errorf("docs/performance.md has %d lines, at most 300: current figures, not their history", n)
	}
}
