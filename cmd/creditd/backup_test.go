package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/sqlite"
)

// backupAck is a write the source server acknowledged, and the entry it
// implies: a grant's entry (by grant id), a hold's or a capture's (by hold
// id).
type backupAck struct {
	at      time.Time // when the answer arrived
	account string
	typ     string // grant, hold, capture
	ref     string // grant id or hold id
}

// backupLoad runs clients, each on accounts of its own, granting,
// reserving and capturing until stop is closed, and returns every
// acknowledged write.
func backupLoad(t *testing.T, c *apiClient, clients int, stop <-chan struct{}) func() []backupAck {
	var mu sync.Mutex
	var acks []backupAck
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acct := fmt.Sprintf("load-%02d", w)
			if r, err := c.do("PUT", "/v1/accounts/"+acct, mustMarshal(map[string]string{"plan": "paid"}), ""); err != nil || r.status/100 != 2 {
				errs <- fmt.Errorf("put %s: %v %d %s", acct, err, r.status, r.body)
				return
			}
			post := func(path string, body any, key string) (map[string]any, error) {
				r, err := c.do("POST", path, mustMarshal(body), key)
				if err != nil {
					return nil, err
				}
				if r.status/100 != 2 {
					return nil, fmt.Errorf("POST %s: %d %s", path, r.status, r.body)
				}
				var m map[string]any
				return m, json.Unmarshal(r.body, &m)
			}
			ack := func(typ, ref string) {
				mu.Lock()
				acks = append(acks, backupAck{at: time.Now(), account: acct, typ: typ, ref: ref})
				mu.Unlock()
			}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%4 == 0 {
					g, err := post("/v1/accounts/"+acct+"/grants", map[string]any{"amount": 100, "source": "admin"}, fmt.Sprintf("bk-%s-%d", acct, i))
					if err != nil {
						errs <- err
						return
					}
					ack("grant", g["id"].(string))
					continue
				}
				h, err := post("/v1/holds", map[string]any{"account_id": acct, "action": "generate", "quantity": 2}, fmt.Sprintf("bk-%s-%d-h", acct, i))
				if err != nil {
					errs <- err
					return
				}
				id := h["id"].(string)
				ack("hold", id)
				if _, err := post("/v1/holds/"+id+"/capture", map[string]any{"quantity": 1}, fmt.Sprintf("bk-%s-%d-c", acct, i)); err != nil {
					errs <- err
					return
				}
				ack("capture", id)
			}
		}()
	}
	return func() []backupAck {
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("load: %v", err)
		}
		return acks
	}
}

func pngBytes(t *testing.T) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 3, 2))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// upload uploads a PNG for account and returns the asset id.
func upload(t *testing.T, c *apiClient, account string, data []byte) string {
	t.Helper()
	req, _ := http.NewRequest("POST", c.base+"/v1/accounts/"+account+"/assets", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "image/png")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a struct{ ID string }
	if resp.StatusCode != 201 || json.Unmarshal(b, &a) != nil {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	return a.ID
}

// getRaw GETs path and returns the status and body.
func getRaw(t *testing.T, c *apiClient, path string) (int, []byte) {
	t.Helper()
	r, err := c.do("GET", path, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return r.status, r.body
}

// TestBackupUnderLoad: creditd backup of a server under load, restored
// into a new directory, verifies clean, holds every write acknowledged
// before the backup began, and its ledger is the source's up to the
// snapshot: every entry of the source with an id up to the restored
// ledger's last, and no other.
func TestBackupUnderLoad(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := startServer(t, data)
	c := newAPIClient(srv.URL, srv.Key)
	defer c.close()
	if r, err := c.do("PUT", "/v1/accounts/pics", mustMarshal(map[string]string{"plan": "paid"}), ""); err != nil || r.status != 201 {
		t.Fatalf("put pics: %v %d", err, r.status)
	}
	img := pngBytes(t)
	asset := upload(t, c, "pics", img)

	stop := make(chan struct{})
	wait := backupLoad(t, c, 4, stop)
	time.Sleep(time.Second) // load before the backup (a real process: no clock to inject)
	out := filepath.Join(dir, "backup.tar.gz")
	began := time.Now()
	stdout, stderr, code := runCLI(t, nil, "backup", "--out", out, "--server", checkedProxy(t, srv.URL), "--data", data)
	took := time.Since(began)
	time.Sleep(time.Second) // and after it
	close(stop)
	acks := wait()
	if code != 0 {
		t.Fatalf("creditd backup: exit %d\n%s\n%s", code, stdout, stderr)
	}
	t.Logf("%s(took %v; %d writes acknowledged in all)", stdout, took.Round(time.Millisecond), len(acks))
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode %v, want 0600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".backup.tar.gz.tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(data, ".backup-*")); len(left) > 0 {
		t.Errorf("the server left its staged snapshot: %v", left)
	}

	restored := filepath.Join(dir, "restored")
	if stdout, stderr, code := runCLI(t, nil, "restore", "--in", out, "--data", restored); code != 0 {
		t.Fatalf("creditd restore: exit %d\n%s\n%s", code, stdout, stderr)
	}
	runVerify(t, restored, "of the restored directory")
	if t.Failed() {
		return
	}
	// Restoring again over it is refused.
	if _, stderr, code := runCLI(t, nil, "restore", "--in", out, "--data", restored); code == 0 || !strings.Contains(stderr, "holds data") {
		t.Errorf("restore over the restored directory: exit %d, %s", code, stderr)
	}

	// The restored directory serves with the source's keys and assets.
	rs := startServer(t, restored)
	if rs.Key != srv.Key {
		t.Errorf("restored server's admin key %q, want the source's %q", rs.Key, srv.Key)
	}
	rc := newAPIClient(rs.URL, rs.Key)
	defer rc.close()
	if st, b := getRaw(t, rc, "/v1/assets/"+asset); st != 200 {
		t.Errorf("asset on the restored server: %d %s", st, b)
	} else if _, want := getRaw(t, c, "/v1/assets/"+asset); !bytes.Equal(b, want) {
		t.Errorf("asset on the restored server differs from the source's")
	}

	accounts := map[string]bool{"pics": true}
	for _, a := range acks {
		accounts[a.account] = true
	}
	type key struct{ typ, ref string }
	restoredHas := map[key]bool{}
	var last int64
	restoredEntries := map[string][]wireEntry{}
	for acct := range accounts {
		es, err := listAllEntries(rc, acct)
		if err != nil {
			t.Fatalf("restored entries of %s: %v", acct, err)
		}
		restoredEntries[acct] = es
		for _, e := range es {
			last = max(last, e.ID)
			ref := e.GrantID
			if e.Type != "grant" {
				ref = e.HoldID
			}
			restoredHas[key{e.Type, ref}] = true
		}
	}
	before := 0
	for _, a := range acks {
		if a.at.Before(began) {
			before++
			if !restoredHas[key{a.typ, a.ref}] {
				t.Errorf("%s %s of %s, acknowledged before the backup began, is not in the restored ledger", a.typ, a.ref, a.account)
			}
		}
	}
	// The source's ledger, cut at the restored one's last entry, is the
	// restored ledger.
	for acct := range accounts {
		src, err := listAllEntries(c, acct)
		if err != nil {
			t.Fatalf("source entries of %s: %v", acct, err)
		}
		var cut []wireEntry
		for _, e := range src {
			if e.ID <= last {
				cut = append(cut, e)
			}
		}
		a, _ := json.Marshal(cut)
		b, _ := json.Marshal(restoredEntries[acct])
		if !bytes.Equal(a, b) {
			t.Errorf("account %s: restored ledger (%d entries) is not the source's up to entry %d (%d entries)", acct, len(restoredEntries[acct]), last, len(cut))
		}
	}
	t.Logf("%d writes acknowledged before the backup began, all restored; restored ledger ends at entry %d", before, last)
	if before == 0 {
		t.Error("no write was acknowledged before the backup: the test proves nothing")
	}
	srv.stop()
	rs.stop()
	runVerify(t, data, "of the source")
}

// TestBackupStoppedDataDir: --from-data backs up a stopped server's
// directory, refuses one a server runs on, and refuses a directory
// without a database.
func TestBackupStoppedDataDir(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := startServer(t, data)
	c := newAPIClient(srv.URL, srv.Key)
	if r, err := c.do("PUT", "/v1/accounts/alice", mustMarshal(map[string]string{"plan": "paid"}), ""); err != nil || r.status != 201 {
		t.Fatalf("put alice: %v %d", err, r.status)
	}
	if r, err := c.do("POST", "/v1/accounts/alice/grants", mustMarshal(map[string]any{"amount": 70, "source": "admin"}), ""); err != nil || r.status != 201 {
		t.Fatalf("grant: %v %d", err, r.status)
	}
	asset := upload(t, c, "alice", pngBytes(t))
	want, err := listAllEntries(c, "alice")
	if err != nil {
		t.Fatal(err)
	}
	c.close()

	out := filepath.Join(dir, "offline.tar.gz")
	_, stderr, code := runCLI(t, nil, "backup", "--from-data", data, "--out", out)
	if code == 0 || !strings.Contains(stderr, "a server runs on") {
		t.Errorf("--from-data of a running server's directory: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused backup left %s", out)
	}
	srv.stop()
	if stdout, stderr, code := runCLI(t, nil, "backup", "--from-data", data, "--out", out); code != 0 {
		t.Fatalf("--from-data: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, %v; want mode 0600", fi, err)
	}
	if _, stderr, code := runCLI(t, nil, "backup", "--from-data", filepath.Join(dir, "nothing"), "--out", out+"2"); code == 0 || !strings.Contains(stderr, "no database") {
		t.Errorf("--from-data of an empty directory: exit %d, %s", code, stderr)
	}

	// A directory with data is never overwritten, the source's included.
	if _, stderr, code := runCLI(t, nil, "restore", "--in", out, "--data", data); code == 0 || !strings.Contains(stderr, "holds data") {
		t.Errorf("restore over the source: exit %d, %s", code, stderr)
	}
	restored := filepath.Join(dir, "restored")
	if stdout, stderr, code := runCLI(t, nil, "restore", "--in", out, "--data", restored); code != 0 {
		t.Fatalf("restore: exit %d\n%s\n%s", code, stdout, stderr)
	}
	runVerify(t, restored, "of the restored directory")
	rs := startServer(t, restored)
	rc := newAPIClient(rs.URL, rs.Key)
	defer rc.close()
	got, err := listAllEntries(rc, "alice")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(want)
	b, _ := json.Marshal(got)
	if !bytes.Equal(a, b) {
		t.Errorf("restored entries\n%s\nwant\n%s", b, a)
	}
	if st, _ := getRaw(t, rc, "/v1/assets/"+asset); st != 200 {
		t.Errorf("asset on the restored server: %d", st)
	}
	rs.stop()
}

// TestRestoreRefusesMalformedArchive: a backup file with a member that
// would land outside the directory, or one cut short, is refused, and
// nothing is written.
func TestRestoreRefusesMalformedArchive(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	man := []byte(`{"format":1,"seq":1,"files":[{"name":"../escaped","size":1,"sha256":"` + strings.Repeat("0", 64) + `"}]}`)
	tw.WriteHeader(&tar.Header{Name: "MANIFEST.json", Typeflag: tar.TypeReg, Size: int64(len(man)), Mode: 0o600})
	tw.Write(man)
	tw.WriteHeader(&tar.Header{Name: "../escaped", Typeflag: tar.TypeReg, Size: 1, Mode: 0o600})
	tw.Write([]byte("x"))
	tw.Close()
	gz.Close()
	evil := filepath.Join(dir, "evil.tar.gz")
	if err := os.WriteFile(evil, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.tar.gz")
	if err := os.WriteFile(short, buf.Bytes()[:buf.Len()/2], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{evil, short} {
		target := filepath.Join(dir, "restored")
		_, stderr, code := runCLI(t, nil, "restore", "--in", in, "--data", target)
		if code == 0 || !strings.Contains(stderr, "not a valid creditd backup") {
			t.Errorf("restore of %s: exit %d, %s", filepath.Base(in), code, stderr)
		}
		for _, p := range []string{target, filepath.Join(dir, "escaped")} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("restore of %s created %s", filepath.Base(in), p)
			}
		}
	}
}

// TestBackupPostgres: a node on PostgreSQL refuses an online backup and
// points to pg_dump; pg_dump of its database, restored with pg_restore
// into a fresh database, serves the same ledger and verifies clean.
func TestBackupPostgres(t *testing.T) {
	bin := "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(bin, "pg_dump")); err != nil {
		t.Skipf("no pg_dump in %s: %v", bin, err)
	}
	dsn := pgtest.DSN(t)
	env := []string{"CREDITD_DATABASE_URL=" + dsn}
	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "data"), env...)
	c := newAPIClient(srv.URL, srv.Key)
	defer c.close()
	stdout, stderr, code := runCLI(t, nil, "backup", "--out", filepath.Join(dir, "b.tar.gz"), "--server", checkedProxy(t, srv.URL), "--key", srv.Key)
	if code == 0 || !strings.Contains(stderr, "409") || !strings.Contains(stderr, "pg_dump") {
		t.Errorf("creditd backup of a PostgreSQL node: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.tar.gz")); err == nil {
		t.Error("the refused backup left a file")
	}

	stop := make(chan struct{})
	wait := backupLoad(t, c, 2, stop)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	acks := wait()
	srv.stop()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dump := filepath.Join(dir, "creditd.dump")
	if out, err := exec.CommandContext(ctx, filepath.Join(bin, "pg_dump"), "--format=custom", "--file", dump, "--dbname", dsn).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	fresh := pgtest.DSN(t)
	if out, err := exec.CommandContext(ctx, filepath.Join(bin, "pg_restore"), "--no-owner", "--exit-on-error", "--dbname", fresh, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	freshEnv := []string{"CREDITD_DATABASE_URL=" + fresh}
	if out, errOut, code := runCLI(t, freshEnv, "verify"); code != 0 || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify of the restored database: exit %d\n%s\n%s", code, out, errOut)
	} else {
		t.Logf("verify of the restored database: %s", strings.TrimSpace(out))
	}
	// Both databases hold the same ledger, read through the API.
	srcSrv := startServer(t, filepath.Join(dir, "data"), env...)
	dstSrv := startServer(t, filepath.Join(dir, "data"), freshEnv...)
	sc, dc := newAPIClient(srcSrv.URL, srcSrv.Key), newAPIClient(dstSrv.URL, dstSrv.Key)
	defer sc.close()
	defer dc.close()
	accounts := map[string]bool{}
	for _, a := range acks {
		accounts[a.account] = true
	}
	n := 0
	for acct := range accounts {
		a, err := listAllEntries(sc, acct)
		if err != nil {
			t.Fatal(err)
		}
		b, err := listAllEntries(dc, acct)
		if err != nil {
			t.Fatal(err)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Errorf("account %s: the restored database's entries differ from the source's", acct)
		}
		n += len(a)
	}
	if n == 0 || len(acks) == 0 {
		t.Errorf("no load reached the database (%d acks, %d entries)", len(acks), n)
	}
	t.Logf("pg_dump → pg_restore: %d writes, %d entries over %d accounts, equal", len(acks), n, len(accounts))
	srcSrv.stop()
	dstSrv.stop()
}

// TestBackupOneAtATime: while one snapshot of a node is out, another is
// refused with a conflict; once it is closed, the next one is made.
func TestBackupOneAtATime(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, dbFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// What a server killed during a backup leaves is removed by the next.
	if err := os.MkdirAll(filepath.Join(dir, ".backup-123", "assets"), 0o700); err != nil {
		t.Fatal(err)
	}
	f := sqliteBackup(dir, st)
	a, err := f(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f(ctx); ledger.ErrorCode(err) != ledger.EConflict {
		t.Errorf("a second backup meanwhile: %v, want a conflict", err)
	}
	a.Close()
	b, err := f(ctx)
	if err != nil {
		t.Fatalf("a backup after the first was closed: %v", err)
	}
	b.Close()
	if left, _ := filepath.Glob(filepath.Join(dir, ".backup-*")); len(left) > 0 {
		t.Errorf("staged files left: %v", left)
	}
}
