package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/blob"
	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/postgres"
	"github.com/creditd/creditd/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is a Service over a real store with a test clock.
type env struct {
	svc   *app.Service
	store ledger.Store
	eng   *engine.Engine
	ctx   context.Context
}

// eachStore runs f on SQLite and on PostgreSQL.
func eachStore(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("SQLite", func(t *testing.T) { f(t, newEnv(t, false)) })
	t.Run("PostgreSQL", func(t *testing.T) { f(t, newEnv(t, true)) })
}

func newEnv(t *testing.T, pg bool) *env { return newEnvConfig(t, pg, ledger.DefaultConfig()) }

func newEnvConfig(t *testing.T, pg bool, cfg *ledger.Config) *env {
	t.Helper()
	ctx := context.Background()
	var st ledger.Store
	var blobs blob.Store
	if pg {
		s, err := postgres.Open(ctx, pgtest.DSN(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		st, blobs = s, s.Blobs()
	} else {
		s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "creditd.db"))
		if err != nil {
			t.Fatal(err)
		}
		d, err := blob.NewDir(filepath.Join(t.TempDir(), "assets"))
		if err != nil {
			t.Fatal(err)
		}
		st, blobs = s, d
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clock := ledger.NewTestClock(time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC))
	eng, err := engine.New(ctx, engine.Options{Config: cfg, Store: st, Clock: clock, Logger: log, SweepInterval: time.Hour, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		eng.Close()
		st.Close()
	})
	return &env{svc: app.New(app.Options{Engine: eng, Store: st, Blobs: blobs, Logger: log}), store: st, eng: eng, ctx: ctx}
}

func ptr[T any](v T) *T { return &v }

// account creates a paid account with credits to spend.
func (e *env) account(t *testing.T, id string) {
	t.Helper()
	if _, err := e.svc.PutAccount(e.ctx, app.PutAccountRequest{ID: id, Plan: ledger.PlanPaid}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Grant(e.ctx, app.GrantRequest{AccountID: id, Amount: 1000, Source: ledger.SourceAdmin}); err != nil {
		t.Fatal(err)
	}
}

func key(k, fingerprint string) *app.Idempotency {
	return &app.Idempotency{Principal: "admin:admin", Key: k, Fingerprint: fingerprint, Field: "Idempotency-Key"}
}

// wantResponse checks that an outcome's response is status and the JSON
// of v, byte for byte as encoding/json writes it.
func wantResponse(t *testing.T, what string, status, wantStatus int, body []byte, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if status != wantStatus || !bytes.Equal(body, want) {
		t.Errorf("%s: %d %s\nwant %d %s", what, status, body, wantStatus, want)
	}
}

// TestTypedOutcomes: every write returns its typed result together with
// the response it answers with (status and body), with or without an
// idempotency key.
func TestTypedOutcomes(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		acct, err := e.svc.PutAccount(e.ctx, app.PutAccountRequest{ID: "a", Plan: ledger.PlanPaid})
		if err != nil || !acct.Value.Created || acct.Replayed {
			t.Fatalf("create account: %+v, %v", acct, err)
		}
		wantResponse(t, "create account", acct.Status, http.StatusCreated, acct.Body, acct.Value.Account)
		acct, err = e.svc.PutAccount(e.ctx, app.PutAccountRequest{ID: "a", Timezone: "Europe/Berlin"})
		if err != nil || acct.Value.Created || acct.Value.Account.Timezone != "Europe/Berlin" {
			t.Fatalf("update account: %+v, %v", acct, err)
		}
		wantResponse(t, "update account", acct.Status, http.StatusOK, acct.Body, acct.Value.Account)

		g, err := e.svc.Grant(e.ctx, app.GrantRequest{AccountID: "a", Amount: 100, Source: ledger.SourceAdmin, Reference: "r1"})
		if err != nil || !g.Value.Created || g.Value.Grant.AmountCredits != 100 {
			t.Fatalf("grant: %+v, %v", g, err)
		}
		wantResponse(t, "grant", g.Status, http.StatusCreated, g.Body, g.Value.Grant)
		again, err := e.svc.Grant(e.ctx, app.GrantRequest{AccountID: "a", Amount: 100, Source: ledger.SourceAdmin, Reference: "r1"})
		if err != nil || again.Value.Created || again.Value.Grant.ID != g.Value.Grant.ID {
			t.Fatalf("grant again: %+v, %v", again, err)
		}
		wantResponse(t, "grant again", again.Status, http.StatusOK, again.Body, again.Value.Grant)

		h, err := e.svc.Reserve(e.ctx, app.ReserveRequest{AccountID: "a", Action: "generate", Quantity: ptr[int64](2)})
		if err != nil || h.Value == nil || h.Value.Status != ledger.HoldPending || h.Value.Quantity != 2 {
			t.Fatalf("reserve: %+v, %v", h, err)
		}
		wantResponse(t, "reserve", h.Status, http.StatusCreated, h.Body, h.Value)
		c, err := e.svc.Capture(e.ctx, app.CaptureRequest{HoldID: h.Value.ID, Quantity: ptr[int64](1)})
		if err != nil || c.Value.Status != ledger.HoldCaptured || c.Value.CapturedCredits != h.Value.UnitPriceCredits {
			t.Fatalf("capture: %+v, %v", c, err)
		}
		wantResponse(t, "capture", c.Status, http.StatusOK, c.Body, c.Value)

		h2, err := e.svc.Reserve(e.ctx, app.ReserveRequest{AccountID: "a", Action: "generate"})
		if err != nil {
			t.Fatal(err)
		}
		x, err := e.svc.Extend(e.ctx, app.ExtendRequest{HoldID: h2.Value.ID, TTLSeconds: ptr[int64](600)})
		if err != nil || x.Value.Status != ledger.HoldPending {
			t.Fatalf("extend: %+v, %v", x, err)
		}
		wantResponse(t, "extend", x.Status, http.StatusOK, x.Body, x.Value)
		r, err := e.svc.Release(e.ctx, app.ReleaseRequest{HoldID: h2.Value.ID, Reason: "cancelled"})
		if err != nil || r.Value.Status != ledger.HoldReleased {
			t.Fatalf("release: %+v, %v", r, err)
		}
		wantResponse(t, "release", r.Status, http.StatusOK, r.Body, r.Value)

		j, err := e.svc.CreateJob(e.ctx, app.CreateJobRequest{AccountID: "a", Action: "generate", Params: []byte(`{ "prompt": "a cat" }`)})
		if err != nil || j.Value.Status != ledger.JobQueued || string(j.Value.Params) != `{"prompt":"a cat"}` {
			t.Fatalf("create job: %+v, %v", j, err)
		}
		wantResponse(t, "create job", j.Status, http.StatusCreated, j.Body, j.Value)
		p, err := e.svc.PatchJob(e.ctx, app.PatchJobRequest{JobID: j.Value.ID, Params: []byte(`{"prompt":"a dog"}`)})
		if err != nil || p.Value.ParamsVersion != j.Value.ParamsVersion+1 {
			t.Fatalf("patch job: %+v, %v", p, err)
		}
		wantResponse(t, "patch job", p.Status, http.StatusOK, p.Body, p.Value)
		leased, err := e.svc.Lease(e.ctx, app.LeaseRequest{Actions: []string{"generate"}})
		if err != nil || leased == nil || leased.ID != j.Value.ID {
			t.Fatalf("lease: %+v, %v", leased, err)
		}
		ref := app.LeaseRef{JobID: leased.ID, LeaseID: leased.LeaseID}
		f, err := e.svc.FailJob(e.ctx, app.FailRequest{LeaseRef: ref, Error: "out of memory", Retryable: false})
		if err != nil || f.Value.Status != ledger.JobFailed {
			t.Fatalf("fail job: %+v, %v", f, err)
		}
		wantResponse(t, "fail job", f.Status, http.StatusOK, f.Body, f.Value)

		j2, err := e.svc.CreateJob(e.ctx, app.CreateJobRequest{AccountID: "a", Action: "generate"})
		if err != nil {
			t.Fatal(err)
		}
		cj, err := e.svc.CancelJob(e.ctx, app.CancelJobRequest{JobID: j2.Value.ID})
		if err != nil || cj.Value.Status != ledger.JobCancelled {
			t.Fatalf("cancel job: %+v, %v", cj, err)
		}
		wantResponse(t, "cancel job", cj.Status, http.StatusOK, cj.Body, cj.Value)
	})
}

// TestReplayIsTheStoredResponse: a write with a used key answers the
// response stored under it, byte for byte, as it was stored (also a record
// written by an earlier version, whatever its bytes), without running
// again; another request with the key is idempotency_mismatch.
func TestReplayIsTheStoredResponse(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a")
		first, err := e.svc.Reserve(e.ctx, app.ReserveRequest{AccountID: "a", Action: "generate", Idem: key("k1", "fp1")})
		if err != nil || first.Replayed || first.Value == nil {
			t.Fatalf("first: %+v, %v", first, err)
		}
		rec, err := e.store.GetIdempotency(e.ctx, "admin:admin", "k1")
		if err != nil || rec.Status != first.Status || !bytes.Equal(rec.Body, first.Body) || rec.Fingerprint != "fp1" {
			t.Fatalf("stored record: %+v, %v; want the first answer %d %s", rec, err, first.Status, first.Body)
		}
		before, _ := e.svc.Balance(e.ctx, "a")
		replay, err := e.svc.Reserve(e.ctx, app.ReserveRequest{AccountID: "a", Action: "generate", Idem: key("k1", "fp1")})
		if err != nil || !replay.Replayed || replay.Value != nil {
			t.Fatalf("replay: %+v, %v", replay, err)
		}
		if replay.Status != first.Status || !bytes.Equal(replay.Body, first.Body) {
			t.Errorf("replay: %d %s\nwant %d %s", replay.Status, replay.Body, first.Status, first.Body)
		}
		if after, _ := e.svc.Balance(e.ctx, "a"); after.AvailableCredits != before.AvailableCredits {
			t.Errorf("a replay reserved again: available %d → %d", before.AvailableCredits, after.AvailableCredits)
		}
		_, err = e.svc.Reserve(e.ctx, app.ReserveRequest{AccountID: "a", Action: "generate", Idem: key("k1", "another request")})
		if ledger.ErrorCode(err) != ledger.EIdempotencyMismatch || app.Status(ledger.ErrorCode(err)) != http.StatusUnprocessableEntity {
			t.Errorf("another request with the key: %v; want idempotency_mismatch (422)", err)
		}

		// A record as an earlier version stored it: its bytes come back
		// unchanged, on any write of the principal with that key.
		old := &ledger.IdempotencyRecord{Principal: "admin:admin", Key: "old", Fingerprint: "fp-old",
			Status: 201, Body: []byte(`{"id":"hold_old",  "note":"stored by an earlier version"}`), CreatedAt: e.eng.Now()}
		b, err := e.store.BeginBatch(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.SaveIdempotency(e.ctx, []*ledger.IdempotencyRecord{old}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		got, err := e.svc.Capture(e.ctx, app.CaptureRequest{HoldID: first.Value.ID, Quantity: ptr[int64](1), Idem: key("old", "fp-old")})
		if err != nil || !got.Replayed || got.Status != 201 || !bytes.Equal(got.Body, old.Body) {
			t.Errorf("replay of an earlier version's record: %d %s, %v; want 201 %s", got.Status, got.Body, err, old.Body)
		}
		if h, _ := e.svc.Hold(e.ctx, first.Value.ID); h.Status != ledger.HoldPending {
			t.Errorf("the replayed capture ran: hold %s", h.Status)
		}
	})
}

// TestConcurrentRetriesRunOnce: requests with one key at once run once;
// the others replay its response (answered before queueing or inside the
// batch, by the one check), byte for byte.
func TestConcurrentRetriesRunOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a")
		before, _ := e.svc.Balance(e.ctx, "a")
		const n = 16
		outs := make([]app.Outcome[*ledger.Hold], n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				outs[i], errs[i] = e.svc.Reserve(e.ctx, app.ReserveRequest{AccountID: "a", Action: "generate", Idem: key("same", "fp")})
			})
		}
		wg.Wait()
		ran := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("request %d: %v", i, errs[i])
			}
			if !outs[i].Replayed {
				ran++
			}
			if outs[i].Status != outs[0].Status || !bytes.Equal(outs[i].Body, outs[0].Body) {
				t.Errorf("request %d answered %d %s; request 0 %d %s", i, outs[i].Status, outs[i].Body, outs[0].Status, outs[0].Body)
			}
		}
		if ran != 1 {
			t.Errorf("%d of %d requests with one key ran; want 1", ran, n)
		}
		after, _ := e.svc.Balance(e.ctx, "a")
		if after.AvailableCredits != before.AvailableCredits-5 {
			t.Errorf("available %d → %d; want one reserve of 5", before.AvailableCredits, after.AvailableCredits)
		}
	})
}

// TestBadKeysAndRequests: a key the text rule refuses, and requests
// missing what they need, are invalid_request before anything runs.
func TestBadKeysAndRequests(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a")
		before, _ := e.svc.Balance(e.ctx, "a")
		bad := key("k\x00", "fp")
		bad.Field = "idempotency_key"
		_, err := e.svc.Reserve(e.ctx, app.ReserveRequest{AccountID: "a", Action: "generate", Idem: bad})
		if ledger.ErrorCode(err) != ledger.EInvalid || !bytes.Contains([]byte(ledger.ErrorMessage(err)), []byte("idempotency_key")) {
			t.Errorf("a key with a NUL byte: %v; want invalid_request naming idempotency_key", err)
		}
		for what, call := range map[string]func() error{
			"reserve without action": func() error {
				_, err := e.svc.Reserve(e.ctx, app.ReserveRequest{AccountID: "a"})
				return err
			},
			"capture without quantity": func() error {
				_, err := e.svc.Capture(e.ctx, app.CaptureRequest{HoldID: "hold_x"})
				return err
			},
			"release without reason": func() error {
				_, err := e.svc.Release(e.ctx, app.ReleaseRequest{HoldID: "hold_x"})
				return err
			},
			"grant without source": func() error {
				_, err := e.svc.Grant(e.ctx, app.GrantRequest{AccountID: "a", Amount: 5})
				return err
			},
			"job with params not an object": func() error {
				_, err := e.svc.CreateJob(e.ctx, app.CreateJobRequest{AccountID: "a", Action: "generate", Params: []byte(`[1]`)})
				return err
			},
			"complete without lease": func() error {
				_, err := e.svc.CompleteJob(e.ctx, app.CompleteRequest{LeaseRef: app.LeaseRef{JobID: "job_x"}})
				return err
			},
		} {
			if err := call(); ledger.ErrorCode(err) != ledger.EInvalid {
				t.Errorf("%s: %v; want invalid_request", what, err)
			}
		}
		if after, _ := e.svc.Balance(e.ctx, "a"); after.AvailableCredits != before.AvailableCredits || after.HeldCredits != before.HeldCredits {
			t.Errorf("bad requests changed the balance: %+v → %+v", before, after)
		}
		// A job of another account answers as a missing one.
		j, err := e.svc.CreateJob(e.ctx, app.CreateJobRequest{AccountID: "a", Action: "generate"})
		if err != nil {
			t.Fatal(err)
		}
		other := func(acct string) bool { return acct == "b" }
		if _, err := e.svc.CancelJob(e.ctx, app.CancelJobRequest{JobID: j.Value.ID, May: other}); ledger.ErrorCode(err) != ledger.ENotFound {
			t.Errorf("cancel of another account's job: %v; want not_found", err)
		}
		if _, err := e.svc.CreateJob(e.ctx, app.CreateJobRequest{AccountID: "a", Action: "generate", May: other}); ledger.ErrorCode(err) != ledger.ENotFound {
			t.Errorf("job on another account: %v; want not_found", err)
		}
	})
}

// TestStatusTable: every code maps to its one status; an unknown one is
// 500.
func TestStatusTable(t *testing.T) {
	for code, want := range map[string]int{
		ledger.EInvalid: 400, ledger.EUnauthenticated: 401, ledger.EInsufficient: 402, ledger.EForbidden: 403,
		ledger.ENotFound: 404, ledger.EMethodNotAllowed: 405, ledger.EConflict: 409, ledger.ETooLarge: 413,
		ledger.EIdempotencyMismatch: 422, ledger.EQuotaExceeded: 403, ledger.ETooMany: 429, ledger.EInternal: 500,
		ledger.EUnavailable: 503, "no_such_code": 500,
	} {
		if got := app.Status(code); got != want {
			t.Errorf("Status(%q) = %d, want %d", code, got, want)
		}
	}
}

func pngBytes(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewRGBA(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestAssetsAndWorkerProtocol: uploads within the budget, a job's input
// and output under its lease (a lost lease reads and stores nothing), an
// asset in use that cannot be deleted, and completion that makes the
// staged output visible.
func TestAssetsAndWorkerProtocol(t *testing.T) {
	cfg := ledger.DefaultConfig()
	cfg.Limits.AssetsPerAccountMax = 1
	for _, pg := range []bool{false, true} {
		name := "SQLite"
		if pg {
			name = "PostgreSQL"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnvConfig(t, pg, cfg)
			e.account(t, "a")
			img := pngBytes(t)
			read := func() ([]byte, string, error) { return img, "image/png", nil }
			up, err := e.svc.Upload(e.ctx, app.UploadRequest{AccountID: "a", Read: read})
			if err != nil || up.Kind != ledger.AssetUpload || up.Width != 8 {
				t.Fatalf("upload: %+v, %v", up, err)
			}
			if _, err := e.svc.Upload(e.ctx, app.UploadRequest{AccountID: "a", Read: read}); ledger.ErrorCode(err) != ledger.EQuotaExceeded {
				t.Errorf("upload over the budget: %v; want quota_exceeded", err)
			}
			if _, err := e.svc.Upload(e.ctx, app.UploadRequest{AccountID: "nobody", Read: read}); ledger.ErrorCode(err) != ledger.ENotFound {
				t.Errorf("upload to a missing account: %v; want not_found", err)
			}
			if u, err := e.svc.UploadUsage(e.ctx, "a"); err != nil || u.Count != 1 {
				t.Errorf("upload usage: %+v, %v; want 1 upload", u, err)
			}
			if _, err := e.svc.Asset(e.ctx, up.ID, func(acct string) bool { return acct == "b" }); ledger.ErrorCode(err) != ledger.ENotFound {
				t.Errorf("another account's asset: %v; want not_found", err)
			}

			j, err := e.svc.CreateJob(e.ctx, app.CreateJobRequest{AccountID: "a", Action: "generate",
				Params: []byte(`{"prompt":"x","refs":["` + up.ID + `"]}`)})
			if err != nil {
				t.Fatal(err)
			}
			leased, err := e.svc.Lease(e.ctx, app.LeaseRequest{Actions: []string{"generate"}})
			if err != nil || leased == nil || leased.ID != j.Value.ID {
				t.Fatalf("lease: %+v, %v", leased, err)
			}
			lease := app.LeaseRef{JobID: leased.ID, LeaseID: leased.LeaseID}
			lost := app.LeaseRef{JobID: leased.ID, LeaseID: "lease_other"}
			if _, err := e.svc.JobInput(e.ctx, app.InputRequest{LeaseRef: lost, AssetID: up.ID}); ledger.ErrorCode(err) != ledger.EConflict {
				t.Errorf("input under a lost lease: %v; want conflict", err)
			}
			if in, err := e.svc.JobInput(e.ctx, app.InputRequest{LeaseRef: lease, AssetID: up.ID}); err != nil || in.ID != up.ID {
				t.Errorf("input: %+v, %v", in, err)
			}
			if _, err := e.svc.JobInput(e.ctx, app.InputRequest{LeaseRef: lease, AssetID: "asset_unnamed"}); ledger.ErrorCode(err) != ledger.ENotFound {
				t.Errorf("an input the params do not name: %v; want not_found", err)
			}
			if err := e.svc.DeleteAsset(e.ctx, up); ledger.ErrorCode(err) != ledger.EConflict {
				t.Errorf("delete of an asset a running job uses: %v; want conflict", err)
			}

			readCalled := false
			_, err = e.svc.StoreOutput(e.ctx, app.OutputRequest{LeaseRef: lost, Read: func() ([]byte, string, error) {
				readCalled = true
				return read()
			}})
			if ledger.ErrorCode(err) != ledger.EConflict || readCalled {
				t.Errorf("output under a lost lease: %v (body read: %v); want conflict before the body is read", err, readCalled)
			}
			out, err := e.svc.StoreOutput(e.ctx, app.OutputRequest{LeaseRef: lease, Read: read})
			if err != nil || out.State != ledger.AssetStaged || out.JobID != leased.ID {
				t.Fatalf("output: %+v, %v", out, err)
			}
			if _, err := e.svc.Asset(e.ctx, out.ID, nil); ledger.ErrorCode(err) != ledger.ENotFound {
				t.Errorf("a staged output before complete: %v; want not_found", err)
			}
			if _, err := e.svc.CompleteJob(e.ctx, app.CompleteRequest{LeaseRef: lease, Outputs: []string{up.ID}}); ledger.ErrorCode(err) != ledger.EInvalid {
				t.Errorf("complete listing an upload: %v; want invalid_request", err)
			}
			done, err := e.svc.CompleteJob(e.ctx, app.CompleteRequest{LeaseRef: lease, Outputs: []string{out.ID}})
			if err != nil || done.Value.Status != ledger.JobSucceeded || done.Value.ChargedCredits != 5 {
				t.Fatalf("complete: %+v, %v", done, err)
			}
			wantResponse(t, "complete", done.Status, http.StatusOK, done.Body, done.Value)
			if a, err := e.svc.Asset(e.ctx, out.ID, func(acct string) bool { return acct == "a" }); err != nil || a.ID != out.ID {
				t.Errorf("the output after complete: %+v, %v", a, err)
			}
			if err := e.svc.DeleteAsset(e.ctx, up); err != nil {
				t.Errorf("delete once the job ended: %v", err)
			}
			if u, err := e.svc.UploadUsage(e.ctx, "a"); err != nil || u.Count != 0 {
				t.Errorf("upload usage after the delete: %+v, %v; want none", u, err)
			}
		})
	}
}
