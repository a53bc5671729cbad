package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/creditd/creditd/httpapi"
)

// uploaded uploads an image through the Create page and returns its id.
func (u *user) uploaded(png []byte) string {
	u.e.t.Helper()
	p := u.upload(png, "crop")
	loc, err := url.Parse(p.location)
	if p.status != http.StatusOK || err != nil || loc.Query().Get("source") == "" {
		u.e.t.Fatalf("upload: %d %s\n%s", p.status, p.location, p.body)
	}
	return loc.Query().Get("source")
}

// TestGalleryDelete: the Gallery lists uploads with their budget and
// results, each with a Delete button (a POST with the session's CSRF
// token); an image a running job uses stays, with a message saying why.
func TestGalleryDelete(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	e.account("bob")
	u := e.signIn("alice")
	src := u.uploaded(pngImage(20, 10))
	other := u.uploaded(pngImage(8, 8))

	must(t, u.get("/app/gallery?show=uploads"), 200, "2 of 1000 uploads", `action="/app/assets/`+src+`/delete"`, `action="/app/assets/`+other+`/delete"`, "Your uploads")
	must(t, u.get("/app/gallery"), 200, "No results yet")

	t.Run("InUseIsRefusedReadably", func(t *testing.T) {
		job := u.post("/app/jobs", url.Values{"action": {"crop"}, "source": {src}, "x": {"0"}, "y": {"0"}, "width": {"5"}, "height": {"5"}}).location
		if !strings.HasPrefix(job, "/app/jobs/") {
			t.Fatalf("start: %q", job)
		}
		must(t, u.post("/app/assets/"+src+"/delete", url.Values{}), http.StatusConflict,
			"used by a job that hasn&#39;t finished yet", "2 of 1000 uploads")
		must(t, u.get("/app/assets/"+src), 200)
		u.post(job+"/cancel", url.Values{})
	})
	t.Run("DeleteNeedsTheSessionsToken", func(t *testing.T) {
		must(t, u.post("/app/assets/"+src+"/delete", url.Values{"csrf": {"forged"}}), http.StatusForbidden)
		must(t, u.get("/app/assets/"+src), 200)
	})
	t.Run("OthersCannotDelete", func(t *testing.T) {
		bob := e.signIn("bob")
		must(t, bob.post("/app/assets/"+src+"/delete", url.Values{}), http.StatusNotFound)
		must(t, u.get("/app/assets/"+src), 200)
	})
	t.Run("DeleteFreesTheBudget", func(t *testing.T) {
		p := u.post("/app/assets/"+src+"/delete", url.Values{})
		if p.status != http.StatusOK || p.location != "/app/gallery?notice=deleted&show=uploads" {
			t.Fatalf("delete: %d %q\n%s", p.status, p.location, p.body)
		}
		page := must(t, u.get(p.location), 200, "Image deleted.", "1 of 1000 uploads")
		if strings.Contains(page.body, src) {
			t.Fatal("the deleted upload is still listed")
		}
		must(t, u.get("/app/assets/"+src), http.StatusNotFound)
	})
}

// TestUploadOverBudgetIsExplained: on the Create page, an upload over the
// account's budget is refused with the API's status and a message, and
// one over the rate says when to try again.
func TestUploadOverBudgetIsExplained(t *testing.T) {
	e := newEnv(t, func(api *httpapi.Server) {
		l := &api.App.Config().Limits
		l.AssetsPerAccountMax, l.AssetUploadsPerMinutePerAccount = 1, 2
	})
	e.account("alice")
	u := e.signIn("alice")
	u.uploaded(pngImage(8, 8))
	must(t, u.upload(pngImage(8, 8), "crop"), http.StatusForbidden, "Your uploads are full (at most 1 images, 512 MB in all)")
	p := must(t, u.upload(pngImage(8, 8), "crop"), http.StatusTooManyRequests, "at most 2 uploads per minute")
	if p.posted.header.Get("Retry-After") != "30" {
		t.Errorf("Retry-After %q, want 30", p.posted.header.Get("Retry-After"))
	}
}
