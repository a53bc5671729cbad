package backup_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/creditd/creditd/internal/backup"
)

var layout = backup.Layout{DB: "creditd.db", Keys: []string{"admin.key", "worker.key", "session.key"}, Assets: "assets"}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fakeSnap writes db as the database copy and reports ids as its assets.
func fakeSnap(db string, seq int64, ids ...string) backup.SnapshotFunc {
	return func(_ context.Context, dst string) (int64, []string, error) {
		return seq, ids, os.WriteFile(dst, []byte(db), 0o600)
	}
}

func dataDir(t *testing.T) string {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "admin.key"), "sk_admin_x\n")
	write(t, filepath.Join(dir, "worker.key"), "sk_worker_x\n")
	write(t, filepath.Join(dir, "assets", "a1"), "blob one")
	write(t, filepath.Join(dir, "assets", "a2"), "blob two")
	write(t, filepath.Join(dir, "assets", ".tmp-a3-123"), "half a blob")
	write(t, filepath.Join(dir, "creditd.db-wal"), "not archived")
	return dir
}

func archive(t *testing.T, dir string, snap backup.SnapshotFunc) ([]byte, *backup.Manifest) {
	t.Helper()
	a, err := backup.Create(context.Background(), dir, layout, snap)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer a.Close()
	var buf bytes.Buffer
	if _, err := a.WriteTo(&buf); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	m := a.Manifest
	return buf.Bytes(), &m
}

func TestRoundTrip(t *testing.T) {
	dir := dataDir(t)
	b, m := archive(t, dir, fakeSnap("the database", 42, "a1", "a2"))
	if m.Seq != 42 {
		t.Errorf("seq %d, want 42", m.Seq)
	}
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	if want := []string{"creditd.db", "admin.key", "worker.key", "assets/a1", "assets/a2"}; !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	if ents, _ := os.ReadDir(dir); slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name()[0] == '.' }) {
		t.Errorf("Close left staged files in the data directory: %v", ents)
	}
	if got, err := backup.Check(bytes.NewReader(b), layout); err != nil || got.Seq != 42 {
		t.Fatalf("Check = %v, %v", got, err)
	}

	target := filepath.Join(t.TempDir(), "restored")
	got, err := backup.Restore(bytes.NewReader(b), target, layout)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got.Seq != 42 {
		t.Errorf("restored seq %d", got.Seq)
	}
	for name, want := range map[string]string{"creditd.db": "the database", "admin.key": "sk_admin_x\n", "worker.key": "sk_worker_x\n",
		"assets/a1": "blob one", "assets/a2": "blob two"} {
		p := filepath.Join(target, filepath.FromSlash(name))
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	for _, name := range []string{"session.key", "creditd.db-wal", "assets/.tmp-a3-123"} {
		if _, err := os.Stat(filepath.Join(target, name)); err == nil {
			t.Errorf("%s was restored", name)
		}
	}

	// Restoring over a directory with data is refused and changes nothing;
	// an existing empty directory is fine.
	if _, err := backup.Restore(bytes.NewReader(b), target, layout); !errors.Is(err, backup.ErrNotEmpty) {
		t.Errorf("restore over a restored directory: %v, want ErrNotEmpty", err)
	}
	if _, err := backup.Restore(bytes.NewReader(b), dir, layout); !errors.Is(err, backup.ErrNotEmpty) {
		t.Errorf("restore over the data directory: %v, want ErrNotEmpty", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "assets", "a1")); string(b) != "blob one" {
		t.Errorf("the refused restore changed the data directory")
	}
	empty := t.TempDir()
	if _, err := backup.Restore(bytes.NewReader(b), empty, layout); err != nil {
		t.Errorf("restore into an empty directory: %v", err)
	}
}

// TestCreateRetriesVanishedBlob: an asset made and deleted while the
// snapshot is taken (its row in the copy, its blob gone before the second
// blob pass) makes Create take another snapshot, which lacks it.
func TestCreateRetriesVanishedBlob(t *testing.T) {
	dir := dataDir(t)
	calls := 0
	snap := func(ctx context.Context, dst string) (int64, []string, error) {
		calls++
		if calls == 1 {
			write(t, filepath.Join(dir, "assets", "a3"), "short-lived")
			defer os.Remove(filepath.Join(dir, "assets", "a3"))
			return fakeSnap("v1", 7, "a1", "a2", "a3")(ctx, dst)
		}
		return fakeSnap("v2", 8, "a1", "a2")(ctx, dst)
	}
	b, m := archive(t, dir, snap)
	if calls != 2 || m.Seq != 8 || len(m.Files) != 5 {
		t.Fatalf("%d snapshots, manifest %+v; want 2 snapshots, seq 8, 5 files", calls, m)
	}
	if _, err := backup.Check(bytes.NewReader(b), layout); err != nil {
		t.Fatal(err)
	}
	// An asset whose blob never shows up fails after a few attempts.
	if _, err := backup.Create(context.Background(), dir, layout, fakeSnap("v", 1, "a1", "gone")); err == nil {
		t.Fatal("Create with an asset without a blob succeeded")
	}
}

// member is one tar member of a crafted archive.
type member struct {
	name, body, link string
	typ              byte
	size             int64 // -1: len(body)
}

func reg(name, body string) member { return member{name: name, body: body, typ: tar.TypeReg, size: -1} }

func listing(ms ...member) backup.Manifest {
	m := backup.Manifest{Format: backup.Format, Seq: 1}
	for _, x := range ms {
		sum := sha256.Sum256([]byte(x.body))
		m.Files = append(m.Files, backup.File{Name: x.name, Size: int64(len(x.body)), SHA256: hex.EncodeToString(sum[:])})
	}
	return m
}

func craft(t *testing.T, man any, ms ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if man != nil {
		b, _ := json.Marshal(man)
		ms = append([]member{reg(backup.ManifestName, string(b))}, ms...)
	}
	for _, m := range ms {
		size := m.size
		if size < 0 {
			size = int64(len(m.body))
		}
		if m.typ != tar.TypeReg {
			size = 0
		}
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Typeflag: m.typ, Linkname: m.link, Size: size, Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
		if m.typ == tar.TypeReg {
			body := m.body
			if int64(len(body)) > size {
				body = body[:size]
			}
			if _, err := tw.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Close errors: a member written shorter than its header says is
	// what some cases want.
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

// TestRestoreRefusesMalformed: archives Create would never write are
// refused with ErrInvalid, and leave neither the target directory nor
// anything else beside it.
func TestRestoreRefusesMalformed(t *testing.T) {
	db := reg("creditd.db", "the database")
	good := craft(t, listing(db, reg("assets/a1", "blob")), db, reg("assets/a1", "blob"))
	if _, err := backup.Check(bytes.NewReader(good), layout); err != nil {
		t.Fatalf("the crafted good archive: %v", err)
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 0xff
	escape := func(name string) []byte {
		return craft(t, listing(db, reg(name, "pwned")), db, reg(name, "pwned"))
	}
	badFormat := listing(db)
	badFormat.Format = 99
	badHash := listing(db)
	badHash.Files[0].SHA256 = badHash.Files[0].SHA256[:63] + "0"
	if badHash.Files[0].SHA256 == listing(db).Files[0].SHA256 {
		badHash.Files[0].SHA256 = badHash.Files[0].SHA256[:63] + "1"
	}
	cases := map[string][]byte{
		"not gzip":                []byte("creditd.db\x00 plain bytes"),
		"empty":                   nil,
		"truncated":               good[:len(good)/2],
		"corrupted":               flipped,
		"trailing garbage":        append(slices.Clone(good), "garbage"...),
		"no manifest":             craft(t, nil, db),
		"manifest not first":      craft(t, nil, db, reg(backup.ManifestName, "{}")),
		"manifest not json":       craft(t, nil, reg(backup.ManifestName, "{not json")),
		"unknown format":          craft(t, badFormat, db),
		"no database":             craft(t, listing(reg("admin.key", "k")), reg("admin.key", "k")),
		"dot-dot":                 escape("../evil"),
		"absolute":                escape("/tmp/evil"),
		"dot-dot in assets":       escape("assets/../../evil"),
		"nested asset":            escape("assets/x/y"),
		"unknown file":            escape("creditd.db-wal"),
		"listed twice":            craft(t, listing(db, db), db, db),
		"member not in manifest":  craft(t, listing(db), db, reg("assets/a1", "blob")),
		"member missing":          craft(t, listing(db, reg("assets/a1", "blob")), db),
		"member renamed":          craft(t, listing(db, reg("assets/a1", "blob")), db, reg("assets/a2", "blob")),
		"size differs":            craft(t, listing(db, reg("assets/a1", "blob")), db, reg("assets/a1", "blob and more")),
		"short member":            craft(t, listing(db, reg("assets/a1", "blob")), db, member{name: "assets/a1", body: "bl", typ: tar.TypeReg, size: 4}),
		"hash differs":            craft(t, badHash, reg("creditd.db", "the databasE")),
		"symlink":                 craft(t, listing(db, reg("assets/a1", "")), db, member{name: "assets/a1", link: "/etc/passwd", typ: tar.TypeSymlink}),
		"hard link":               craft(t, listing(db, reg("assets/a1", "")), db, member{name: "assets/a1", link: "creditd.db", typ: tar.TypeLink}),
		"directory":               craft(t, listing(db, reg("assets/a1", "")), db, member{name: "assets/a1", typ: tar.TypeDir}),
		"huge manifest header":    craft(t, nil, member{name: backup.ManifestName, body: "{}", typ: tar.TypeReg, size: 1 << 40}),
		"manifest with extra key": craft(t, map[string]any{"format": 1, "seq": 1, "files": listing(db).Files, "exec": "rm -rf /"}, db),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := backup.Check(bytes.NewReader(b), layout); !errors.Is(err, backup.ErrInvalid) {
				t.Errorf("Check: %v, want ErrInvalid", err)
			}
			parent := t.TempDir()
			target := filepath.Join(parent, "restored")
			if _, err := backup.Restore(bytes.NewReader(b), target, layout); !errors.Is(err, backup.ErrInvalid) {
				t.Errorf("Restore: %v, want ErrInvalid", err)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("the refused restore left %v", ents)
			}
			if _, err := os.Stat("/tmp/evil"); err == nil {
				t.Errorf("/tmp/evil exists")
			}
		})
	}
}
