package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrowserUndeliveredOutputs (issue 20, item 1): in a real browser
// against `creditd serve`, a job whose worker uploaded 2 images and then
// failed shows no results and the Gallery none of its images, which the
// browser cannot fetch; of a job completed with 1 of 2 uploads, the
// Gallery shows exactly the one delivered and charged.
func TestBrowserUndeliveredOutputs(t *testing.T) {
	browser := newBrowser(t)
	s := startServer(t, "--builtin-worker", "0")
	s.admin(201, "PUT", "/v1/accounts/dora", map[string]any{})

	failed := s.createJob("dora", "generate", 2, map[string]any{"prompt": "two owls"}).str("id")
	job, lease := s.lease("generate")
	if job != failed {
		t.Fatalf("leased %s, want %s", job, failed)
	}
	hidden := []string{s.uploadOutput(job, lease), s.uploadOutput(job, lease)}
	s.worker(200, "POST", "/v1/worker/jobs/"+job+"/fail", map[string]any{"lease_id": lease, "error": "the model crashed"})

	partial := s.createJob("dora", "generate", 2, map[string]any{"prompt": "two cats"}).str("id")
	job, lease = s.lease("generate")
	delivered, extra := s.uploadOutput(job, lease), s.uploadOutput(job, lease)
	hidden = append(hidden, extra)
	done := s.worker(200, "POST", "/v1/worker/jobs/"+job+"/complete", map[string]any{"lease_id": lease, "outputs": []string{delivered}})
	if done.num("charged") != 5 || job != partial {
		t.Fatalf("partial job: %s", done.raw)
	}
	s.wantBalance("dora", 40, 0)

	tab := newTab(t, browser)
	tab.signIn(s.loginLink("dora"))
	tab.open(s.url + "/app/gallery")
	tab.waitFor("one result in the gallery", `document.querySelectorAll(".gallery img").length === 1`, 5*time.Second)
	if got := tab.eval(`document.querySelector(".gallery img").getAttribute("src")`); got != "/app/assets/"+delivered {
		t.Errorf("the gallery shows %s, want the delivered result %s", got, delivered)
	}
	tab.screenshot("gallery-delivered-only")
	for _, id := range hidden {
		if got := tab.fetchStatus("/app/assets/" + id + "?download=1"); !strings.HasPrefix(got, "404") {
			t.Errorf("an undelivered output downloads: %s", got)
		}
	}
	if got := tab.fetchStatus("/app/assets/" + delivered + "?download=1"); got != "200 image/png" {
		t.Errorf("the delivered result: %s", got)
	}
	tab.open(s.url + "/app/jobs/" + failed)
	tab.waitFor("the failed job's page", `document.querySelector("#results-h") !== null`, 5*time.Second)
	if got := tab.eval(`document.querySelectorAll(".results img").length`); got != "0" {
		t.Errorf("the failed job's page shows %s images", got)
	}
	if got := tab.text(`[aria-labelledby="results-h"] .empty`); !strings.Contains(got, "No results") {
		t.Errorf("the failed job's results read %q", got)
	}
	// The sweep deletes their bytes; the delivered result keeps its own.
	blobFile := func(id string) bool {
		_, err := os.Stat(filepath.Join(s.data, "assets", id))
		return err == nil
	}
	if !blobFile(hidden[0]) {
		t.Fatalf("no file for output %s before the sweep: the check below could not fail", hidden[0])
	}
	s.advance(0)
	for _, id := range hidden {
		if blobFile(id) {
			t.Errorf("the bytes of undelivered output %s are still on disk after the sweep", id)
		}
	}
	if !blobFile(delivered) {
		t.Errorf("the sweep deleted the delivered result's bytes")
	}
}
