package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/ledger"
)

// ---- fake creditd: the worker protocol, in memory ----

const (
	fakeKey         = "wk_test"
	fakePrice       = 5
	fakeAttemptsMax = 3
)

type fakeJob struct {
	Job
	leaseID  string
	leaseVer int64 // params version the lease holder last heard
}

type fakeAsset struct {
	Asset
	data []byte
}

type failCall struct {
	job       string
	msg       string
	retryable bool
}

type fakeServer struct {
	t        *testing.T
	srv      *httptest.Server
	leaseDur time.Duration

	mu       sync.Mutex
	notify   chan struct{} // closed when a job is queued
	jobs     map[string]*fakeJob
	order    []string // job ids in creation order (the queue order)
	assets   map[string]*fakeAsset
	seq      int
	calls    map[string]int // by call name; "lease204" counts empty polls
	beats    map[string]int // heartbeats per job
	fails    []failCall
	leaseErr int // answer the next leaseErr lease calls with 503
	// onUpload runs (with mu held) after an output is stored.
	onUpload func(j *fakeJob)
}

func newFake(t *testing.T, leaseDur time.Duration) *fakeServer {
	f := &fakeServer{
		t: t, leaseDur: leaseDur, notify: make(chan struct{}),
		jobs: map[string]*fakeJob{}, assets: map[string]*fakeAsset{},
		calls: map[string]int{}, beats: map[string]int{},
	}
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/worker/lease", f.auth(f.lease))
	m.HandleFunc("POST /v1/worker/jobs/{id}/heartbeat", f.auth(f.heartbeat))
	m.HandleFunc("GET /v1/worker/jobs/{id}/inputs/{asset}", f.auth(f.input))
	m.HandleFunc("POST /v1/worker/jobs/{id}/outputs", f.auth(f.output))
	m.HandleFunc("POST /v1/worker/jobs/{id}/complete", f.auth(f.complete))
	m.HandleFunc("POST /v1/worker/jobs/{id}/fail", f.auth(f.fail))
	f.srv = httptest.NewServer(m)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) client(key string) *Client {
	return &Client{BaseURL: f.srv.URL, Key: key, HTTP: f.srv.Client()}
}

func (f *fakeServer) id(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s_%d", prefix, f.seq)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func (f *fakeServer) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fakeKey {
			writeErr(w, http.StatusUnauthorized, ledger.EUnauthenticated, "invalid API key")
			return
		}
		h(w, r)
	}
}

func (f *fakeServer) addAsset(data []byte, ct string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.id("asset")
	f.assets[id] = &fakeAsset{Asset: Asset{ID: id, AccountID: "acct", Kind: "upload", ContentType: ct, Bytes: int64(len(data))}, data: data}
	return id
}

func (f *fakeServer) addJob(action string, quantity int64, params any) string {
	b, err := json.Marshal(params)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.id("job")
	now := time.Now().UTC()
	f.jobs[id] = &fakeJob{Job: Job{
		ID: id, AccountID: "acct", Action: action, Category: "image", Quantity: quantity, Params: b,
		ParamsVersion: 1, Status: "queued", HoldID: "hold_" + id, Cost: fakePrice * quantity,
		Outputs: []string{}, CreatedAt: now, UpdatedAt: now,
	}}
	f.order = append(f.order, id)
	f.wake()
	return id
}

// wake tells waiting long-polls that a job was queued (mu held).
func (f *fakeServer) wake() {
	close(f.notify)
	f.notify = make(chan struct{})
}

func (f *fakeServer) cancel(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	j.Status, j.leaseID = "cancelled", ""
}

func (f *fakeServer) setParams(id string, params any) {
	b, _ := json.Marshal(params)
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	j.Params = b
	j.ParamsVersion++
}

// steal hands the job's lease to someone else.
func (f *fakeServer) steal(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[id].leaseID = "lease_other"
}

func (f *fakeServer) job(id string) Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id].Job
	j.Outputs = slices.Clone(j.Outputs)
	return j
}

func (f *fakeServer) count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[call]
}

func (f *fakeServer) beatsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.beats[id]
}

func (f *fakeServer) failsOf(id string) []failCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []failCall
	for _, c := range f.fails {
		if c.job == id {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeServer) assetData(id string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.assets[id].data
}

func (f *fakeServer) lease(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Actions     []string `json:"actions"`
		WaitSeconds int64    `json:"wait_seconds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Actions) == 0 || in.WaitSeconds < 0 || in.WaitSeconds > 30 {
		writeErr(w, http.StatusBadRequest, ledger.EInvalid, "bad lease request")
		return
	}
	deadline := time.NewTimer(time.Duration(in.WaitSeconds) * time.Second)
	defer deadline.Stop()
	f.mu.Lock()
	f.calls["lease"]++
	if f.leaseErr > 0 {
		f.leaseErr--
		f.mu.Unlock()
		writeErr(w, http.StatusServiceUnavailable, ledger.EUnavailable, "try later")
		return
	}
	for {
		for _, id := range f.order {
			j := f.jobs[id]
			if j.Status != "queued" || !slices.Contains(in.Actions, j.Action) {
				continue
			}
			j.Status = "running"
			j.Attempts++
			j.leaseID = f.id("lease")
			j.leaseVer = j.ParamsVersion
			j.UpdatedAt = time.Now().UTC()
			resp := Lease{Job: j.Job, LeaseID: j.leaseID, LeaseExpiresAt: time.Now().Add(f.leaseDur), ParamsVersion: j.ParamsVersion}
			f.mu.Unlock()
			writeJSON(w, http.StatusOK, resp)
			return
		}
		notify := f.notify
		f.mu.Unlock()
		select {
		case <-notify:
		case <-deadline.C:
			f.mu.Lock()
			f.calls["lease204"]++
			f.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
	}
}

// leased returns the job if leaseID holds it, else writes the error (mu held).
func (f *fakeServer) leased(w http.ResponseWriter, id, leaseID string) *fakeJob {
	j := f.jobs[id]
	if j == nil {
		writeErr(w, http.StatusNotFound, ledger.ENotFound, "no job "+id)
		return nil
	}
	if j.Status != "running" || j.leaseID != leaseID {
		writeErr(w, http.StatusConflict, ledger.EConflict, "lease lost: job "+id+" is "+j.Status)
		return nil
	}
	return j
}

func (f *fakeServer) heartbeat(w http.ResponseWriter, r *http.Request) {
	var in struct {
		LeaseID string `json:"lease_id"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	f.calls["heartbeat"]++
	f.beats[id]++
	if j := f.jobs[id]; j != nil && j.Status == "cancelled" {
		writeJSON(w, http.StatusOK, map[string]any{"job": j.Job, "cancelled": true, "changed": false,
			"params": j.Params, "params_version": j.ParamsVersion})
		return
	}
	j := f.leased(w, id, in.LeaseID)
	if j == nil {
		return
	}
	changed := j.leaseVer != j.ParamsVersion
	j.leaseVer = j.ParamsVersion
	writeJSON(w, http.StatusOK, HeartbeatResult{Job: j.Job, LeaseExpiresAt: time.Now().Add(f.leaseDur),
		Changed: changed, Params: j.Params, ParamsVersion: j.ParamsVersion})
}

func (f *fakeServer) input(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls["input"]++
	j := f.leased(w, r.PathValue("id"), r.URL.Query().Get("lease_id"))
	a := f.assets[r.PathValue("asset")]
	// Like creditd, serve only an asset the job's current params name.
	named := j != nil && bytes.Contains(j.Params, []byte(strconv.Quote(r.PathValue("asset"))))
	f.mu.Unlock()
	if j == nil {
		return
	}
	if a == nil || !named {
		writeErr(w, http.StatusNotFound, ledger.ENotFound, "no asset")
		return
	}
	w.Header().Set("Content-Type", a.ContentType)
	_, _ = w.Write(a.data)
}

func (f *fakeServer) output(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		writeErr(w, http.StatusBadRequest, ledger.EInvalid, err.Error())
		return
	}
	info, err := imageops.Inspect(data, r.Header.Get("Content-Type"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, ledger.EInvalid, ledger.ErrorMessage(err))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["upload"]++
	j := f.leased(w, r.PathValue("id"), r.URL.Query().Get("lease_id"))
	if j == nil {
		return
	}
	a := &fakeAsset{Asset: Asset{ID: f.id("asset"), AccountID: j.AccountID, JobID: j.ID, Kind: "output",
		ContentType: info.ContentType, Width: int64(info.Width), Height: int64(info.Height), Bytes: int64(len(data))}, data: data}
	f.assets[a.ID] = a
	if f.onUpload != nil {
		f.onUpload(j)
	}
	writeJSON(w, http.StatusCreated, a.Asset)
}

func (f *fakeServer) complete(w http.ResponseWriter, r *http.Request) {
	var in struct {
		LeaseID string   `json:"lease_id"`
		Outputs []string `json:"outputs"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["complete"]++
	j := f.leased(w, r.PathValue("id"), in.LeaseID)
	if j == nil {
		return
	}
	if len(in.Outputs) < 1 || int64(len(in.Outputs)) > j.Quantity {
		writeErr(w, http.StatusBadRequest, ledger.EInvalid, "bad outputs count")
		return
	}
	for _, o := range in.Outputs {
		if a := f.assets[o]; a == nil || a.JobID != j.ID {
			writeErr(w, http.StatusBadRequest, ledger.EInvalid, "not an output of this job: "+o)
			return
		}
	}
	if j.leaseVer != j.ParamsVersion {
		writeErr(w, http.StatusConflict, ledger.EConflict, "the job's params changed; restart with them")
		return
	}
	j.Status, j.leaseID = "succeeded", ""
	j.Outputs = slices.Clone(in.Outputs)
	j.Charged = fakePrice * int64(len(in.Outputs))
	writeJSON(w, http.StatusOK, j.Job)
}

func (f *fakeServer) fail(w http.ResponseWriter, r *http.Request) {
	var in struct {
		LeaseID   string `json:"lease_id"`
		Error     string `json:"error"`
		Retryable bool   `json:"retryable"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["fail"]++
	j := f.leased(w, r.PathValue("id"), in.LeaseID)
	if j == nil {
		return
	}
	f.fails = append(f.fails, failCall{job: j.ID, msg: in.Error, retryable: in.Retryable})
	j.Error, j.leaseID = in.Error, ""
	if in.Retryable && j.Attempts < fakeAttemptsMax {
		j.Status = "queued"
		f.wake()
	} else {
		j.Status = "failed"
	}
	writeJSON(w, http.StatusOK, j.Job)
}

// ---- helpers ----

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func testPNG(t *testing.T, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recv waits for a value on ch.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// start runs r until the test ends (or stop is called); stop waits for Run
// to return and gives its error.
func start(t *testing.T, r *Runner) (stop func() error) {
	t.Helper()
	if r.Logger == nil {
		r.Logger = quietLogger()
	}
	if r.LeaseWait == 0 {
		r.LeaseWait = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = recv(t, "Run to return", done)
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

type paramsV struct {
	V int `json:"v"`
}

func paramsOf(t *testing.T, j Job) paramsV {
	var p paramsV
	if err := json.Unmarshal(j.Params, &p); err != nil {
		t.Errorf("params %s: %v", j.Params, err)
	}
	return p
}

// ---- tests ----

func TestHappyPathCrop(t *testing.T) {
	f := newFake(t, 150*time.Millisecond) // heartbeat every 50 ms
	src := f.addAsset(testPNG(t, 40, 30, color.NRGBA{R: 200, A: 255}), "image/png")
	id := f.addJob("crop", 2, map[string]any{"source": src, "x": 5, "y": 4, "width": 12, "height": 7})

	// Hold the crop until the job has been heartbeaten at least once.
	handler := func(ctx context.Context, job Job, input func(string) ([]byte, string, error)) ([]Output, error) {
		for f.beatsOf(job.ID) < 1 {
			if !sleep(ctx, 5*time.Millisecond) {
				return nil, ctx.Err()
			}
		}
		return NewBuiltin(0).Handle(ctx, job, input)
	}
	start(t, &Runner{Client: f.client(fakeKey), Actions: imageops.Actions, Handler: handler})

	waitFor(t, "job to succeed", func() bool { return f.job(id).Status == "succeeded" })
	j := f.job(id)
	if len(j.Outputs) != 2 || j.Charged != 2*fakePrice {
		t.Fatalf("outputs %v charged %d; want 2 outputs and %d credits", j.Outputs, j.Charged, 2*fakePrice)
	}
	for _, o := range j.Outputs {
		cfg, err := png.DecodeConfig(bytes.NewReader(f.assetData(o)))
		if err != nil {
			t.Fatalf("output %s: %v", o, err)
		}
		if cfg.Width != 12 || cfg.Height != 7 {
			t.Errorf("output %s is %dx%d; want 12x7", o, cfg.Width, cfg.Height)
		}
	}
	if n := f.count("complete"); n != 1 {
		t.Errorf("%d complete calls; want 1", n)
	}
	if n := f.count("fail"); n != 0 {
		t.Errorf("%d fail calls; want 0", n)
	}
	if f.beatsOf(id) < 1 {
		t.Errorf("no heartbeat")
	}
}

func TestCancelMidRunStopsHandler(t *testing.T) {
	f := newFake(t, 90*time.Millisecond)
	started, stopped := make(chan string, 4), make(chan string, 4)
	handler := func(ctx context.Context, job Job, _ func(string) ([]byte, string, error)) ([]Output, error) {
		if paramsOf(t, job).V == 2 { // a second, quick job
			return []Output{{Data: testPNG(t, 2, 2, color.White)}}, nil
		}
		started <- job.ID
		<-ctx.Done()
		stopped <- job.ID
		return nil, ctx.Err()
	}
	start(t, &Runner{Client: f.client(fakeKey), Actions: []string{"generate"}, Handler: handler, Concurrency: 1})

	id := f.addJob("generate", 1, paramsV{V: 1})
	recv(t, "handler start", started)
	f.cancel(id)
	if got := recv(t, "handler stop", stopped); got != id {
		t.Fatalf("stopped %s; want %s", got, id)
	}
	// The slot is free again: a new job runs.
	id2 := f.addJob("generate", 1, paramsV{V: 2})
	waitFor(t, "second job to succeed", func() bool { return f.job(id2).Status == "succeeded" })
	if n := f.count("complete"); n != 1 {
		t.Errorf("%d complete calls; want 1 (the second job only)", n)
	}
	if n := f.count("fail"); n != 0 {
		t.Errorf("%d fail calls; want 0", n)
	}
	if s := f.job(id).Status; s != "cancelled" {
		t.Errorf("cancelled job is %s", s)
	}
}

func TestLeaseLostStopsHandler(t *testing.T) {
	f := newFake(t, 90*time.Millisecond)
	started, stopped := make(chan string, 1), make(chan string, 1)
	handler := func(ctx context.Context, job Job, _ func(string) ([]byte, string, error)) ([]Output, error) {
		started <- job.ID
		<-ctx.Done()
		stopped <- job.ID
		return nil, ctx.Err()
	}
	start(t, &Runner{Client: f.client(fakeKey), Actions: []string{"generate"}, Handler: handler})
	id := f.addJob("generate", 1, paramsV{V: 1})
	recv(t, "handler start", started)
	f.steal(id)
	recv(t, "handler stop", stopped)
	if n := f.count("complete") + f.count("fail"); n != 0 {
		t.Errorf("%d complete/fail calls after the lease was lost; want 0", n)
	}
}

func TestParamsChangeRestarts(t *testing.T) {
	f := newFake(t, 90*time.Millisecond)
	var mu sync.Mutex
	var seen []int
	started := make(chan int, 4)
	cancelled := make(chan int, 4)
	handler := func(ctx context.Context, job Job, _ func(string) ([]byte, string, error)) ([]Output, error) {
		v := paramsOf(t, job).V
		mu.Lock()
		seen = append(seen, v)
		mu.Unlock()
		if job.ParamsVersion != int64(v) {
			t.Errorf("params %d arrived with params_version %d", v, job.ParamsVersion)
		}
		started <- v
		if v == 1 {
			<-ctx.Done()
			cancelled <- v
			return nil, ctx.Err()
		}
		return []Output{{Data: testPNG(t, 3, 3, color.Black), ContentType: "image/png"}}, nil
	}
	start(t, &Runner{Client: f.client(fakeKey), Actions: []string{"generate"}, Handler: handler})
	id := f.addJob("generate", 1, paramsV{V: 1})
	recv(t, "first attempt", started)
	f.setParams(id, paramsV{V: 2})
	recv(t, "first attempt cancelled", cancelled)
	waitFor(t, "job to succeed", func() bool { return f.job(id).Status == "succeeded" })

	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []int{1, 2}) {
		t.Errorf("handler saw params %v; want [1 2]", seen)
	}
	if n := f.count("complete"); n != 1 {
		t.Errorf("%d complete calls; want 1", n)
	}
	if j := f.job(id); len(j.Outputs) != 1 || j.ParamsVersion != 2 {
		t.Errorf("job outputs %v params_version %d", j.Outputs, j.ParamsVersion)
	}
}

// A change between the last heartbeat and complete: complete answers 409,
// a heartbeat reports the change and the handler runs again.
func TestParamsChangeBeforeCompleteRestarts(t *testing.T) {
	f := newFake(t, 30*time.Second) // no heartbeat before complete
	f.onUpload = func(j *fakeJob) { // runs with f.mu held
		if j.ParamsVersion == 1 {
			j.Params = json.RawMessage(`{"v":2}`)
			j.ParamsVersion = 2
		}
	}
	var mu sync.Mutex
	var seen []int
	handler := func(ctx context.Context, job Job, _ func(string) ([]byte, string, error)) ([]Output, error) {
		mu.Lock()
		seen = append(seen, paramsOf(t, job).V)
		mu.Unlock()
		return []Output{{Data: testPNG(t, 3, 3, color.Black)}}, nil
	}
	start(t, &Runner{Client: f.client(fakeKey), Actions: []string{"generate"}, Handler: handler})
	id := f.addJob("generate", 1, paramsV{V: 1})
	waitFor(t, "job to succeed", func() bool { return f.job(id).Status == "succeeded" })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []int{1, 2}) {
		t.Errorf("handler saw params %v; want [1 2]", seen)
	}
	if n := f.count("complete"); n != 2 {
		t.Errorf("%d complete calls; want 2 (a refused one, then the real one)", n)
	}
}

// A change before the attempt reads its input: the old source is no longer
// named by the params, so the input is 404 and the handler fails; a
// heartbeat then reports the change and the attempt restarts with the new
// source instead of failing the job.
func TestParamsChangeBeforeInputRestarts(t *testing.T) {
	f := newFake(t, 30*time.Second) // no heartbeat before the input
	oldSrc := f.addAsset(testPNG(t, 40, 30, color.White), "image/png")
	newSrc := f.addAsset(testPNG(t, 20, 10, color.Black), "image/png")
	b := NewBuiltin(0)
	var once sync.Once
	var id string
	handler := func(ctx context.Context, job Job, input func(string) ([]byte, string, error)) ([]Output, error) {
		once.Do(func() { f.setParams(id, map[string]any{"source": newSrc, "width": 4, "height": 3}) })
		return b.Handle(ctx, job, input)
	}
	id = f.addJob("crop", 1, map[string]any{"source": oldSrc, "width": 10, "height": 5})
	start(t, &Runner{Client: f.client(fakeKey), Actions: []string{"crop"}, Handler: handler})
	waitFor(t, "job to end", func() bool { s := f.job(id).Status; return s == "succeeded" || s == "failed" })
	j := f.job(id)
	if j.Status != "succeeded" || len(j.Outputs) != 1 {
		t.Fatalf("job %s, outputs %v, fails %v; want it to succeed with the new source", j.Status, j.Outputs, f.failsOf(id))
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(f.assetData(j.Outputs[0])))
	if err != nil || cfg.Width != 4 || cfg.Height != 3 {
		t.Fatalf("output %dx%d (%v); want the new params' 4x3", cfg.Width, cfg.Height, err)
	}
	if n := f.count("input"); n != 2 {
		t.Errorf("%d input calls; want 2 (the old source, refused; the new one)", n)
	}
}

func TestHandlerErrorReportsFail(t *testing.T) {
	f := newFake(t, 5*time.Second)
	src := f.addAsset(testPNG(t, 10, 10, color.White), "image/png")
	errs := map[int]error{
		1: Failure{Msg: "gpu hiccup", Retryable: true},
		2: &Failure{Msg: "prompt refused"},
		3: errors.New("model server unreachable"),
		4: ledger.Errorf(ledger.EInvalid, "bad size"),
		5: fmt.Errorf("wrapped: %w", Failure{Msg: "wrapped final"}),
	}
	handler := func(ctx context.Context, job Job, input func(string) ([]byte, string, error)) ([]Output, error) {
		if job.Action == "crop" {
			return NewBuiltin(0).Handle(ctx, job, input)
		}
		return nil, errs[paramsOf(t, job).V]
	}
	start(t, &Runner{Client: f.client(fakeKey), Actions: []string{"generate", "crop"}, Handler: handler, Concurrency: 3})

	ids := map[int]string{}
	for v := range errs {
		ids[v] = f.addJob("generate", 1, paramsV{V: v})
	}
	crop := f.addJob("crop", 1, map[string]any{"source": src, "x": 5, "width": 20, "height": 2})
	missing := f.addJob("crop", 1, map[string]any{"source": "asset_gone", "width": 2, "height": 2})

	type want struct {
		id        string
		msg       string
		retryable bool
	}
	cases := []want{
		{ids[1], "gpu hiccup", true},
		{ids[2], "prompt refused", false},
		{ids[3], "model server unreachable", true},
		{ids[4], "bad size", false},
		{ids[5], "wrapped: wrapped final", false},
		{crop, "crop", false},
		{missing, "not found", false},
	}
	for _, c := range cases {
		waitFor(t, c.id+" to fail", func() bool { return f.job(c.id).Status == "failed" })
		fails := f.failsOf(c.id)
		wantFails := 1
		if c.retryable {
			wantFails = fakeAttemptsMax // requeued until attempts run out
		}
		if len(fails) != wantFails {
			t.Errorf("%s: %d fail calls; want %d", c.id, len(fails), wantFails)
			continue
		}
		if fc := fails[0]; fc.retryable != c.retryable || !strings.Contains(fc.msg, c.msg) {
			t.Errorf("%s: fail %q retryable=%v; want message containing %q, retryable=%v", c.id, fc.msg, fc.retryable, c.msg, c.retryable)
		}
	}
	if n := f.count("complete"); n != 0 {
		t.Errorf("%d complete calls; want 0", n)
	}
}

func TestEmptyPollsLoop(t *testing.T) {
	f := newFake(t, 5*time.Second)
	handler := func(ctx context.Context, job Job, _ func(string) ([]byte, string, error)) ([]Output, error) {
		return []Output{{Data: testPNG(t, 2, 2, color.White)}}, nil
	}
	begin := time.Now()
	// LeaseWait under a second asks for wait_seconds 0: every poll is 204.
	start(t, &Runner{Client: f.client(fakeKey), Actions: []string{"generate"}, Handler: handler, LeaseWait: time.Millisecond})
	waitFor(t, "three empty polls", func() bool { return f.count("lease204") >= 3 })
	if d := time.Since(begin); d < 2*pollMin {
		t.Errorf("three empty polls in %v: the worker spins (want them spaced by %v)", d, pollMin)
	}
	id := f.addJob("generate", 1, paramsV{V: 1})
	waitFor(t, "job to succeed", func() bool { return f.job(id).Status == "succeeded" })
}

func TestLongPollPicksUpNewJob(t *testing.T) {
	f := newFake(t, 5*time.Second)
	handler := func(ctx context.Context, job Job, _ func(string) ([]byte, string, error)) ([]Output, error) {
		return []Output{{Data: testPNG(t, 2, 2, color.White)}}, nil
	}
	start(t, &Runner{Client: f.client(fakeKey), Actions: []string{"generate"}, Handler: handler, LeaseWait: 30 * time.Second})
	waitFor(t, "a lease poll", func() bool { return f.count("lease") >= 1 })
	id := f.addJob("generate", 1, paramsV{V: 1})
	waitFor(t, "job to succeed", func() bool { return f.job(id).Status == "succeeded" })
	if n := f.count("lease204"); n != 0 {
		t.Errorf("%d empty polls; want 0 (the long-poll should return the job)", n)
	}
}

func TestContextCancelReturns(t *testing.T) {
	f := newFake(t, 60*time.Millisecond)
	started, stopped := make(chan string, 1), make(chan string, 1)
	handler := func(ctx context.Context, job Job, _ func(string) ([]byte, string, error)) ([]Output, error) {
		started <- job.ID
		<-ctx.Done()
		stopped <- job.ID
		return nil, ctx.Err()
	}
	stop := start(t, &Runner{Client: f.client(fakeKey), Actions: []string{"generate"}, Handler: handler, LeaseWait: 30 * time.Second})
	id := f.addJob("generate", 1, paramsV{V: 1})
	recv(t, "handler start", started)
	waitFor(t, "a heartbeat", func() bool { return f.beatsOf(id) >= 1 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v; want nil after ctx is done", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("Run returned before the handler did")
	}
	// Abandoned, not failed: the server requeues it when the lease passes.
	if s := f.job(id).Status; s != "running" {
		t.Errorf("job is %s; want running (abandoned)", s)
	}
	if n := f.count("complete") + f.count("fail"); n != 0 {
		t.Errorf("%d complete/fail calls; want 0", n)
	}
}

func TestIdleContextCancelReturns(t *testing.T) {
	f := newFake(t, time.Second)
	stop := start(t, &Runner{Client: f.client(fakeKey), Actions: []string{"generate"}, Handler: NewBuiltin(0).Handle, LeaseWait: 30 * time.Second})
	waitFor(t, "a lease poll", func() bool { return f.count("lease") >= 1 })
	begin := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Run took %v to stop during a long-poll", d)
	}
}

func TestLeaseErrorsBackOff(t *testing.T) {
	f := newFake(t, 5*time.Second)
	f.leaseErr = 2
	handler := func(ctx context.Context, job Job, _ func(string) ([]byte, string, error)) ([]Output, error) {
		return []Output{{Data: testPNG(t, 2, 2, color.White)}}, nil
	}
	id := f.addJob("generate", 1, paramsV{V: 1})
	start(t, &Runner{Client: f.client(fakeKey), Actions: []string{"generate"}, Handler: handler})
	waitFor(t, "job to succeed", func() bool { return f.job(id).Status == "succeeded" })
	if n := f.count("lease"); n < 3 {
		t.Errorf("%d lease calls; want at least 3 (two refused)", n)
	}
}

func TestWrongKeyStopsRun(t *testing.T) {
	f := newFake(t, time.Second)
	r := &Runner{Client: f.client("wrong"), Actions: []string{"generate"}, Handler: NewBuiltin(0).Handle, Logger: quietLogger()}
	err := r.Run(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Code != ledger.EUnauthenticated {
		t.Fatalf("Run: %v; want a 401 APIError", err)
	}
}

func TestClientCalls(t *testing.T) {
	f := newFake(t, 30*time.Second)
	c := f.client(fakeKey)
	ctx := context.Background()

	if l, err := c.Lease(ctx, []string{"generate"}, 0); l != nil || err != nil {
		t.Fatalf("empty lease: %v, %v; want nil, nil", l, err)
	}
	src := f.addAsset(testPNG(t, 4, 4, color.White), "image/png")
	id := f.addJob("generate", 2, map[string]string{"source": src})
	l, err := c.Lease(ctx, []string{"generate"}, time.Second)
	if err != nil || l == nil || l.Job.ID != id || l.ParamsVersion != 1 || l.LeaseExpiresAt.IsZero() {
		t.Fatalf("lease: %+v, %v", l, err)
	}
	hb, err := c.Heartbeat(ctx, id, l.LeaseID)
	if err != nil || hb.Cancelled || hb.Changed || hb.Job.Status != "running" {
		t.Fatalf("heartbeat: %+v, %v", hb, err)
	}
	data, ct, err := c.Input(ctx, id, l.LeaseID, src)
	if err != nil || ct != "image/png" || len(data) == 0 {
		t.Fatalf("input: %d bytes %q %v", len(data), ct, err)
	}
	a, err := c.UploadOutput(ctx, id, l.LeaseID, data, "image/png")
	if err != nil || a.Width != 4 || a.Kind != "output" {
		t.Fatalf("upload: %+v, %v", a, err)
	}
	_, err = c.UploadOutput(ctx, id, l.LeaseID, []byte("not an image"), "image/png")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != ledger.EInvalid || ae.Message == "" {
		t.Fatalf("bad upload: %v; want a 400 invalid_request APIError", err)
	}
	if _, err := c.Heartbeat(ctx, id, "lease_wrong"); !IsConflict(err) {
		t.Fatalf("heartbeat with a wrong lease: %v; want 409", err)
	}
	if _, _, err := c.Input(ctx, id, "lease_wrong", src); !IsConflict(err) {
		t.Fatalf("input with a wrong lease: %v; want 409", err)
	}
	j, err := c.Complete(ctx, id, l.LeaseID, []string{a.ID})
	if err != nil || j.Status != "succeeded" || j.Charged != fakePrice {
		t.Fatalf("complete: %+v, %v", j, err)
	}
	if _, err := c.Fail(ctx, id, l.LeaseID, "late", true); !IsConflict(err) {
		t.Fatalf("fail after complete: %v; want 409", err)
	}
	if Temporary(err) || !Temporary(&APIError{Status: 503}) || !Temporary(errors.New("dial tcp: refused")) || Temporary(context.Canceled) {
		t.Error("Temporary misclassifies")
	}
}

func TestRetryable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{Failure{Retryable: true}, true},
		{Failure{}, false},
		{&Failure{Retryable: true}, true},
		{fmt.Errorf("x: %w", &Failure{}), false},
		{ledger.Errorf(ledger.EInvalid, "bad"), false},
		{ledger.Errorf(ledger.EUnavailable, "busy"), true},
		{&APIError{Status: 404, Code: ledger.ENotFound}, false},
		{&APIError{Status: 503}, true},
		{errors.New("boom"), true},
	}
	for _, c := range cases {
		if got := retryable(c.err); got != c.want {
			t.Errorf("retryable(%#v) = %v; want %v", c.err, got, c.want)
		}
	}
}
