package bench

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
)

// batchTarget drives creditd over HTTP with POST /v1/batch: each call of
// a worker runs n charge cycles as two requests, a batch of n reserves
// and then a batch of the captures of the holds it got. A cycle completes
// when the capture batch answers, so every cycle of a call has the call's
// latency (both requests).
type batchTarget struct {
	*httpTarget // connection, client and commit counters
	n           int

	reserveOps [][]byte // per account: one reserve operation
	headers    []byte   // "Host: …\r\nAuthorization: …\r\nContent-Type: …\r\n"
}

func newBatchTarget(ht *httpTarget, n int) *batchTarget {
	t := &batchTarget{httpTarget: ht, n: n}
	t.reserveOps = make([][]byte, len(ht.ids))
	for i, id := range ht.ids {
		t.reserveOps[i] = []byte(`{"op":"reserve","account_id":"` + id + `","action":"` + cycleAction + `","quantity":1}`)
	}
	t.headers = []byte("Host: " + ht.addr + "\r\nAuthorization: Bearer " + ht.key + "\r\nContent-Type: application/json\r\n")
	return t
}

func (t *batchTarget) cyclesPerCall() int { return t.n }

// batchPoster sends one POST /v1/batch; sent reports whether any of it
// may have reached the server.
type batchPoster func(body []byte) (status int, resp []byte, sent bool, err error)

func (t *batchTarget) poster() (batchPoster, func(), error) {
	if t.client == ClientNetHTTP {
		hc := &http.Client{Transport: t.transport}
		url := t.base + "/v1/batch"
		auth, ctype := []string{"Bearer " + t.key}, []string{"application/json"}
		var buf bytes.Buffer
		return func(body []byte) (int, []byte, bool, error) {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				return 0, nil, false, err
			}
			req.Header["Authorization"], req.Header["Content-Type"] = auth, ctype
			resp, err := hc.Do(req)
			if err != nil {
				return 0, nil, true, err
			}
			buf.Reset()
			_, err = buf.ReadFrom(resp.Body)
			resp.Body.Close()
			if err != nil {
				return 0, nil, true, err
			}
			return resp.StatusCode, buf.Bytes(), true, nil
		}, nil, nil
	}
	c := &rawConn{addr: t.addr, deadline: t.deadline}
	if err := c.dial(); err != nil {
		return nil, nil, err
	}
	var req []byte
	return func(body []byte) (int, []byte, bool, error) {
		req = append(req[:0], "POST /v1/batch HTTP/1.1\r\n"...)
		req = append(req, t.headers...)
		req = append(req, "Content-Length: "...)
		req = strconv.AppendInt(req, int64(len(body)), 10)
		req = append(req, "\r\n\r\n"...)
		req = append(req, body...)
		return c.roundTrip(req)
	}, c.close, nil
}

func (t *batchTarget) batchWorker(int) (batchFunc, func(), error) {
	post, release, err := t.poster()
	if err != nil {
		return nil, nil, err
	}
	c := &batchCaller{t: t, post: post}
	return c.cycles, release, nil
}

// batchCaller is one worker of a batch setting: its buffers, reused from
// call to call.
type batchCaller struct {
	t        *batchTarget
	post     batchPoster
	body     []byte
	holds    [][]byte // hold id per cycle; nil when the reserve failed
	capOf    []int    // cycle of each capture operation
	firstErr error    // of a single operation
}

// cycles runs the cycles of accts: one batch of reserves, then one of the
// captures of the holds it got.
func (c *batchCaller) cycles(accts []int, outs []outcome) error {
	c.firstErr = nil
	if err := c.reserve(accts, outs); err != nil {
		return err
	}
	if err := c.capture(outs); err != nil {
		return err
	}
	return c.firstErr
}

// reserve sends the reserves of accts and keeps the holds it got.
func (c *batchCaller) reserve(accts []int, outs []outcome) error {
	c.body = append(c.body[:0], `{"operations":[`...)
	for i, a := range accts {
		if i > 0 {
			c.body = append(c.body, ',')
		}
		c.body = append(c.body, c.t.reserveOps[a]...)
	}
	c.body = append(c.body, "]}"...)
	status, resp, sent, err := c.post(c.body)
	if err == nil && status != http.StatusOK {
		// Refused as a whole: nothing ran.
		err, sent = fmt.Errorf("status %d: %s", status, snippet(resp)), false
	}
	if err != nil {
		o := cycleFailed
		if sent {
			o = cycleAmbiguousReserve
		}
		all(outs, o)
		return fmt.Errorf("reserve batch: %w", err)
	}
	c.holds = c.holds[:0]
	n, perr := eachResult(resp, func(i, status int, res []byte) {
		if i >= len(accts) {
			return
		}
		id, ok := holdID(res)
		if status != http.StatusCreated || !ok {
			outs[i] = cycleFailed
			c.holds = append(c.holds, nil)
			if c.firstErr == nil {
				c.firstErr = fmt.Errorf("reserve: status %d: %s", status, snippet(res))
			}
			return
		}
		c.holds = append(c.holds, id)
	})
	if perr == nil && n != len(accts) {
		perr = fmt.Errorf("%d results for %d operations", n, len(accts))
	}
	if perr != nil {
		// Which holds exist is unknown.
		all(outs, cycleAmbiguousReserve)
		return fmt.Errorf("reserve batch: %w: %s", perr, snippet(resp))
	}
	return nil
}

// capture sends the captures of the holds reserve got.
func (c *batchCaller) capture(outs []outcome) error {
	// resp of the reserves is reused by this request: the ids were taken
	// out first.
	c.body = append(c.body[:0], `{"operations":[`...)
	c.capOf = c.capOf[:0]
	for i, id := range c.holds {
		if id == nil {
			continue
		}
		if len(c.capOf) > 0 {
			c.body = append(c.body, ',')
		}
		c.body = append(c.body, `{"op":"capture","hold_id":"`...)
		c.body = append(c.body, id...)
		c.body = append(c.body, `","quantity":1}`...)
		c.capOf = append(c.capOf, i)
	}
	c.body = append(c.body, "]}"...)
	if len(c.capOf) == 0 {
		return nil
	}
	status, resp, sent, err := c.post(c.body)
	if err == nil && status != http.StatusOK {
		err, sent = fmt.Errorf("status %d: %s", status, snippet(resp)), false
	}
	if err != nil {
		o := cycleOrphan
		if sent {
			o = cycleAmbiguousCapture
		}
		for _, i := range c.capOf {
			outs[i] = o
		}
		return fmt.Errorf("capture batch: %w", err)
	}
	n, perr := eachResult(resp, func(j, status int, res []byte) {
		if j < len(c.capOf) {
			outs[c.capOf[j]] = c.captureOutcome(status, res)
		}
	})
	if perr == nil && n != len(c.capOf) {
		perr = fmt.Errorf("%d results for %d operations", n, len(c.capOf))
	}
	if perr != nil {
		for _, i := range c.capOf {
			outs[i] = cycleAmbiguousCapture
		}
		return fmt.Errorf("capture batch: %w: %s", perr, snippet(resp))
	}
	return nil
}

// captureOutcome is a cycle's outcome from its capture's result.
func (c *batchCaller) captureOutcome(status int, res []byte) outcome {
	switch {
	case status != http.StatusOK:
		if c.firstErr == nil {
			c.firstErr = fmt.Errorf("capture: status %d: %s", status, snippet(res))
		}
		return cycleOrphan
	case !c.t.captured(res):
		// Something was committed, but not what was asked: the balance
		// check will find it.
		if c.firstErr == nil {
			c.firstErr = fmt.Errorf("capture answered %s", snippet(res))
		}
	}
	return cycleDone
}

func all(outs []outcome, o outcome) {
	for i := range outs {
		outs[i] = o
	}
}

// resultMark opens every result of a POST /v1/batch answer: creditd
// writes "status" first, and no object inside a result starts with it.
var resultMark = []byte(`{"status":`)

// eachResult calls fn with each result of a POST /v1/batch answer, in
// order: its index, status and JSON (up to the next result). It returns
// the number of results.
func eachResult(body []byte, fn func(i, status int, res []byte)) (int, error) {
	rest, ok := bytes.CutPrefix(bytes.TrimSpace(body), []byte(`{"results":[`))
	if !ok {
		return 0, errBadResponse
	}
	n := 0
	for len(rest) > 0 && rest[0] != ']' {
		if !bytes.HasPrefix(rest, resultMark) {
			return n, errBadResponse
		}
		res := rest
		next := bytes.Index(rest[len(resultMark):], resultMark)
		if next >= 0 {
			res, rest = rest[:len(resultMark)+next], rest[len(resultMark)+next:]
		} else {
			rest = nil
		}
		status, digits := 0, res[len(resultMark):]
		for len(digits) > 0 && digits[0] >= '0' && digits[0] <= '9' {
			status = status*10 + int(digits[0]-'0')
			digits = digits[1:]
		}
		if status == 0 || len(digits) == 0 || (digits[0] != ',' && digits[0] != '}') {
			return n, errBadResponse
		}
		fn(n, status, res)
		n++
	}
	return n, nil
}
