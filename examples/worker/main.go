// Command worker is a minimal creditd generation worker that speaks the
// worker protocol (docs/worker-protocol.md) over plain HTTP, with the Go
// standard library only, so that it reads as a reference for writing a
// worker in any language.
//
// It serves the "generate" action by rendering solid-colour PNGs from
// params like {"prompt": "a red square", "color": "#cc2200"} (optional
// "width" and "height", default 256; or "source", the asset id of an input
// image, whose size the output takes). A prompt containing "fail" makes it
// report a failure instead (retryable if the prompt also contains "retry").
//
//	go run ./examples/worker --server http://127.0.0.1:8080 --key "$(cat data/worker.key)"
//
// Like any worker it keeps running, waiting for the next job, until it is
// interrupted (Ctrl-C, SIGTERM); --once makes it process one job and exit.
//
// The loop: lease a job (long-poll) → heartbeat it every lease/3 in the
// background → read its inputs under the lease → render and upload each
// output → complete with the asset ids.
// A heartbeat that says "cancelled" (or a 409: lease lost) drops the work;
// one that says "changed" restarts it with the new params. creditd charges
// for the outputs listed in complete, and nothing for a failed job.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	_ "image/jpeg" // inputs may be JPEG
	"image/png"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: go run ./examples/worker [--server URL] [--key WORKER_KEY] [--once] [flags]

A creditd generation worker: it serves "generate" jobs with solid-colour PNGs.
It keeps running, waiting for the next job, until you stop it (Ctrl-C or
SIGTERM): with --once it processes a single job and exits instead.

flags:
`

func main() {
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
		fmt.Fprint(flag.CommandLine.Output(), "\nenvironment: CREDITD_URL (--server), CREDITD_WORKER_KEY (--key)\n")
	}
	server := flag.String("server", envOr("CREDITD_URL", "http://127.0.0.1:8080"), "creditd URL")
	key := flag.String("key", os.Getenv("CREDITD_WORKER_KEY"), "worker key (default $CREDITD_WORKER_KEY)")
	actions := flag.String("actions", "generate", "comma-separated actions to lease")
	once := flag.Bool("once", false, "process a single job, then exit (without it the worker runs until stopped)")
	outputs := flag.Int("outputs", 0, "deliver at most N outputs per job (0: the job's quantity)")
	delay := flag.Duration("delay", 0, "pretend each output takes this long to render (to watch heartbeats, cancels and param changes)")
	wait := flag.Int("wait", 20, "long-poll seconds per lease call (0..30)")
	flag.Parse()
	if *key == "" {
		log.Fatal("pass --key or set CREDITD_WORKER_KEY (creditd serve prints the worker key and stores it in data/worker.key)")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &client{server: strings.TrimRight(*server, "/"), key: *key, http: &http.Client{Timeout: 60 * time.Second}}
	w := &worker{c: c, maxOutputs: *outputs, delay: *delay}

	log.Printf("worker: serving %s from %s", *actions, c.server)
	retryIn := time.Second
	for ctx.Err() == nil {
		l, err := c.lease(ctx, strings.Split(*actions, ","), *wait)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			var ae *apiError
			if errors.As(err, &ae) && ae.Status < 500 {
				log.Fatalf("lease refused: %v", err) // wrong key, unknown action...
			}
			log.Printf("lease failed (%v); retrying in %v", err, retryIn)
			sleep(ctx, retryIn)
			retryIn = min(2*retryIn, 30*time.Second)
			continue
		case l == nil:
			if *wait == 0 {
				sleep(ctx, time.Second) // no long-poll: don't spin
			}
			continue // 204: nothing arrived during the long-poll; ask again
		}
		retryIn = time.Second
		w.process(ctx, l)
		if *once {
			return
		}
	}
}

// ---- protocol types ----

type job struct {
	ID            string          `json:"id"`
	AccountID     string          `json:"account_id"`
	Action        string          `json:"action"`
	Quantity      int             `json:"quantity"`
	Params        json.RawMessage `json:"params"`
	ParamsVersion int64           `json:"params_version"`
	Status        string          `json:"status"`
	Charged       int64           `json:"charged"`
	Outputs       []string        `json:"outputs"`
}

type lease struct {
	Job            job       `json:"job"`
	LeaseID        string    `json:"lease_id"`
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
	ParamsVersion  int64     `json:"params_version"`
}

type heartbeat struct {
	Job            job             `json:"job"`
	LeaseExpiresAt time.Time       `json:"lease_expires_at"`
	Cancelled      bool            `json:"cancelled"`
	Changed        bool            `json:"changed"`
	Params         json.RawMessage `json:"params"`
	ParamsVersion  int64           `json:"params_version"`
}

type asset struct {
	ID     string `json:"id"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// apiError is a non-2xx answer: {"error":{"code":"...","message":"..."}}.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// isConflict: 409 means the lease is lost, the job was cancelled, or (on
// complete) its params changed since the last heartbeat.
func isConflict(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusConflict
}

// ---- HTTP client: one method per protocol call ----

type client struct {
	server, key string
	http        *http.Client
}

// send sends a request with the worker key and returns the answer's body;
// a non-2xx answer is an *apiError.
func (c *client) send(ctx context.Context, method, path, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if resp.StatusCode >= 300 {
		var env struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(b, &env)
		return resp.StatusCode, nil, &apiError{Status: resp.StatusCode, Code: env.Error.Code, Message: env.Error.Message}
	}
	return resp.StatusCode, b, nil
}

// do sends a request and decodes a JSON answer into out.
func (c *client) do(ctx context.Context, method, path, contentType string, body []byte, out any) (int, error) {
	status, b, err := c.send(ctx, method, path, contentType, body)
	if err != nil || status == http.StatusNoContent || out == nil {
		return status, err
	}
	return status, json.Unmarshal(b, out)
}

func (c *client) postJSON(ctx context.Context, path string, in, out any) (int, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	return c.do(ctx, "POST", path, "application/json", b, out)
}

// lease long-polls for a job; nil, nil means 204 (nothing arrived in time).
func (c *client) lease(ctx context.Context, actions []string, waitSeconds int) (*lease, error) {
	var l lease
	status, err := c.postJSON(ctx, "/v1/worker/lease", map[string]any{"actions": actions, "wait_seconds": waitSeconds}, &l)
	if err != nil || status == http.StatusNoContent {
		return nil, err
	}
	return &l, nil
}

func jobPath(id, rest string) string { return "/v1/worker/jobs/" + url.PathEscape(id) + "/" + rest }

func (c *client) heartbeat(ctx context.Context, id, leaseID string) (*heartbeat, error) {
	var h heartbeat
	_, err := c.postJSON(ctx, jobPath(id, "heartbeat"), map[string]string{"lease_id": leaseID}, &h)
	return &h, err
}

// input downloads an input image the job's params name, under its lease:
// 404 for an asset the params do not name, 409 once the lease is lost.
func (c *client) input(ctx context.Context, id, leaseID, assetID string) ([]byte, error) {
	_, b, err := c.send(ctx, "GET", jobPath(id, "inputs/"+url.PathEscape(assetID)+"?lease_id="+url.QueryEscape(leaseID)), "", nil)
	return b, err
}

func (c *client) upload(ctx context.Context, id, leaseID string, pngData []byte) (*asset, error) {
	var a asset
	_, err := c.do(ctx, "POST", jobPath(id, "outputs?lease_id="+url.QueryEscape(leaseID)), "image/png", pngData, &a)
	return &a, err
}

func (c *client) complete(ctx context.Context, id, leaseID string, outputs []string) (*job, error) {
	var j job
	_, err := c.postJSON(ctx, jobPath(id, "complete"), map[string]any{"lease_id": leaseID, "outputs": outputs}, &j)
	return &j, err
}

func (c *client) fail(ctx context.Context, id, leaseID, msg string, retryable bool) (*job, error) {
	var j job
	_, err := c.postJSON(ctx, jobPath(id, "fail"), map[string]any{"lease_id": leaseID, "error": msg, "retryable": retryable}, &j)
	return &j, err
}

// ---- the worker ----

type worker struct {
	c          *client
	maxOutputs int
	delay      time.Duration
}

// news is what a heartbeat learned: the job was cancelled, the lease was
// lost, or the params changed.
type news struct {
	stop    string // "cancelled" or "lease lost"; empty for a change
	params  json.RawMessage
	version int64
}

// process runs one leased job to its end.
func (w *worker) process(ctx context.Context, l *lease) {
	j := l.Job
	log.Printf("job %s: leased (account %s, quantity %d, params %s)", j.ID, j.AccountID, j.Quantity, j.Params)

	// Heartbeat in the background for as long as we work on the job.
	hbCtx, stopHeartbeats := context.WithCancel(ctx)
	defer stopHeartbeats()
	updates := make(chan news, 4)
	go w.heartbeats(hbCtx, j.ID, l.LeaseID, l.LeaseExpiresAt, l.ParamsVersion, updates)

	params, version := j.Params, l.ParamsVersion
	for {
		next := w.attempt(ctx, j, l.LeaseID, params, version, updates)
		if next == nil {
			return // completed, failed, cancelled or lost
		}
		log.Printf("job %s: params changed (version %d): restarting", j.ID, next.version)
		params, version = next.params, next.version
	}
}

// attempt renders and delivers the outputs for one version of the params.
// It returns the new params when they changed, nil when the job is over.
func (w *worker) attempt(ctx context.Context, j job, leaseID string, params json.RawMessage, version int64, updates <-chan news) *news {
	var p struct {
		Prompt string `json:"prompt"`
		Color  string `json:"color"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
		Source string `json:"source"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		w.reportFail(ctx, j.ID, leaseID, "params: "+err.Error(), false)
		return nil
	}
	if strings.Contains(p.Prompt, "fail") {
		w.reportFail(ctx, j.ID, leaseID, "the prompt asked to fail", strings.Contains(p.Prompt, "retry"))
		return nil
	}
	if p.Source != "" {
		width, height, next, ok := w.sourceSize(ctx, j, leaseID, p.Source, version)
		if !ok {
			return next
		}
		p.Width, p.Height = width, height
	}
	img, err := render(p.Prompt, p.Color, p.Width, p.Height)
	if err != nil {
		w.reportFail(ctx, j.ID, leaseID, err.Error(), false)
		return nil
	}

	n := j.Quantity
	if w.maxOutputs > 0 && w.maxOutputs < n {
		n = w.maxOutputs // a partial batch: creditd charges only for these
	}
	var ids []string
	for i := range n {
		// "Render" output i; between outputs, see what the heartbeats said.
		select {
		case u := <-updates:
			if u.stop != "" {
				log.Printf("job %s: %s: work dropped", j.ID, u.stop)
				return nil
			}
			if u.version > version {
				return &u
			}
		case <-time.After(w.delay):
		case <-ctx.Done():
			log.Printf("job %s: shutting down; creditd requeues the job after its lease", j.ID)
			return nil
		}
		a, err := w.c.upload(ctx, j.ID, leaseID, img)
		if err != nil {
			if isConflict(err) || ctx.Err() != nil {
				log.Printf("job %s: upload refused (%v): work dropped", j.ID, err)
				return nil
			}
			w.reportFail(ctx, j.ID, leaseID, "upload: "+err.Error(), true)
			return nil
		}
		log.Printf("job %s: output %d/%d uploaded as %s (%dx%d)", j.ID, i+1, n, a.ID, a.Width, a.Height)
		ids = append(ids, a.ID)
	}

	return w.complete(ctx, j, leaseID, ids, version)
}

// sourceSize reads the size of the job's input image (at most 4096 a
// side). When it cannot, it has failed the job or dropped the work, or
// returns the params that changed meanwhile; ok is false.
func (w *worker) sourceSize(ctx context.Context, j job, leaseID, source string, version int64) (width, height int, next *news, ok bool) {
	src, err := w.c.input(ctx, j.ID, leaseID, source)
	if err != nil {
		var ae *apiError
		switch {
		case isConflict(err) || ctx.Err() != nil:
			log.Printf("job %s: input refused (%v): work dropped", j.ID, err)
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
			// The params may have changed since (an input they no
			// longer name is 404): ask before failing the job.
			hb, herr := w.c.heartbeat(ctx, j.ID, leaseID)
			if herr == nil && !hb.Cancelled && hb.Job.Status == "running" && hb.ParamsVersion > version {
				return 0, 0, &news{params: hb.Params, version: hb.ParamsVersion}, false
			}
			w.reportFail(ctx, j.ID, leaseID, "params.source: no such input", false)
		default:
			w.reportFail(ctx, j.ID, leaseID, "input: "+err.Error(), true)
		}
		return 0, 0, nil, false
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(src))
	if err != nil {
		w.reportFail(ctx, j.ID, leaseID, "params.source: "+err.Error(), false)
		return 0, 0, nil, false
	}
	return min(cfg.Width, 4096), min(cfg.Height, 4096), nil, true
}

// complete reports the outputs. It returns the new params when they
// changed since the last heartbeat, nil when the job is over.
func (w *worker) complete(ctx context.Context, j job, leaseID string, ids []string, version int64) *news {
	done, err := w.c.complete(ctx, j.ID, leaseID, ids)
	if err == nil {
		log.Printf("job %s: %s with %d outputs, charged %d credits", j.ID, done.Status, len(done.Outputs), done.Charged)
		return nil
	}
	if !isConflict(err) {
		w.reportFail(ctx, j.ID, leaseID, "complete: "+err.Error(), true)
		return nil
	}
	// 409: cancelled, lease lost, or the params changed since our last
	// heartbeat. Ask now.
	hb, herr := w.c.heartbeat(ctx, j.ID, leaseID)
	if herr == nil && !hb.Cancelled && hb.Job.Status == "running" && hb.ParamsVersion > version {
		return &news{params: hb.Params, version: hb.ParamsVersion}
	}
	log.Printf("job %s: complete refused (%v): work dropped", j.ID, err)
	return nil
}

// heartbeats renews the lease every lease/3 until ctx is done, and reports
// cancellation, lease loss and param changes on updates. It also compares
// params_version with the last one it knows, in case the answer that said
// "changed" was lost on the way.
func (w *worker) heartbeats(ctx context.Context, id, leaseID string, expires time.Time, version int64, updates chan<- news) {
	send := func(n news) {
		select {
		case updates <- n:
		case <-ctx.Done():
		}
	}
	for {
		interval := time.Until(expires) / 3
		if interval <= 0 {
			interval = time.Second // clocks disagree; beat often
		}
		select {
		case <-time.After(max(interval, 100*time.Millisecond)):
		case <-ctx.Done():
			return
		}
		hb, err := w.c.heartbeat(ctx, id, leaseID)
		switch {
		case ctx.Err() != nil:
			return
		case isConflict(err):
			send(news{stop: "lease lost"})
			return
		case err != nil:
			log.Printf("job %s: heartbeat failed: %v", id, err)
			if time.Now().After(expires) {
				send(news{stop: "lease expired"})
				return
			}
			continue
		case hb.Cancelled:
			send(news{stop: "cancelled"})
			return
		case hb.Job.Status != "running":
			send(news{stop: "job is " + hb.Job.Status})
			return
		case hb.Changed || hb.ParamsVersion > version:
			version = max(version, hb.ParamsVersion)
			send(news{params: hb.Params, version: version})
		}
		expires = hb.LeaseExpiresAt
	}
}

func (w *worker) reportFail(ctx context.Context, id, leaseID, msg string, retryable bool) {
	j, err := w.c.fail(ctx, id, leaseID, msg, retryable)
	if err != nil {
		log.Printf("job %s: fail not recorded: %v", id, err)
		return
	}
	log.Printf("job %s: failed (%s, retryable=%v): now %s, nothing charged", id, msg, retryable, j.Status)
}

// render draws a solid-colour PNG: color "#rrggbb", or a colour derived
// from the prompt when empty.
func render(prompt, hex string, width, height int) ([]byte, error) {
	if width == 0 {
		width = 256
	}
	if height == 0 {
		height = 256
	}
	if width < 1 || height < 1 || width > 4096 || height > 4096 {
		return nil, fmt.Errorf("width and height must be 1..4096")
	}
	c := color.NRGBA{A: 255}
	if hex == "" {
		h := fnv.New32a()
		h.Write([]byte(prompt))
		s := h.Sum32()
		c.R, c.G, c.B = uint8(s>>16), uint8(s>>8), uint8(s)
	} else if _, err := fmt.Sscanf(hex, "#%02x%02x%02x", &c.R, &c.G, &c.B); err != nil || len(hex) != 7 {
		return nil, fmt.Errorf("color %q: want #rrggbb", hex)
	}
	img := image.NewNRGBA(image.Rect(0, 0, width, height))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	var buf bytes.Buffer
	err := png.Encode(&buf, img)
	return buf.Bytes(), err
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
