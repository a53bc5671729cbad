package contract

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Handler wraps a server under test: every exchange it serves is checked,
// and the mismatches are reported to t when the test cleans up (after
// cleanups registered later, such as the server's Close). Routes outside
// the API (the web app under /app/ and its redirect at /) pass unchecked.
func Handler(t TB, h http.Handler) http.Handler {
	t.Helper()
	c, err := Shared()
	if err != nil {
		t.Errorf("contract: %v", err)
		return h
	}
	var mu sync.Mutex
	var problems []string
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("contract: %s", p)
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !InAPI(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		orig := r.Clone(r.Context())
		rec := &recorder{ResponseWriter: w, status: 0}
		h.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		var held []byte
		if !rec.stream {
			held = rec.buf.Bytes()
		}
		if ps := c.Check(Exchange{Req: orig, ReqBody: body, Status: rec.status, Header: w.Header(), Body: held}); len(ps) > 0 {
			mu.Lock()
			problems = append(problems, ps...)
			mu.Unlock()
		}
	})
}

// InAPI reports whether a path is the API's (not the web app's).
func InAPI(path string) bool {
	return path != "/" && path != "/app" && !strings.HasPrefix(path, "/app/")
}

// recorder passes a response through and keeps a copy of its body,
// unless it is a stream.
type recorder struct {
	http.ResponseWriter
	status int
	stream bool
	buf    bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
		r.stream = streaming(r.Header().Get("Content-Type"))
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if !r.stream {
		r.buf.Write(p)
	}
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Transport wraps a client's transport (nil: http.DefaultTransport) so
// that every exchange with a server in another process is checked; a
// mismatch fails t at once.
func Transport(t TB, next http.RoundTripper) http.RoundTripper {
	t.Helper()
	if next == nil {
		next = http.DefaultTransport
	}
	c, err := Shared()
	if err != nil {
		t.Errorf("contract: %v", err)
		return next
	}
	return roundTripper{t: t, c: c, next: next}
}

type roundTripper struct {
	t    TB
	c    *Checker
	next http.RoundTripper
}

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if !InAPI(req.URL.Path) {
		return rt.next.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	orig := req.Clone(req.Context())
	res, err := rt.next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	var held []byte
	if !streaming(res.Header.Get("Content-Type")) {
		held, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return nil, err
		}
		res.Body = io.NopCloser(bytes.NewReader(held))
		if held == nil {
			held = []byte{}
		}
	}
	for _, p := range rt.c.Check(Exchange{Req: orig, ReqBody: body, Status: res.StatusCode, Header: res.Header, Body: held}) {
		rt.t.Errorf("contract: %s", p)
	}
	return res, nil
}

func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}
