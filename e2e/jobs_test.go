package e2e

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"slices"
	"testing"
	"time"
)

// pngBytes encodes an image whose four quadrants are red, green, blue and white.
func quadrants(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, quadrantColor(x, y, w, h))
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func quadrantColor(x, y, w, h int) color.RGBA {
	switch {
	case x < w/2 && y < h/2:
		return color.RGBA{255, 0, 0, 255}
	case x >= w/2 && y < h/2:
		return color.RGBA{0, 255, 0, 255}
	case x < w/2:
		return color.RGBA{0, 0, 255, 255}
	}
	return color.RGBA{255, 255, 255, 255}
}

// uploadOutput uploads an output for a leased job as a worker would.
func (s *server) uploadOutput(jobID, leaseID string) string {
	s.t.Helper()
	r := s.req(workerKey, "POST", "/v1/worker/jobs/"+jobID+"/outputs?lease_id="+leaseID, quadrants(8, 8), "image/png")
	if r.status != 201 {
		s.t.Fatalf("upload output: %d %s", r.status, r.raw)
	}
	return r.str("id")
}

// heartbeat extends a lease as the test-driven worker.
func (s *server) heartbeat(jobID, leaseID string) resp {
	s.t.Helper()
	return s.worker(200, "POST", "/v1/worker/jobs/"+jobID+"/heartbeat", map[string]any{"lease_id": leaseID})
}

// deliver uploads one output and completes the job with it, as the
// test-driven worker; it requires 200.
func (s *server) deliver(jobID, leaseID string) resp {
	s.t.Helper()
	out := s.uploadOutput(jobID, leaseID)
	return s.worker(200, "POST", "/v1/worker/jobs/"+jobID+"/complete", map[string]any{"lease_id": leaseID, "outputs": []string{out}})
}

// lease leases the next job of action as the test-driven worker.
func (s *server) lease(action string) (jobID, leaseID string) {
	s.t.Helper()
	r := s.worker(200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{action}, "wait_seconds": 5})
	return r.body["job"].(map[string]any)["id"].(string), r.str("lease_id")
}

func TestJobs(t *testing.T) {
	s := startServer(t, "--builtin-worker", "0")
	newAccount := func(id string) {
		s.admin(201, "PUT", "/v1/accounts/"+id, map[string]any{})
		s.wantBalance(id, 45, 0)
	}

	t.Run("SucceedsAndIsCharged", func(t *testing.T) {
		newAccount("ok")
		j := s.createJob("ok", "generate", 1, map[string]any{"prompt": "a red fox", "color": "#cc3300"})
		if j.str("status") != "queued" || j.num("cost") != 5 {
			t.Fatalf("%s", j.raw)
		}
		s.wantBalance("ok", 40, 5)
		w := s.exampleWorker(t, "--once")
		w.wait(t, 30*time.Second)
		done := s.waitStatus(j.str("id"), "succeeded")
		if done.num("charged") != 5 || len(done.body["outputs"].([]any)) != 1 {
			t.Fatalf("%s", done.raw)
		}
		s.wantBalance("ok", 40, 0)
		if got := s.entryTypes("ok"); got[0] != "capture:5" || got[1] != "hold:5" {
			t.Fatalf("entries %v", got)
		}
		out := done.body["outputs"].([]any)[0].(string)
		a := s.req(adminKey, "GET", "/v1/assets/"+out, nil, "")
		if a.status != 200 || !bytes.HasPrefix(a.raw, []byte("\x89PNG")) {
			t.Fatalf("output download: %d", a.status)
		}
	})

	t.Run("PartialBatchChargesDeliveredOutputsOnly", func(t *testing.T) {
		newAccount("partial")
		j := s.createJob("partial", "generate", 4, map[string]any{"prompt": "four cats"})
		s.wantBalance("partial", 25, 20)
		s.exampleWorker(t, "--once", "--outputs", "3").wait(t, 30*time.Second)
		done := s.waitStatus(j.str("id"), "succeeded")
		if done.num("charged") != 15 || len(done.body["outputs"].([]any)) != 3 {
			t.Fatalf("%s", done.raw)
		}
		s.wantBalance("partial", 30, 0)
	})

	t.Run("RetryableFailureRetriesThenCostsNothing", func(t *testing.T) {
		newAccount("retry")
		j := s.createJob("retry", "generate", 1, map[string]any{"prompt": "fail, retry please"})
		w := s.exampleWorker(t)
		done := s.waitStatus(j.str("id"), "failed")
		w.kill9()
		if done.num("attempts") != 3 || done.num("charged") != 0 {
			t.Fatalf("%s", done.raw)
		}
		s.wantBalance("retry", 45, 0)
		if got := s.entryTypes("retry"); got[0] != "release:5" {
			t.Fatalf("entries %v", got)
		}
	})

	t.Run("FinalFailureCostsNothing", func(t *testing.T) {
		newAccount("final")
		j := s.createJob("final", "generate", 2, map[string]any{"prompt": "fail hard"})
		s.exampleWorker(t, "--once").wait(t, 30*time.Second)
		done := s.waitStatus(j.str("id"), "failed")
		if done.num("attempts") != 1 {
			t.Fatalf("%s", done.raw)
		}
		s.wantBalance("final", 45, 0)
		// The user's retry is a new job, charged only if it succeeds.
		again := s.createJob("final", "generate", 1, map[string]any{"prompt": "a calm sea"})
		s.exampleWorker(t, "--once").wait(t, 30*time.Second)
		s.waitStatus(again.str("id"), "succeeded")
		s.wantBalance("final", 40, 0)
	})

	t.Run("KilledWorkerRequeuesThenInterruptsWithFullRefund", func(t *testing.T) {
		newAccount("killed")
		j := s.createJob("killed", "generate", 2, map[string]any{"prompt": "slow"})
		id := j.str("id")
		for attempt := int64(1); attempt <= 3; attempt++ {
			w := s.exampleWorker(t, "--delay", "1h")
			s.waitJob(id, "running", func(r resp) bool { return r.str("status") == "running" && r.num("attempts") == attempt })
			w.kill9()
			s.wantBalance("killed", 35, 10) // the hold outlives the dead worker until its lease runs out
			s.advance(31 * time.Second)
			want := "queued"
			if attempt == 3 {
				want = "interrupted"
			}
			if got := s.job(id); got.str("status") != want {
				t.Fatalf("after lease loss %d: %s", attempt, got.raw)
			}
		}
		s.wantBalance("killed", 45, 0)
		if got := s.entryTypes("killed"); got[0] != "release:10" {
			t.Fatalf("entries %v", got)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		newAccount("cancel")
		// A job no connected worker serves waits queued; cancelling is free.
		q := s.createJob("cancel", "redux", 1, map[string]any{"prompt": "x"})
		s.wantBalance("cancel", 40, 5)
		c := s.admin(200, "POST", "/v1/jobs/"+q.str("id")+"/cancel", map[string]any{})
		if c.str("status") != "cancelled" {
			t.Fatalf("%s", c.raw)
		}
		s.wantBalance("cancel", 45, 0)
		// Cancel while running: the worker learns it at its heartbeat and a
		// late result is discarded, not charged.
		r := s.createJob("cancel", "generate", 1, map[string]any{"prompt": "y"})
		jobID, leaseID := s.lease("generate")
		if jobID != r.str("id") {
			t.Fatalf("leased %s", jobID)
		}
		out := s.uploadOutput(jobID, leaseID)
		s.admin(200, "POST", "/v1/jobs/"+jobID+"/cancel", map[string]any{})
		hb := s.worker(200, "POST", "/v1/worker/jobs/"+jobID+"/heartbeat", map[string]any{"lease_id": leaseID})
		if hb.body["cancelled"] != true {
			t.Fatalf("heartbeat after cancel: %s", hb.raw)
		}
		late := s.worker(409, "POST", "/v1/worker/jobs/"+jobID+"/complete", map[string]any{"lease_id": leaseID, "outputs": []string{out}})
		if late.errCode() != "conflict" {
			t.Fatalf("%s", late.raw)
		}
		s.wantBalance("cancel", 45, 0)
		// Cancelling again returns the first outcome.
		s.admin(200, "POST", "/v1/jobs/"+jobID+"/cancel", map[string]any{})
	})

	t.Run("PromptChangeMidGenerationChargesOnce", func(t *testing.T) {
		newAccount("patch")
		j := s.createJob("patch", "generate", 1, map[string]any{"prompt": "a dog"})
		jobID, leaseID := s.lease("generate")
		if jobID != j.str("id") {
			t.Fatal("leased another job")
		}
		p := s.admin(200, "PATCH", "/v1/jobs/"+jobID, map[string]any{"params": map[string]any{"prompt": "a cat"}})
		if p.num("params_version") != 2 || p.str("status") != "running" {
			t.Fatalf("%s", p.raw)
		}
		out := s.uploadOutput(jobID, leaseID)
		// Completing with the old prompt is refused until the worker has heard.
		s.worker(409, "POST", "/v1/worker/jobs/"+jobID+"/complete", map[string]any{"lease_id": leaseID, "outputs": []string{out}})
		hb := s.heartbeat(jobID, leaseID)
		if hb.body["changed"] != true || hb.body["params"].(map[string]any)["prompt"] != "a cat" {
			t.Fatalf("%s", hb.raw)
		}
		if done := s.deliver(jobID, leaseID); done.num("charged") != 5 {
			t.Fatalf("%s", done.raw)
		}
		s.wantBalance("patch", 40, 0)
		n := 0
		for _, e := range s.entryTypes("patch") {
			if e == "capture:5" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d captures", n)
		}
	})

	t.Run("DuplicateCompletionChargesOnce", func(t *testing.T) {
		newAccount("dup")
		s.createJob("dup", "generate", 2, map[string]any{"prompt": "twins"})
		jobID, leaseID := s.lease("generate")
		outs := []string{s.uploadOutput(jobID, leaseID), s.uploadOutput(jobID, leaseID)}
		first := s.worker(200, "POST", "/v1/worker/jobs/"+jobID+"/complete", map[string]any{"lease_id": leaseID, "outputs": outs})
		again := s.worker(200, "POST", "/v1/worker/jobs/"+jobID+"/complete", map[string]any{"lease_id": leaseID, "outputs": outs})
		if string(first.raw) != string(again.raw) {
			t.Fatalf("repeat differs:\n%s\n%s", first.raw, again.raw)
		}
		s.wantBalance("dup", 35, 0)

		// Two workers: the first loses its lease, the second finishes; the
		// first one's late result is refused. One charge.
		s.createJob("dup", "generate", 1, map[string]any{"prompt": "race"})
		jobID, leaseA := s.lease("generate")
		outA := s.uploadOutput(jobID, leaseA)
		s.advance(31 * time.Second)
		jobB, leaseB := s.lease("generate")
		if jobB != jobID {
			t.Fatal("requeued job not leased again")
		}
		outB := s.uploadOutput(jobID, leaseB)
		s.worker(200, "POST", "/v1/worker/jobs/"+jobID+"/complete", map[string]any{"lease_id": leaseB, "outputs": []string{outB}})
		s.worker(409, "POST", "/v1/worker/jobs/"+jobID+"/complete", map[string]any{"lease_id": leaseA, "outputs": []string{outA}})
		s.wantBalance("dup", 30, 0)
	})

	t.Run("ZeroBalanceRefusesButDownloadsWork", func(t *testing.T) {
		newAccount("broke")
		j := s.createJob("broke", "generate", 9, map[string]any{"prompt": "everything"})
		s.exampleWorker(t, "--once").wait(t, 30*time.Second)
		done := s.waitStatus(j.str("id"), "succeeded")
		s.wantBalance("broke", 0, 0)
		jobsBefore := len(s.admin(200, "GET", "/v1/accounts/broke/jobs", nil).body["data"].([]any))
		r := s.admin(402, "POST", "/v1/jobs", map[string]any{"account_id": "broke", "action": "generate", "params": map[string]any{"prompt": "more"}})
		if r.errCode() != "insufficient_credits" {
			t.Fatalf("%s", r.raw)
		}
		if got := len(s.admin(200, "GET", "/v1/accounts/broke/jobs", nil).body["data"].([]any)); got != jobsBefore {
			t.Fatalf("a refused job was queued: %d jobs, had %d", got, jobsBefore)
		}
		for _, o := range done.body["outputs"].([]any) {
			a := s.req(adminKey, "GET", "/v1/assets/"+o.(string), nil, "")
			if a.status != 200 || !bytes.HasPrefix(a.raw, []byte("\x89PNG")) {
				t.Fatalf("download at zero balance: %d", a.status)
			}
		}
	})
	s.verify()
}

func TestUploadCropUpscale(t *testing.T) {
	s := startServer(t, "--builtin-worker", "0")
	s.builtinWorker(t, "--concurrency", "1")
	s.admin(201, "PUT", "/v1/accounts/img", map[string]any{})
	src := quadrants(40, 30)
	up := s.req(adminKey, "POST", "/v1/accounts/img/assets", src, "image/png")
	if up.status != 201 || up.num("width") != 40 || up.num("height") != 30 || up.str("kind") != "upload" {
		t.Fatalf("upload: %d %s", up.status, up.raw)
	}
	// Crop the right half of the bottom row band: x 16..36, y 10..20.
	crop := s.createJob("img", "crop", 1, map[string]any{"source": up.str("id"), "x": 16, "y": 10, "width": 20, "height": 10})
	cropped := s.waitStatus(crop.str("id"), "succeeded")
	cropID := cropped.body["outputs"].([]any)[0].(string)
	img := s.decodeAsset(cropID)
	if b := img.Bounds(); b.Dx() != 20 || b.Dy() != 10 {
		t.Fatalf("crop is %v", b)
	}
	for _, pt := range [][2]int{{0, 0}, {3, 4}, {4, 4}, {19, 9}, {10, 5}} {
		want := quadrantColor(16+pt[0], 10+pt[1], 40, 30)
		if got := color.RGBAModel.Convert(img.At(pt[0], pt[1])).(color.RGBA); got != want {
			t.Fatalf("crop pixel %v = %v, want %v", pt, got, want)
		}
	}
	s.wantBalance("img", 40, 0)

	up2 := s.createJob("img", "upscale", 1, map[string]any{"source": cropID, "factor": 2})
	scaled := s.waitStatus(up2.str("id"), "succeeded")
	big := s.decodeAsset(scaled.body["outputs"].([]any)[0].(string))
	if b := big.Bounds(); b.Dx() != 40 || b.Dy() != 20 {
		t.Fatalf("upscale is %v", b)
	}
	// Quadrant centres keep their colours after a high-quality resize.
	for _, pt := range [][2]int{{3, 3}, {30, 5}, {3, 16}, {30, 16}} {
		want := quadrantColor(16+pt[0]/2, 10+pt[1]/2, 40, 30)
		got := color.RGBAModel.Convert(big.At(pt[0], pt[1])).(color.RGBA)
		if diff(got.R, want.R) > 8 || diff(got.G, want.G) > 8 || diff(got.B, want.B) > 8 {
			t.Fatalf("upscaled pixel %v = %v, want ≈%v", pt, got, want)
		}
	}
	s.wantBalance("img", 35, 0)

	// Invalid params are refused at submission and cost nothing.
	bad := s.admin(400, "POST", "/v1/jobs", map[string]any{"account_id": "img", "action": "upscale", "params": map[string]any{"source": cropID, "factor": 3}})
	if bad.errCode() != "invalid_request" {
		t.Fatalf("%s", bad.raw)
	}
	// A crop outside the image, or of all of it, is refused at submission
	// (the source's size is known): nothing is held or charged.
	for _, p := range []map[string]any{
		{"source": up.str("id"), "x": 30, "y": 0, "width": 20, "height": 10},
		{"source": up.str("id"), "x": 0, "y": 0, "width": 40, "height": 30},
	} {
		off := s.admin(400, "POST", "/v1/jobs", map[string]any{"account_id": "img", "action": "crop", "params": p})
		if off.errCode() != "invalid_request" {
			t.Fatalf("%s", off.raw)
		}
	}
	s.wantBalance("img", 35, 0)
	// Not an image; unsupported format.
	if r := s.req(adminKey, "POST", "/v1/accounts/img/assets", []byte("hello"), "image/png"); r.status != 400 {
		t.Fatalf("non-image upload: %d %s", r.status, r.raw)
	}
	gif := []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")
	if r := s.req(adminKey, "POST", "/v1/accounts/img/assets", gif, "image/gif"); r.status != 400 {
		t.Fatalf("gif upload: %d %s", r.status, r.raw)
	}
	list := s.admin(200, "GET", "/v1/accounts/img/assets", nil)
	kinds := []string{}
	for _, a := range list.body["data"].([]any) {
		kinds = append(kinds, a.(map[string]any)["kind"].(string))
	}
	if !slices.Equal(kinds, []string{"output", "output", "upload"}) {
		t.Fatalf("assets newest first: %v", kinds)
	}
	s.verify()
}

func (s *server) decodeAsset(id string) image.Image {
	s.t.Helper()
	r := s.req(adminKey, "GET", "/v1/assets/"+id, nil, "")
	if r.status != 200 {
		s.t.Fatalf("asset %s: %d", id, r.status)
	}
	img, err := png.Decode(bytes.NewReader(r.raw))
	if err != nil {
		s.t.Fatal(err)
	}
	return img
}

func diff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func TestWorkerKeyCanDoNothingElse(t *testing.T) {
	s := startServer(t, "--builtin-worker", "0")
	s.admin(201, "PUT", "/v1/accounts/w", map[string]any{})
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/accounts/w/balance"},
		{"POST", "/v1/accounts/w/grants"},
		{"PUT", "/v1/accounts/w"},
		{"POST", "/v1/jobs"},
		{"POST", "/v1/holds"},
		{"GET", "/v1/accounts/w/assets"},
	} {
		r := s.req(workerKey, c.method, c.path, map[string]any{"amount": 5, "source": "admin"}, "application/json")
		if r.status != 403 || r.errCode() != "forbidden" {
			t.Errorf("worker %s %s: %d %s", c.method, c.path, r.status, r.raw)
		}
	}
	s.wantBalance("w", 45, 0)
}
