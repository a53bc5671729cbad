package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Clients of the HTTP settings.
const (
	// ClientRaw is a minimal HTTP/1.1 keep-alive client: one net.Conn per
	// worker, no pipelining, requests written from pre-built bytes (the
	// capture request is assembled in a per-worker buffer), responses
	// parsed in place from a bufio.Reader. It allocates nothing per cycle.
	ClientRaw = "raw"
	// ClientNetHTTP is net/http with a Transport tuned for the load:
	// MaxIdleConnsPerHost = concurrency, no compression, no HTTP/2,
	// pre-marshalled bodies and shared header values.
	ClientNetHTTP = "nethttp"
)

// httpTarget drives an HTTP server (creditd, or the in-bench ceiling).
type httpTarget struct {
	addr     string // host:port
	base     string // http://host:port
	key      string
	ids      []string
	unit     int64
	client   string
	deadline time.Time // connection deadline: end of the run plus slack

	reserveReqs   [][]byte // raw client: whole request per account
	reserveBodies [][]byte // net/http client: body per account
	capturePrefix []byte   // "POST /v1/holds/"
	captureSuffix []byte   // "/capture HTTP/1.1\r\n…\r\n\r\n{\"quantity\":1}"
	captureBody   []byte
	capturedMark  []byte // `"captured_amount":5`

	transport *http.Transport

	// metrics: nil for the ceiling (it commits nothing).
	metrics func() (counters, error)
}

func newHTTPTarget(base, key string, ids []string, unit int64, client string, concurrency int, deadline time.Time) (*httpTarget, error) {
	addr, ok := strings.CutPrefix(base, "http://")
	if !ok {
		return nil, fmt.Errorf("bench: base URL %q is not http://", base)
	}
	addr = strings.TrimSuffix(addr, "/")
	t := &httpTarget{addr: addr, base: "http://" + addr, key: key, ids: ids, unit: unit, client: client, deadline: deadline}
	headers := "Host: " + addr + "\r\nAuthorization: Bearer " + key + "\r\nContent-Type: application/json\r\n"
	t.reserveReqs = make([][]byte, len(ids))
	t.reserveBodies = make([][]byte, len(ids))
	for i, id := range ids {
		body := `{"account_id":"` + id + `","action":"` + cycleAction + `","quantity":1}`
		t.reserveBodies[i] = []byte(body)
		t.reserveReqs[i] = []byte("POST /v1/holds HTTP/1.1\r\n" + headers + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	}
	t.captureBody = []byte(`{"quantity":1}`)
	t.capturePrefix = []byte("POST /v1/holds/")
	t.captureSuffix = []byte("/capture HTTP/1.1\r\n" + headers + "Content-Length: " + strconv.Itoa(len(t.captureBody)) + "\r\n\r\n" + string(t.captureBody))
	t.capturedMark = []byte(`"captured_amount":` + strconv.FormatInt(unit, 10))
	switch client {
	case ClientRaw:
	case ClientNetHTTP:
		t.transport = &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        concurrency,
			MaxIdleConnsPerHost: concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		}
	default:
		return nil, fmt.Errorf("bench: unknown client %q (raw or nethttp)", client)
	}
	return t, nil
}

func (t *httpTarget) close() {
	if t.transport != nil {
		t.transport.CloseIdleConnections()
	}
}

func (t *httpTarget) counters() (counters, error) {
	if t.metrics == nil {
		return counters{}, nil
	}
	return t.metrics()
}

// holdID finds the hold id in a hold's JSON: the first "id" member.
func holdID(body []byte) ([]byte, bool) {
	const key = `"id":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return nil, false
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j <= 0 {
		return nil, false
	}
	return rest[:j], true
}

// captured reports whether a capture's answer says the unit price was
// charged (`"captured_amount":5` not followed by another digit).
func (t *httpTarget) captured(body []byte) bool {
	i := bytes.Index(body, t.capturedMark)
	if i < 0 {
		return false
	}
	rest := body[i+len(t.capturedMark):]
	return len(rest) > 0 && (rest[0] < '0' || rest[0] > '9')
}

func (t *httpTarget) worker(int) (cycleFunc, func(), error) {
	if t.client == ClientNetHTTP {
		return t.netWorker()
	}
	c := &rawConn{addr: t.addr, deadline: t.deadline, req: make([]byte, 0, 512)}
	if err := c.dial(); err != nil {
		return nil, nil, err
	}
	return func(acct int) (outcome, error) {
		status, body, sent, err := c.roundTrip(t.reserveReqs[acct])
		if err != nil {
			if sent {
				return cycleAmbiguousReserve, fmt.Errorf("reserve: %w", err)
			}
			return cycleFailed, fmt.Errorf("reserve: %w", err)
		}
		if status != http.StatusCreated {
			return cycleFailed, fmt.Errorf("reserve: status %d: %s", status, snippet(body))
		}
		id, ok := holdID(body)
		if !ok {
			return cycleAmbiguousReserve, fmt.Errorf("reserve: no hold id in %s", snippet(body))
		}
		req := append(append(append(c.req[:0], t.capturePrefix...), id...), t.captureSuffix...)
		c.req = req
		status, body, sent, err = c.roundTrip(req)
		if err != nil {
			if sent {
				return cycleAmbiguousCapture, fmt.Errorf("capture: %w", err)
			}
			return cycleOrphan, fmt.Errorf("capture: %w", err)
		}
		if status != http.StatusOK {
			return cycleOrphan, fmt.Errorf("capture: status %d: %s", status, snippet(body))
		}
		if !t.captured(body) {
			return cycleDone, fmt.Errorf("capture answered %s", snippet(body))
		}
		return cycleDone, nil
	}, c.close, nil
}

func (t *httpTarget) netWorker() (cycleFunc, func(), error) {
	hc := &http.Client{Transport: t.transport}
	auth := []string{"Bearer " + t.key}
	ctype := []string{"application/json"}
	var buf bytes.Buffer
	holdsURL := t.base + "/v1/holds"
	do := func(url string, body []byte) (int, []byte, error) {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header["Authorization"] = auth
		req.Header["Content-Type"] = ctype
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, nil, err
		}
		return resp.StatusCode, buf.Bytes(), nil
	}
	return func(acct int) (outcome, error) {
		status, body, err := do(holdsURL, t.reserveBodies[acct])
		if err != nil {
			return cycleAmbiguousReserve, fmt.Errorf("reserve: %w", err)
		}
		if status != http.StatusCreated {
			return cycleFailed, fmt.Errorf("reserve: status %d: %s", status, snippet(body))
		}
		id, ok := holdID(body)
		if !ok {
			return cycleAmbiguousReserve, fmt.Errorf("reserve: no hold id in %s", snippet(body))
		}
		status, body, err = do(holdsURL+"/"+string(id)+"/capture", t.captureBody)
		if err != nil {
			return cycleAmbiguousCapture, fmt.Errorf("capture: %w", err)
		}
		if status != http.StatusOK {
			return cycleOrphan, fmt.Errorf("capture: status %d: %s", status, snippet(body))
		}
		if !t.captured(body) {
			return cycleDone, fmt.Errorf("capture answered %s", snippet(body))
		}
		return cycleDone, nil
	}, nil, nil
}

func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// rawConn is one keep-alive HTTP/1.1 connection.
type rawConn struct {
	addr     string
	deadline time.Time
	conn     net.Conn
	br       *bufio.Reader
	body     []byte
	req      []byte
}

func (c *rawConn) dial() error {
	conn, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
	if err != nil {
		return err
	}
	if !c.deadline.IsZero() {
		_ = conn.SetDeadline(c.deadline)
	}
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 4096)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

func (c *rawConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

var errBadResponse = errors.New("malformed HTTP response")

// roundTrip writes req and reads one response. sent reports whether any
// of the request may have reached the server.
func (c *rawConn) roundTrip(req []byte) (status int, body []byte, sent bool, err error) {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return 0, nil, false, err
		}
	}
	if _, err := c.conn.Write(req); err != nil {
		c.close()
		return 0, nil, true, err
	}
	status, body, keep, err := c.readResponse()
	if err != nil {
		c.close()
		return 0, nil, true, err
	}
	if !keep {
		c.close()
	}
	return status, body, true, nil
}

func (c *rawConn) readResponse() (status int, body []byte, keep bool, err error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, false, err
	}
	// "HTTP/1.1 201 Created\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, false, errBadResponse
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, nil, false, errBadResponse
		}
		status = status*10 + int(d-'0')
	}
	keep = line[7] == '1' // HTTP/1.1 keeps alive by default, 1.0 does not
	contentLength, chunked, keep, err := c.readHeaders(keep)
	if err != nil {
		return 0, nil, false, err
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		if err := c.readChunked(); err != nil {
			return 0, nil, false, err
		}
	case contentLength >= 0:
		c.body = grow(c.body, contentLength)
		if _, err := io.ReadFull(c.br, c.body); err != nil {
			return 0, nil, false, err
		}
	default:
		// No length: the body runs to the end of the connection.
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(c.br); err != nil {
			return 0, nil, false, err
		}
		c.body = append(c.body, buf.Bytes()...)
		keep = false
	}
	return status, c.body, keep, nil
}

// readHeaders reads a response's header lines up to the empty one:
// the Content-Length (-1 if none), whether the body is chunked, and
// whether the connection stays open (keep, unless Connection says).
func (c *rawConn) readHeaders(keep bool) (contentLength int, chunked, keepOpen bool, err error) {
	contentLength = -1
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, false, false, err
		}
		if len(line) <= 2 { // "\r\n"
			return contentLength, chunked, keep, nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return 0, false, false, errBadResponse
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, perr := atoiBytes(value)
			if perr != nil {
				return 0, false, false, errBadResponse
			}
			contentLength = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
}

// readChunked reads a chunked body into c.body, and its trailers.
func (c *rawConn) readChunked() error {
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimSpace(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, perr := strconv.ParseInt(string(line), 16, 32)
		if perr != nil || n < 0 {
			return errBadResponse
		}
		if n == 0 {
			// Trailers until the empty line.
			for {
				line, err = c.br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(line) <= 2 {
					return nil
				}
			}
		}
		start := len(c.body)
		c.body = grow(c.body, int(n))
		if _, err := io.ReadFull(c.br, c.body[start:]); err != nil {
			return err
		}
		if _, err := c.br.Discard(2); err != nil {
			return err
		}
	}
}

// grow extends b by n bytes.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

func atoiBytes(b []byte) (int, error) {
	if len(b) == 0 || len(b) > 12 {
		return 0, errBadResponse
	}
	n := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, errBadResponse
		}
		n = n*10 + int(d-'0')
	}
	return n, nil
}

// ---- the HTTP ceiling ---------------------------------------------------

// ceilingServer answers the two requests of the charge cycle from memory,
// with creditd's routes, authentication check and hold-shaped JSON, and
// does no storage work: what net/http and the client cost on this machine.
type ceilingServer struct {
	srv      *http.Server
	ln       net.Listener
	key      string
	n        atomic.Uint64
	pool     sync.Pool
	holdPre  []byte // hold JSON up to the id
	holdPost []byte // after the id
	capPre   []byte
	capPost  []byte
}

var jsonContentType = []string{"application/json"}

func startCeiling(key string, unit int64) (*ceilingServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &ceilingServer{ln: ln, key: "Bearer " + key}
	s.pool.New = func() any { b := make([]byte, 0, 1024); return &b }
	const placeholder = "hld_PLACEHOLDERPLACEHOLDER"
	now := time.Now().UTC().Truncate(time.Microsecond)
	h := ledger.Hold{
		ID: placeholder, AccountID: "bench-ceiling", Action: cycleAction, Category: ledger.CategoryImage,
		Quantity: 1, UnitPriceCredits: unit, AmountCredits: unit, Status: ledger.HoldPending,
		Portions:  []ledger.Portion{{GrantID: "grt_ABCDEFGHIJKLMNOPQRSTUVWXYZ", Credits: unit}},
		CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute),
	}
	split := func(h ledger.Hold) ([]byte, []byte, error) {
		b, err := json.Marshal(h)
		if err != nil {
			return nil, nil, err
		}
		i := bytes.Index(b, []byte(placeholder))
		if i < 0 {
			return nil, nil, errors.New("bench: hold JSON lacks its id")
		}
		return b[:i], append(b[i+len(placeholder):], '\n'), nil
	}
	if s.holdPre, s.holdPost, err = split(h); err != nil {
		ln.Close()
		return nil, err
	}
	h.Status, h.CapturedQuantity, h.CapturedCredits, h.ResolvedAt = ledger.HoldCaptured, 1, unit, now
	if s.capPre, s.capPost, err = split(h); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/holds", s.reserve)
	mux.HandleFunc("POST /v1/holds/{id}/capture", s.capture)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *ceilingServer) url() string { return "http://" + s.ln.Addr().String() }

func (s *ceilingServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// readBody reads the request body into a pooled buffer, as a handler that
// decodes JSON must.
func (s *ceilingServer) readBody(r *http.Request, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (s *ceilingServer) answer(w http.ResponseWriter, r *http.Request, status int, pre []byte, id func(dst []byte) []byte, post []byte) {
	if r.Header.Get("Authorization") != s.key {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	bp := s.pool.Get().(*[]byte)
	defer s.pool.Put(bp)
	body, err := s.readBody(r, (*bp)[:0])
	if err != nil || len(body) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	out := append(id(append(body[:0], pre...)), post...)
	*bp = out
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func (s *ceilingServer) reserve(w http.ResponseWriter, r *http.Request) {
	s.answer(w, r, http.StatusCreated, s.holdPre, func(dst []byte) []byte {
		// A fixed-width id, like creditd's "hld_" + 26 base32 characters.
		n := s.n.Add(1)
		dst = append(dst, "hld_"...)
		var digits [26]byte
		for i := len(digits) - 1; i >= 0; i-- {
			digits[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[n&31]
			n >>= 5
		}
		return append(dst, digits[:]...)
	}, s.holdPost)
}

func (s *ceilingServer) capture(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.answer(w, r, http.StatusOK, s.capPre, func(dst []byte) []byte { return append(dst, id...) }, s.capPost)
}
