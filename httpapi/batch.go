package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/internal/httpx"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// POST /v1/batch runs many writes in one request, for high-volume backends.
//
// Each operation is the body of a single-operation route plus "op", the
// route's path parameter ("hold_id" or "account_id") and an optional
// "idempotency_key"; it is validated and run exactly as that route would
// run it, and answered with the status and object (or error) that route
// would have answered. Operations are independent, not atomic: all of a
// request's operations are handed to the engine at once, from one
// goroutine each, so that they share group commits, and each succeeds or
// fails on its own. A request that is malformed as a whole (bad JSON, no
// operations, more than batch_request_ops_max, an unknown op) is a 400 and
// runs nothing.

// batchOp is one kind of operation of POST /v1/batch.
type batchOp struct {
	// object names the result member that carries the object ("hold").
	object string
	// build decodes one operation strictly and validates it as the
	// single-operation route does; it returns the write and the
	// operation's idempotency key ("" for none).
	build func(s *Server, raw []byte) (write, string, error)
}

// batchFields are the members every operation has besides its route's body.
type batchFields struct {
	Op             string `json:"op"`
	IdempotencyKey string `json:"idempotency_key"`
}

type holdRef struct {
	HoldID string `json:"hold_id"`
}

type accountRef struct {
	AccountID string `json:"account_id"`
}

// batchOps is the table of operations. Each is its route's body with the
// batch members and the route's path parameter added; the builders are
// the routes' own (handlers.go).
var batchOps = map[string]batchOp{
	// POST /v1/holds
	"reserve": {object: "hold", build: func(s *Server, raw []byte) (write, string, error) {
		var in batchReserve
		return batchDecode(raw, &in, &in.batchFields, func() (write, error) { return s.reserveWrite(in.holdBody) })
	}},
	// POST /v1/holds/{hold_id}/capture
	"capture": {object: "hold", build: func(s *Server, raw []byte) (write, string, error) {
		var in batchCapture
		return batchDecode(raw, &in, &in.batchFields, func() (write, error) { return s.captureWrite(in.HoldID, in.captureBody) })
	}},
	// POST /v1/holds/{hold_id}/release
	"release": {object: "hold", build: func(s *Server, raw []byte) (write, string, error) {
		var in struct {
			batchFields
			holdRef
			releaseBody
		}
		return batchDecode(raw, &in, &in.batchFields, func() (write, error) { return s.releaseWrite(in.HoldID, in.releaseBody) })
	}},
	// POST /v1/holds/{hold_id}/extend
	"extend": {object: "hold", build: func(s *Server, raw []byte) (write, string, error) {
		var in struct {
			batchFields
			holdRef
			extendBody
		}
		return batchDecode(raw, &in, &in.batchFields, func() (write, error) { return s.extendWrite(in.HoldID, in.extendBody) })
	}},
	// POST /v1/accounts/{account_id}/grants
	"grant": {object: "grant", build: func(s *Server, raw []byte) (write, string, error) {
		var in struct {
			batchFields
			accountRef
			grantBody
		}
		return batchDecode(raw, &in, &in.batchFields, func() (write, error) { return s.grantWrite(in.AccountID, in.grantBody) })
	}},
}

// batchOpNames lists the operations for messages.
var batchOpNames = func() string {
	var names []string
	for name := range batchOps {
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}()

// batchDecode decodes one operation into in (whose batchFields are f) as
// strictly as a request body, then builds its write.
func batchDecode(raw []byte, in any, f *batchFields, build func() (write, error)) (write, string, error) {
	if err := decode(raw, in); err != nil {
		return write{}, "", err
	}
	wr, err := build()
	return wr, f.IdempotencyKey, err
}

// batchMetrics count what POST /v1/batch runs, beside the route's own
// creditd_http_requests_total and creditd_http_request_seconds.
type batchMetrics struct {
	requestOps prometheus.Histogram
	ops        *prometheus.CounterVec
	// opStatus are ops' children by op name (see statusCounters).
	opStatus map[string]*statusCounters
}

func newBatchMetrics(reg prometheus.Registerer) *batchMetrics {
	m := &batchMetrics{
		requestOps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "creditd_http_batch_request_ops", Help: "Operations per POST /v1/batch request that ran.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "creditd_http_batch_ops_total", Help: "Operations run by POST /v1/batch, by op and status.",
		}, []string{"op", "status"}),
	}
	reg.MustRegister(m.requestOps, m.ops)
	m.opStatus = make(map[string]*statusCounters, len(batchOps))
	for name := range batchOps {
		m.opStatus[name] = newStatusCounters(m.ops, name)
	}
	return m
}

type batchBody struct {
	Operations []json.RawMessage `json:"operations"`
}

// batchItem is one operation of a request and, once run, its result.
type batchItem struct {
	name     string
	op       batchOp
	raw      []byte
	status   int
	body     []byte // the object's JSON, or the {"error": …} object
	failed   bool
	replayed bool
}

func (s *Server) postBatch(w http.ResponseWriter, r *http.Request, p Principal) {
	items, err := s.batchItems(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Go(func() { s.runBatchItem(r, p, it) })
	}
	wg.Wait()
	s.batch.requestOps.Observe(float64(len(items)))
	var out bytes.Buffer
	out.Grow(len(items) * 512)
	out.WriteString(`{"results":[`)
	for i, it := range items {
		s.batch.opStatus[it.name].inc(it.status)
		if i > 0 {
			out.WriteByte(',')
		}
		// "status" first: clients may scan for it.
		out.WriteString(`{"status":`)
		out.WriteString(strconv.Itoa(it.status))
		if it.replayed {
			out.WriteString(`,"idempotent_replayed":true`)
		}
		if it.failed {
			out.WriteString(`,"error":`)
		} else {
			out.WriteString(`,"` + it.op.object + `":`)
		}
		out.Write(it.body)
		out.WriteByte('}')
	}
	out.WriteString(`]}`)
	writeRaw(w, http.StatusOK, out.Bytes())
}

// batchItems reads a batch request and checks it as a whole: a well-formed
// body, 1 to batch_request_ops_max operations, each an object naming a
// known op. Any problem fails the whole request before anything runs.
func (s *Server) batchItems(w http.ResponseWriter, r *http.Request) ([]*batchItem, error) {
	lim := s.cfg.Limits
	if r.Header.Get("Idempotency-Key") != "" {
		return nil, ledger.Errorf(ledger.EInvalid, "POST /v1/batch takes no Idempotency-Key header; give each operation its own idempotency_key")
	}
	body, err := s.readBodyMax(w, r, lim.BatchRequestBytesMax)
	if err != nil {
		return nil, err
	}
	// Each operation's strings are checked by the text rule when it is
	// decoded (batchDecode), so that a bad one fails only itself.
	var in batchBody
	if err := decodeChecked(body, &in); err != nil {
		return nil, err
	}
	switch n := len(in.Operations); {
	case n == 0:
		return nil, ledger.Errorf(ledger.EInvalid, "operations must list at least one operation")
	case n > lim.BatchRequestOpsMax:
		e := ledger.Errorf(ledger.EInvalid, "operations lists %d operations; at most %d per request (batch_request_ops_max)", n, lim.BatchRequestOpsMax)
		e.Details = map[string]any{"limit": lim.BatchRequestOpsMax}
		return nil, e
	}
	items := make([]*batchItem, len(in.Operations))
	for i, raw := range in.Operations {
		name, err := batchOpName(raw)
		if err != nil {
			e := ledger.Errorf(ledger.EInvalid, "operations[%d]: %s", i, ledger.ErrorMessage(err))
			e.Details = map[string]any{"index": i}
			return nil, e
		}
		items[i] = &batchItem{name: name, op: batchOps[name], raw: raw}
	}
	return items, nil
}

// batchOpName reads the op of one operation.
func batchOpName(raw []byte) (string, error) {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return "", ledger.Errorf(ledger.EInvalid, "an operation must be a JSON object")
	}
	var head struct {
		Op *string `json:"op"`
	}
	if op, ok := plainOp(raw); ok {
		head.Op = &op // as encoding/json reads it (fastdecode.go)
	} else if err := json.Unmarshal(raw, &head); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return "", ledger.Errorf(ledger.EInvalid, "op must be a string (%s)", batchOpNames)
		}
		return "", ledger.Errorf(ledger.EInvalid, "malformed JSON")
	}
	if head.Op == nil || *head.Op == "" {
		return "", ledger.Errorf(ledger.EInvalid, "op is required (%s)", batchOpNames)
	}
	if _, ok := batchOps[*head.Op]; !ok {
		return "", ledger.Errorf(ledger.EInvalid, "unknown op %q (%s)", *head.Op, batchOpNames)
	}
	return *head.Op, nil
}

// batchFingerprint identifies an operation for its idempotency key: the
// operation's JSON as sent. It differs from every single-operation route's
// fingerprint, so a key used there and again in a batch is a mismatch.
func batchFingerprint(raw []byte) string { return "POST /v1/batch " + sha256Hex(raw) }

// runBatchItem runs one operation as its single-operation route would,
// with its idempotency_key in place of the Idempotency-Key header, and
// records the status and body that route would have answered.
func (s *Server) runBatchItem(r *http.Request, p Principal, it *batchItem) {
	status, body, replayed, err := s.batchResult(r.Context(), p, it)
	if err != nil {
		var eb map[string]any
		status, eb = httpx.ErrorBody(err)
		if status >= 500 {
			s.log.Error("batch operation failed", "op", it.name, "err", err)
		}
		body, it.failed = mustJSON(eb["error"]), true
	}
	it.status, it.body, it.replayed = status, body, replayed
}

func (s *Server) batchResult(ctx context.Context, p Principal, it *batchItem) (status int, body []byte, replayed bool, err error) {
	if int64(len(it.raw)) > s.cfg.Limits.RequestBodyBytesMax {
		return 0, nil, false, &ledger.Error{Code: ledger.ETooLarge, Message: "operation exceeds " + strconv.FormatInt(s.cfg.Limits.RequestBodyBytesMax, 10) + " bytes"}
	}
	wr, key, err := it.op.build(s, it.raw)
	if err != nil {
		return 0, nil, false, err
	}
	var idem *engine.Idempotency
	if key != "" {
		if err := ledger.CheckText("idempotency_key", key, s.cfg.Limits.IdempotencyKeyBytesMax); err != nil {
			return 0, nil, false, err
		}
		var replay *engine.Replay
		idem, replay, err = s.idempotencyKey(ctx, p, key, batchFingerprint(it.raw), wr.render)
		if err != nil {
			return 0, nil, false, err
		}
		if replay != nil {
			return replay.Status, replay.Body, true, nil
		}
	}
	v, err := wr.call(ctx, idem)
	if err != nil {
		return 0, nil, false, err
	}
	status, body, replayed = rendered(v, wr.render)
	return status, body, replayed, nil
}
