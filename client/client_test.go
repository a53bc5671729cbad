package client_test

// The client against a live server on both stores: every method, its
// typed answers and its typed errors.

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"image/color"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/client"
)

// wantError requires err to be an *client.Error with status and code.
func wantError(t *testing.T, what string, err error, status int, code string) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: %v, want a %d %s *client.Error", what, err, status, code)
	}
	if e.Status != status || e.Code != code || e.Message == "" {
		t.Fatalf("%s: %d %q %q, want %d %s with a message", what, e.Status, e.Code, e.Message, status, code)
	}
	return e
}

func ptr[T any](v T) *T { return &v }

func TestClientAccounts(t *testing.T) {
	eachStore(t, func(t *testing.T, s *server) {
		ctx := context.Background()
		c := s.admin

		var info client.ResponseInfo
		a, err := c.PutAccount(ctx, "acct-1", client.PutAccountRequest{Timezone: "Europe/Berlin"}, client.WithResponseInfo(&info))
		if err != nil {
			t.Fatal(err)
		}
		if a.ID != "acct-1" || a.Plan != "free" || a.Timezone != "Europe/Berlin" || a.CreatedAt.IsZero() || info.Status != 201 {
			t.Fatalf("put account: %+v (%d)", a, info.Status)
		}
		if a, err = c.PutAccount(ctx, "acct-1", client.PutAccountRequest{Plan: "paid"}, client.WithResponseInfo(&info)); err != nil || a.Plan != "paid" || a.Timezone != "Europe/Berlin" || info.Status != 200 {
			t.Fatalf("change account: %+v %v (%d)", a, err, info.Status)
		}
		if a, err = c.Account(ctx, "acct-1"); err != nil || a.ID != "acct-1" || a.Plan != "paid" {
			t.Fatalf("get account: %+v %v", a, err)
		}
		_, err = c.Account(ctx, "nobody")
		wantError(t, "get nobody", err, 404, client.CodeNotFound)
		if !client.IsNotFound(err) || client.ErrorCode(err) != client.CodeNotFound || client.Temporary(err) {
			t.Errorf("helpers misread %v", err)
		}
		_, err = c.PutAccount(ctx, "acct-bad", client.PutAccountRequest{Plan: "gold"})
		wantError(t, "plan gold", err, 400, client.CodeInvalid)
		_, err = s.client("sk_wrong").Account(ctx, "acct-1")
		wantError(t, "wrong key", err, 401, client.CodeUnauthenticated)
		_, err = s.worker.Account(ctx, "acct-1")
		wantError(t, "worker key on an account", err, 403, client.CodeForbidden)

		// Grants: an Idempotency-Key replays; a reference is idempotent.
		exp := s.clock.Now().Add(48 * time.Hour).Truncate(time.Second)
		g, err := c.Grant(ctx, "acct-1", client.GrantRequest{Amount: 100, Source: "promo", ExpiresAt: &exp}, client.WithIdempotencyKey("k-1"), client.WithResponseInfo(&info))
		if err != nil {
			t.Fatal(err)
		}
		if g.ID == "" || g.Amount != 100 || g.Remaining != 100 || g.Source != "promo" || g.ExpiresAt == nil || !g.ExpiresAt.Equal(exp) || info.Status != 201 || info.Replayed {
			t.Fatalf("grant: %+v (%+v)", g, info)
		}
		g2, err := c.Grant(ctx, "acct-1", client.GrantRequest{Amount: 100, Source: "promo", ExpiresAt: &exp}, client.WithIdempotencyKey("k-1"), client.WithResponseInfo(&info))
		if err != nil || g2.ID != g.ID || !info.Replayed {
			t.Fatalf("grant replayed: %+v %v (%+v)", g2, err, info)
		}
		_, err = c.Grant(ctx, "acct-1", client.GrantRequest{Amount: 5, Source: "promo"}, client.WithIdempotencyKey("k-1"))
		if client.StatusOf(err) != 409 && client.StatusOf(err) != 422 {
			t.Fatalf("idempotency key reused with another body: %v", err)
		}
		ref, err := c.Grant(ctx, "acct-1", client.GrantRequest{Amount: 10, Source: "admin", Reference: "ref-1"})
		if err != nil || ref.Reference != "ref-1" || ref.ExpiresAt != nil {
			t.Fatalf("grant with a reference: %+v %v", ref, err)
		}
		_, err = c.Grant(ctx, "acct-1", client.GrantRequest{Amount: 11, Source: "admin", Reference: "ref-1"})
		wantError(t, "reference reused", err, 409, client.CodeConflict)
		_, err = c.Grant(ctx, "acct-1", client.GrantRequest{Amount: 0, Source: "admin"})
		wantError(t, "grant 0", err, 400, client.CodeInvalid)
		_, err = c.Grant(ctx, "nobody", client.GrantRequest{Amount: 1, Source: "admin"})
		wantError(t, "grant to nobody", err, 404, client.CodeNotFound)

		// Balance and quote: 30 signup + 100 promo + 10 admin (a paid
		// account has no daily credits).
		b, err := c.Balance(ctx, "acct-1")
		if err != nil {
			t.Fatal(err)
		}
		if b.AccountID != "acct-1" || b.Available != 140 || b.Held != 0 || len(b.Buckets) != 3 || b.AvailableByCategory["image"] != 140 || b.AvailableByCategory["video"] != 10 {
			t.Fatalf("balance: %+v", b)
		}
		q, err := c.Quote(ctx, "acct-1", "generate", 2)
		if err != nil || q.Quantity != 2 || q.Cost != 2*q.UnitPrice || !q.Affordable || q.Available != 140 {
			t.Fatalf("quote: %+v %v", q, err)
		}
		_, err = c.Quote(ctx, "acct-1", "frobnicate", 1)
		wantError(t, "quote of an unknown action", err, 400, client.CodeInvalid)

		// Entries: a page, the next, and all of them.
		p1, err := c.Entries(ctx, "acct-1", client.ListParams{Limit: 2})
		if err != nil || p1.Object != "list" || len(p1.Data) != 2 || !p1.HasMore || p1.NextCursor == "" {
			t.Fatalf("entries page 1: %+v %v", p1, err)
		}
		p2, err := c.Entries(ctx, "acct-1", client.ListParams{Limit: 2, Cursor: p1.NextCursor})
		if err != nil || len(p2.Data) != 2 || p2.Data[0].ID >= p1.Data[1].ID {
			t.Fatalf("entries page 2: %+v %v", p2, err)
		}
		var all []client.Entry
		for e, err := range c.AllEntries(ctx, "acct-1", 1) {
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, e)
		}
		if len(all) < 4 || all[0].Type != "grant" || all[0].Amount != 10 || all[len(all)-1].Source != "signup" || len(all[0].Legs) == 0 || all[1].ID >= all[0].ID {
			t.Fatalf("all entries: %+v", all)
		}
		_, err = c.Entries(ctx, "acct-1", client.ListParams{Limit: -1})
		wantError(t, "entries limit -1", err, 400, client.CodeInvalid)
		n := 0
		for _, err := range c.AllEntries(ctx, "nobody", 5) {
			n++
			wantError(t, "entries of nobody", err, 404, client.CodeNotFound)
		}
		if n != 1 {
			t.Errorf("iterating a missing account's entries yielded %d times, want 1 error", n)
		}
	})
}

func TestClientHoldsAndBatch(t *testing.T) {
	eachStore(t, func(t *testing.T, s *server) {
		ctx := context.Background()
		c := s.admin
		if _, err := c.PutAccount(ctx, "acct-h", client.PutAccountRequest{}); err != nil {
			t.Fatal(err)
		}
		h, err := c.Reserve(ctx, client.ReserveRequest{AccountID: "acct-h", Action: "generate", Quantity: ptr(int64(2))}, client.WithIdempotencyKey("r-1"))
		if err != nil {
			t.Fatal(err)
		}
		if h.ID == "" || h.Status != "pending" || h.Quantity != 2 || h.Amount != 2*h.UnitPrice || len(h.Portions) == 0 || h.ResolvedAt != nil {
			t.Fatalf("reserve: %+v", h)
		}
		var info client.ResponseInfo
		again, err := c.Reserve(ctx, client.ReserveRequest{AccountID: "acct-h", Action: "generate", Quantity: ptr(int64(2))}, client.WithIdempotencyKey("r-1"), client.WithResponseInfo(&info))
		if err != nil || again.ID != h.ID || !info.Replayed {
			t.Fatalf("reserve replayed: %+v %v %+v", again, err, info)
		}
		if got, err := c.Hold(ctx, h.ID); err != nil || got.ID != h.ID || got.Status != "pending" {
			t.Fatalf("get hold: %+v %v", got, err)
		}
		ext, err := c.Extend(ctx, h.ID, 10*time.Minute)
		if err != nil || !ext.ExpiresAt.Equal(s.clock.Now().Add(10*time.Minute)) {
			t.Fatalf("extend: %+v %v", ext, err)
		}
		capd, err := c.Capture(ctx, h.ID, ptr(int64(1)))
		if err != nil || capd.Status != "captured" || capd.CapturedQuantity != 1 || capd.CapturedAmount != h.UnitPrice || capd.ResolvedAt == nil {
			t.Fatalf("capture: %+v %v", capd, err)
		}
		_, err = c.Release(ctx, h.ID, "cancelled")
		wantError(t, "release a captured hold", err, 409, client.CodeConflict)
		_, err = c.Hold(ctx, "hold_nope")
		wantError(t, "get a missing hold", err, 404, client.CodeNotFound)
		_, err = c.Reserve(ctx, client.ReserveRequest{AccountID: "acct-h", Action: "generate", Quantity: ptr(int64(100))})
		wantError(t, "reserve beyond the balance", err, 402, client.CodeInsufficient)

		// Batch: a reserve, a grant, a release of the reserve's hold is
		// independent; a bad op fails only itself.
		h2, err := c.Reserve(ctx, client.ReserveRequest{AccountID: "acct-h", Action: "generate"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Batch(ctx, []client.BatchOp{
			{Op: "reserve", AccountID: "acct-h", Action: "generate", IdempotencyKey: "b-1"},
			{Op: "grant", AccountID: "acct-h", Amount: 7, Source: "admin"},
			{Op: "release", HoldID: h2.ID, Reason: "cancelled"},
			{Op: "capture", HoldID: "hold_missing", Quantity: ptr(int64(1))},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 4 || res[0].Status != 201 || res[0].Hold == nil || res[1].Status != 201 || res[1].Grant == nil || res[1].Grant.Amount != 7 ||
			res[2].Status != 200 || res[2].Hold == nil || res[2].Hold.Status != "released" || res[3].Status != 404 || res[3].Error == nil || res[3].Error.Code != client.CodeNotFound {
			b, _ := json.Marshal(res)
			t.Fatalf("batch: %s", b)
		}
		_, err = c.Batch(ctx, nil)
		wantError(t, "empty batch", err, 400, client.CodeInvalid)
		_, err = c.Batch(ctx, []client.BatchOp{{Op: "grant", AccountID: "acct-h", Amount: 1, Source: "admin"}}, client.WithIdempotencyKey("x"))
		wantError(t, "batch with an Idempotency-Key", err, 400, client.CodeInvalid)
	})
}

func TestClientJobsAssetsAndWorker(t *testing.T) {
	eachStore(t, func(t *testing.T, s *server) {
		ctx := context.Background()
		c, w := s.admin, s.worker
		if _, err := c.PutAccount(ctx, "acct-j", client.PutAccountRequest{}); err != nil {
			t.Fatal(err)
		}
		src := testPNG(t, 40, 30, color.NRGBA{R: 200, A: 255})
		up, err := c.UploadAsset(ctx, "acct-j", src, "image/png")
		if err != nil {
			t.Fatal(err)
		}
		if up.ID == "" || up.Kind != "upload" || up.Width != 40 || up.Height != 30 || up.Bytes != int64(len(src)) || up.ContentType != "image/png" {
			t.Fatalf("upload: %+v", up)
		}
		_, err = c.UploadAsset(ctx, "acct-j", []byte("not an image"), "image/png")
		wantError(t, "upload of a non-image", err, 400, client.CodeInvalid)

		// No job yet: the lease answers nothing.
		if l, err := w.LeaseJob(ctx, []string{"crop"}, 0); err != nil || l != nil {
			t.Fatalf("lease of an empty queue: %+v %v", l, err)
		}
		params := json.RawMessage(`{"source":"` + up.ID + `","x":5,"y":4,"width":12,"height":7}`)
		j, err := c.CreateJob(ctx, client.JobRequest{AccountID: "acct-j", Action: "crop", Params: params}, client.WithIdempotencyKey("job-1"))
		if err != nil {
			t.Fatal(err)
		}
		if j.ID == "" || j.Status != "queued" || j.Cost == 0 || j.HoldID == "" || j.FinishedAt != nil || len(j.Outputs) != 0 {
			t.Fatalf("create job: %+v", j)
		}
		l, err := w.LeaseJob(ctx, []string{"crop"}, time.Second)
		if err != nil || l == nil || l.Job.ID != j.ID || l.LeaseID == "" || l.LeaseExpiresAt.IsZero() {
			t.Fatalf("lease: %+v %v", l, err)
		}
		hb, err := w.Heartbeat(ctx, j.ID, l.LeaseID)
		if err != nil || hb.Cancelled || hb.Changed || hb.Job.Status != "running" || hb.LeaseExpiresAt.IsZero() {
			t.Fatalf("heartbeat: %+v %v", hb, err)
		}
		_, err = w.Heartbeat(ctx, j.ID, "lease_wrong")
		if !client.IsConflict(err) {
			t.Fatalf("heartbeat with a wrong lease: %v", err)
		}
		data, ct, err := w.JobInput(ctx, j.ID, l.LeaseID, up.ID)
		if err != nil || ct != "image/png" || string(data) != string(src) {
			t.Fatalf("input: %d bytes, %q, %v", len(data), ct, err)
		}
		_, _, err = w.JobInput(ctx, j.ID, l.LeaseID, "asset_other")
		wantError(t, "input the job does not name", err, 404, client.CodeNotFound)
		out, err := w.UploadOutput(ctx, j.ID, l.LeaseID, testPNG(t, 12, 7, color.White), "image/png")
		if err != nil || out.Kind != "output" || out.JobID != j.ID {
			t.Fatalf("output: %+v %v", out, err)
		}
		done, err := w.CompleteJob(ctx, j.ID, l.LeaseID, []string{out.ID})
		if err != nil || done.Status != "succeeded" || done.Charged != j.Cost || done.FinishedAt == nil || len(done.Outputs) != 1 {
			t.Fatalf("complete: %+v %v", done, err)
		}
		if got, err := c.Job(ctx, j.ID); err != nil || got.Status != "succeeded" {
			t.Fatalf("get job: %+v %v", got, err)
		}

		// The output, by id and as a download.
		got, err := c.GetAsset(ctx, out.ID)
		if err != nil || got.ContentType != "image/png" || len(got.Data) != int(out.Bytes) || got.ETag == "" || got.Filename != "" {
			t.Fatalf("get asset: %+v %v", got, err)
		}
		dl, err := c.DownloadAsset(ctx, out.ID)
		if err != nil || dl.Filename != out.ID+".png" || len(dl.Data) != int(out.Bytes) {
			t.Fatalf("download asset: %q %d %v", dl.Filename, len(dl.Data), err)
		}
		var ids []string
		for a, err := range c.AllAssets(ctx, "acct-j", 1) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, a.ID)
		}
		if strings.Join(ids, ",") != out.ID+","+up.ID {
			t.Fatalf("assets: %v, want %s then %s", ids, out.ID, up.ID)
		}

		// A job patched, then cancelled; another failed by its worker.
		j2, err := c.CreateJob(ctx, client.JobRequest{AccountID: "acct-j", Action: "crop", Params: params})
		if err != nil {
			t.Fatal(err)
		}
		p2, err := c.PatchJob(ctx, j2.ID, json.RawMessage(`{"source":"`+up.ID+`","x":0,"y":0,"width":4,"height":4}`))
		if err != nil || p2.ParamsVersion <= j2.ParamsVersion {
			t.Fatalf("patch job: %+v %v", p2, err)
		}
		cj, err := c.CancelJob(ctx, j2.ID)
		if err != nil || cj.Status != "cancelled" {
			t.Fatalf("cancel job: %+v %v", cj, err)
		}
		_, err = c.PatchJob(ctx, j2.ID, params)
		wantError(t, "patch a cancelled job", err, 409, client.CodeConflict)
		j3, err := c.CreateJob(ctx, client.JobRequest{AccountID: "acct-j", Action: "crop", Params: params})
		if err != nil {
			t.Fatal(err)
		}
		l3, err := w.LeaseJob(ctx, []string{"crop"}, 0)
		if err != nil || l3 == nil || l3.Job.ID != j3.ID {
			t.Fatalf("lease j3: %+v %v", l3, err)
		}
		failed, err := w.FailJob(ctx, j3.ID, l3.LeaseID, "the model broke", false)
		if err != nil || failed.Status != "failed" || failed.Charged != 0 || failed.Error == "" {
			t.Fatalf("fail: %+v %v", failed, err)
		}
		_, err = w.CompleteJob(ctx, j3.ID, l3.LeaseID, nil)
		if !client.IsConflict(err) {
			t.Fatalf("complete a failed job: %v", err)
		}
		var statuses []string
		for j, err := range c.AllJobs(ctx, "acct-j", 2) {
			if err != nil {
				t.Fatal(err)
			}
			statuses = append(statuses, j.Status)
		}
		if strings.Join(statuses, ",") != "failed,cancelled,succeeded" {
			t.Fatalf("jobs: %v", statuses)
		}
		_, err = c.CreateJob(ctx, client.JobRequest{AccountID: "acct-j", Action: "crop", Params: json.RawMessage(`{"source":"asset_nope","width":1,"height":1}`)})
		if client.StatusOf(err)/100 != 4 {
			t.Fatalf("job of a missing asset: %v", err)
		}
		_, err = c.Job(ctx, "job_nope")
		wantError(t, "get a missing job", err, 404, client.CodeNotFound)

		// Delete the upload: gone afterwards.
		del, err := c.DeleteAsset(ctx, up.ID)
		if err != nil || !del.Deleted || del.ID != up.ID {
			t.Fatalf("delete asset: %+v %v", del, err)
		}
		_, err = c.GetAsset(ctx, up.ID)
		wantError(t, "get a deleted asset", err, 404, client.CodeNotFound)
	})
}

func TestClientUsersPricesClockBackup(t *testing.T) {
	eachStore(t, func(t *testing.T, s *server) {
		ctx := context.Background()
		c := s.admin
		for _, id := range []string{"u-1", "u-2"} {
			if _, err := c.PutAccount(ctx, id, client.PutAccountRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		pl, err := c.Prices(ctx)
		if err != nil || pl.Object != "list" || len(pl.Data) == 0 || len(pl.Sources) == 0 || pl.Data[0].UnitCredits <= 0 {
			t.Fatalf("prices: %+v %v", pl, err)
		}

		// Billing without Stripe: packs are listed, purchases disabled.
		packs, err := c.Packs(ctx)
		if err != nil || len(packs.Data) == 0 || packs.PurchasesEnabled || packs.Message == "" || packs.Data[0].Credits <= 0 {
			t.Fatalf("packs: %+v %v", packs, err)
		}
		_, err = c.Checkout(ctx, "u-1", packs.Data[0].ID)
		wantError(t, "checkout without Stripe", err, 503, client.CodeUnavailable)

		// A user token sees its own account only.
		tok, err := c.CreateUserToken(ctx, "u-1", time.Hour)
		if err != nil || !strings.HasPrefix(tok.Token, "ut_") || tok.AccountID != "u-1" || !tok.ExpiresAt.Equal(s.clock.Now().Add(time.Hour)) {
			t.Fatalf("token: %+v %v", tok, err)
		}
		u := s.client(tok.Token)
		if b, err := u.Balance(ctx, "u-1"); err != nil || b.AccountID != "u-1" {
			t.Fatalf("user balance: %+v %v", b, err)
		}
		_, err = u.Balance(ctx, "u-2")
		wantError(t, "user reads another account", err, 404, client.CodeNotFound)
		if _, err := u.Prices(ctx); err != nil {
			t.Fatalf("user prices: %v", err)
		}
		_, err = c.CreateUserToken(ctx, "u-1", 400*24*time.Hour)
		wantError(t, "token ttl too long", err, 400, client.CodeInvalid)

		link, err := c.CreateLoginLink(ctx, "u-1")
		if err != nil || link.AccountID != "u-1" || !strings.HasPrefix(link.URL, "http") || link.ExpiresAt.IsZero() {
			t.Fatalf("login link: %+v %v", link, err)
		}
		_, err = c.CreateLoginLink(ctx, "nobody")
		wantError(t, "login link of nobody", err, 404, client.CodeNotFound)
		s.clock.Advance(time.Second)
		rev, err := c.RevokeSessions(ctx, "u-1")
		if err != nil || rev.AccountID != "u-1" || rev.RevokedAt.IsZero() {
			t.Fatalf("revoke: %+v %v", rev, err)
		}
		_, err = u.Balance(ctx, "u-1")
		wantError(t, "revoked token", err, 401, client.CodeUnauthenticated)

		// The live event stream: a balance first, then each change.
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		st, err := c.Stream(sctx, "u-2", "")
		if err != nil {
			t.Fatal(err)
		}
		first, err := st.Next()
		if err != nil || first.Name != "balance" || !strings.Contains(string(first.Data), `"available":45`) {
			t.Fatalf("stream's first event: %+v %v", first, err)
		}
		if _, err := c.Grant(ctx, "u-2", client.GrantRequest{Amount: 5, Source: "admin"}); err != nil {
			t.Fatal(err)
		}
		var bal client.Balance
		for bal.Available != 50 {
			ev, err := st.Next()
			if err != nil {
				t.Fatalf("stream after a grant: %v", err)
			}
			if ev.Name == "balance" {
				if err := json.Unmarshal(ev.Data, &bal); err != nil {
					t.Fatal(err)
				}
			}
		}
		if st.LastID == "" {
			t.Error("the stream's events carry no id")
		}
		st.Close()
		_, err = c.Stream(ctx, "nobody", "")
		wantError(t, "stream of nobody", err, 404, client.CodeNotFound)

		fb, err := c.Feedback(ctx, "", client.ListParams{Limit: 10})
		if err != nil || fb.Object != "list" || len(fb.Data) != 0 || fb.HasMore {
			t.Fatalf("feedback: %+v %v", fb, err)
		}
		if _, err := c.Feedback(ctx, "getting-started", client.ListParams{}); err != nil {
			t.Fatalf("feedback of an article: %v", err)
		}

		// The test clock.
		now, err := c.TestClock(ctx)
		if err != nil || !now.Equal(s.clock.Now()) {
			t.Fatalf("test clock: %v %v", now, err)
		}
		later, err := c.AdvanceTestClock(ctx, time.Hour)
		if err != nil || !later.Equal(now.Add(time.Hour)) {
			t.Fatalf("advance: %v %v", later, err)
		}
		set, err := c.SetTestClock(ctx, later.Add(24*time.Hour))
		if err != nil || !set.Equal(later.Add(24*time.Hour)) {
			t.Fatalf("set: %v %v", set, err)
		}
		_, err = c.AdvanceTestClock(ctx, -time.Hour)
		wantError(t, "advance backwards", err, 400, client.CodeInvalid)

		// Backup: a SQLite node streams a gzip tar; a PostgreSQL node
		// refuses.
		body, err := c.Backup(ctx)
		if s.pg {
			wantError(t, "backup of a PostgreSQL node", err, 409, client.CodeConflict)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		zr, err := gzip.NewReader(body)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		names := 0
		for {
			_, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names++
		}
		if names < 2 {
			t.Fatalf("backup holds %d files", names)
		}
	})
}

// TestClientErrorsAndBounds: the parts of the client a live server does
// not readily show: Retry-After, a non-creditd error body, an oversized
// answer, and a context's cancellation.
func TestClientErrorsAndBounds(t *testing.T) {
	var big bool
	srv := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/accounts/limited":
			w.Header().Set("Retry-After", "7")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(429)
			io.WriteString(w, `{"error":{"code":"too_many_requests","message":"slow down","retry_after_seconds":7}}`)
		case r.URL.Path == "/v1/accounts/proxy":
			w.WriteHeader(502)
			io.WriteString(w, "<html>bad gateway</html>")
		case r.URL.Path == "/v1/accounts/big":
			big = true
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"`)
			chunk := strings.Repeat("x", 1<<20)
			for range client.JSONBytesMax>>20 + 1 {
				io.WriteString(w, chunk)
			}
			io.WriteString(w, `"}`)
		case r.URL.Path == "/v1/accounts/slow":
			<-r.Context().Done()
		case r.URL.Path == "/v1/assets/huge":
			w.Header().Set("Content-Type", "image/png")
			w.Write(make([]byte, 2048))
		case r.Header.Get("Idempotency-Key") != "":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			io.WriteString(w, `{"id":"acct","plan":"free","timezone":"UTC"}`)
		}
	})
	ctx := context.Background()
	c := client.New(srv, "k")
	_, err := c.Account(ctx, "limited")
	e := wantError(t, "429", err, 429, client.CodeTooManyRequests)
	if e.RetryAfter != 7*time.Second || e.Details["retry_after_seconds"] != float64(7) || !client.Temporary(err) || e.Method != "GET" || e.Path != "/v1/accounts/limited" {
		t.Errorf("429: %+v", e)
	}
	_, err = c.Account(ctx, "proxy")
	var pe *client.Error
	if !errors.As(err, &pe) || pe.Status != 502 || pe.Code != "" || !strings.Contains(pe.Message, "bad gateway") || !client.Temporary(err) {
		t.Errorf("502 from a proxy: %#v", err)
	}
	if _, err = c.Account(ctx, "big"); err == nil || !big || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("oversized answer: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err = c.Account(cctx, "slow"); !errors.Is(err, context.DeadlineExceeded) || !client.Temporary(err) {
		t.Errorf("slow answer: %v", err)
	}
	c.DownloadBytesMax = 1024
	if _, err = c.GetAsset(ctx, "huge"); err == nil || !strings.Contains(err.Error(), "exceeds 1024 bytes") {
		t.Errorf("oversized asset: %v", err)
	}
	var info client.ResponseInfo
	if a, err := c.PutAccount(ctx, "acct", client.PutAccountRequest{}, client.WithIdempotencyKey("k"), client.WithResponseInfo(&info)); err != nil || a.ID != "acct" || !info.Replayed {
		t.Errorf("idempotent replay: %+v %v %+v", a, err, info)
	}
}
