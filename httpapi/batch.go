package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/internal/httpx"
	"github.com/creditd/creditd/ledger"
)

// POST /v1/batch runs many writes in one request, for high-volume backends.
//
// Each operation is the body of a single-operation route plus "op", the
// route's path parameter ("hold_id" or "account_id") and an optional
// "idempotency_key"; it is decoded as that route decodes its body, and run
// and answered by app.Service.Batch exactly as that route's write, with
// the status and object (or error) that route would have answered.
// Operations are independent, not atomic (see app.Service.Batch). A
// request that is malformed as a whole (bad JSON, no operations, more than
// batch_request_ops_max, an unknown op) is a 400 and runs nothing.

// batchOp is one kind of operation of POST /v1/batch.
type batchOp struct {
	// object names the result member that carries the object ("hold").
	object string
	// build decodes one operation strictly into the write its route makes,
	// with the operation's idempotency key (idem("") is nil).
	build func(raw []byte, idem func(key string) *app.Idempotency) (app.BatchOp, error)
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
// batch members and the route's path parameter added, and makes the
// request its route makes (handlers.go).
var batchOps = map[string]batchOp{
	// POST /v1/holds
	"reserve": {object: "hold", build: func(raw []byte, idem func(string) *app.Idempotency) (app.BatchOp, error) {
		var in batchReserve
		if err := decode(raw, &in); err != nil {
			return app.BatchOp{}, err
		}
		req := in.holdBody.request(idem(in.IdempotencyKey))
		return app.BatchOp{Reserve: &req}, nil
	}},
	// POST /v1/holds/{hold_id}/capture
	"capture": {object: "hold", build: func(raw []byte, idem func(string) *app.Idempotency) (app.BatchOp, error) {
		var in batchCapture
		if err := decode(raw, &in); err != nil {
			return app.BatchOp{}, err
		}
		return app.BatchOp{Capture: &app.CaptureRequest{HoldID: in.HoldID, Quantity: in.Quantity, Idem: idem(in.IdempotencyKey)}}, nil
	}},
	// POST /v1/holds/{hold_id}/release
	"release": {object: "hold", build: func(raw []byte, idem func(string) *app.Idempotency) (app.BatchOp, error) {
		var in struct {
			batchFields
			holdRef
			releaseBody
		}
		if err := decode(raw, &in); err != nil {
			return app.BatchOp{}, err
		}
		return app.BatchOp{Release: &app.ReleaseRequest{HoldID: in.HoldID, Reason: in.Reason, Idem: idem(in.IdempotencyKey)}}, nil
	}},
	// POST /v1/holds/{hold_id}/extend
	"extend": {object: "hold", build: func(raw []byte, idem func(string) *app.Idempotency) (app.BatchOp, error) {
		var in struct {
			batchFields
			holdRef
			extendBody
		}
		if err := decode(raw, &in); err != nil {
			return app.BatchOp{}, err
		}
		return app.BatchOp{Extend: &app.ExtendRequest{HoldID: in.HoldID, TTLSeconds: in.TTLSeconds, Idem: idem(in.IdempotencyKey)}}, nil
	}},
	// POST /v1/accounts/{account_id}/grants
	"grant": {object: "grant", build: func(raw []byte, idem func(string) *app.Idempotency) (app.BatchOp, error) {
		var in struct {
			batchFields
			accountRef
			grantBody
		}
		if err := decode(raw, &in); err != nil {
			return app.BatchOp{}, err
		}
		req := in.grantBody.request(in.AccountID, idem(in.IdempotencyKey))
		return app.BatchOp{Grant: &req}, nil
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
	// The operations that decode run together; the others answer their
	// error.
	ops := make([]app.BatchOp, 0, len(items))
	ran := make([]*batchItem, 0, len(items))
	for _, it := range items {
		op, err := s.batchOp(p, it)
		if err != nil {
			s.setBatchResult(it, app.BatchResult{Err: err})
			continue
		}
		ops = append(ops, op)
		ran = append(ran, it)
	}
	for i, res := range s.App.Batch(r.Context(), ops) {
		s.setBatchResult(ran[i], res)
	}
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

// batchOp decodes one operation into its write, with its
// idempotency_key in place of the Idempotency-Key header.
func (s *Server) batchOp(p Principal, it *batchItem) (app.BatchOp, error) {
	if int64(len(it.raw)) > s.cfg.Limits.RequestBodyBytesMax {
		return app.BatchOp{}, &ledger.Error{Code: ledger.ETooLarge, Message: "operation exceeds " + strconv.FormatInt(s.cfg.Limits.RequestBodyBytesMax, 10) + " bytes"}
	}
	return it.op.build(it.raw, func(key string) *app.Idempotency {
		if key == "" {
			return nil
		}
		return &app.Idempotency{Principal: p.Kind + ":" + p.ID, Key: key, Fingerprint: batchFingerprint(it.raw), Field: "idempotency_key"}
	})
}

// setBatchResult records the status and body the operation's
// single-operation route would have answered.
func (s *Server) setBatchResult(it *batchItem, res app.BatchResult) {
	if res.Err != nil {
		status, eb := httpx.ErrorBody(res.Err)
		if status >= 500 {
			s.log.Error("batch operation failed", "op", it.name, "err", res.Err)
		}
		it.status, it.body, it.failed = status, mustJSON(eb["error"]), true
		return
	}
	it.status, it.body, it.replayed = res.Status, res.Body, res.Replayed
}
