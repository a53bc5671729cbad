// Package backup writes and restores archives of a SQLite data directory.
//
// An archive is a gzip-compressed tar. Its first member is MANIFEST.json:
// the format, the seq of the last batch the database copy holds, and every
// other member's name, size and SHA-256, in the order they follow. Then
// come the database (a consistent copy made while the server runs, see
// sqlite.Store.Snapshot), the key files and the asset blobs (assets/ID).
//
// Create stages a snapshot inside the data directory: blobs are hard-linked
// (copied where links fail) before and after the database copy is made.
// A blob is written before its asset's row and deleted after it, so every
// asset in the copy has its bytes among the staged blobs unless it was
// made and deleted again while the backup ran; Create checks that and
// takes a new snapshot if so.
//
// Restore reads an archive into a new directory and accepts only what
// Create writes: regular files with the expected names (no other paths,
// so nothing lands outside the directory), in the manifest's order, of the
// manifest's sizes and hashes, then the end of the tar and of the gzip
// stream. It unpacks into a temporary directory beside the target and
// renames it into place only when everything checked out.
package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/creditd/creditd/blob"
)

const (
	// ManifestName is the archive's first member.
	ManifestName = "MANIFEST.json"
	// Format is the archive format Create writes and Restore reads.
	Format = 1
	// ContentType is the media type of an archive.
	ContentType = "application/gzip"

	// manifestBytesMax bounds the manifest Restore reads (about 100 bytes
	// a file: some 600,000 files).
	manifestBytesMax = 64 << 20
	// trailingBytesMax bounds what may follow the tar's end inside the
	// gzip stream (tar pads with zero blocks).
	trailingBytesMax = 1 << 20
	// snapshotAttempts is how many snapshots Create takes before giving up
	// when assets keep vanishing between a copy and its blob pass.
	snapshotAttempts = 3
)

// Layout names the files of a data directory that an archive holds.
type Layout struct {
	DB     string   // the SQLite database, e.g. "creditd.db"
	Keys   []string // key files, archived when present
	Assets string   // the blob directory, e.g. "assets"
}

// File is one member of an archive after the manifest.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes an archive.
type Manifest struct {
	Format int `json:"format"`
	// Seq is the last journaled batch the database holds: the snapshot's
	// point in the sequence of committed batches.
	Seq   int64  `json:"seq"`
	Files []File `json:"files"`
}

// Bytes is the archive's content in all (before compression).
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// SnapshotFunc writes a consistent copy of the database to dst (a file
// that does not exist yet) and returns the seq it holds and its asset ids.
type SnapshotFunc func(ctx context.Context, dst string) (seq int64, assetIDs []string, err error)

// Archive is a staged snapshot of a data directory, ready to be written.
type Archive struct {
	Manifest Manifest
	stage    string
	onClose  func()
}

// OnClose makes Close call f once, after removing the staged files, and
// returns a.
func (a *Archive) OnClose(f func()) *Archive {
	a.onClose = f
	return a
}

// Create stages a snapshot of the data directory dir: the database copy
// snap makes, the key files of l that exist, and the blobs. Close removes
// the staged files.
func Create(ctx context.Context, dir string, l Layout, snap SnapshotFunc) (*Archive, error) {
	var err error
	for range snapshotAttempts {
		var a *Archive
		var missing []string
		a, missing, err = create(ctx, dir, l, snap)
		if err != nil {
			return nil, err
		}
		if len(missing) == 0 {
			return a, nil
		}
		a.Close()
		err = fmt.Errorf("backup: the blobs of %d asset(s) (%s) vanished while the snapshot was taken", len(missing), missing[0])
	}
	return nil, err
}

func create(ctx context.Context, dir string, l Layout, snap SnapshotFunc) (_ *Archive, missing []string, err error) {
	stage, err := os.MkdirTemp(dir, ".backup-")
	if err != nil {
		return nil, nil, fmt.Errorf("backup: %w", err)
	}
	a := &Archive{stage: stage}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	assets := filepath.Join(dir, l.Assets)
	staged := filepath.Join(stage, l.Assets)
	if err := os.Mkdir(staged, 0o700); err != nil {
		return nil, nil, fmt.Errorf("backup: %w", err)
	}
	have := map[string]bool{}
	if err := stageBlobs(assets, staged, have); err != nil {
		return nil, nil, err
	}
	seq, ids, err := snap(ctx, filepath.Join(stage, l.DB))
	if err != nil {
		return nil, nil, err
	}
	if err := stageBlobs(assets, staged, have); err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	a.Manifest = Manifest{Format: Format, Seq: seq}
	if err := a.list(dir, l, have); err != nil {
		return nil, nil, err
	}
	return a, missing, nil
}

// list copies the key files of l that exist in dir into the stage, and
// lists the staged files in the manifest with their sizes and hashes: the
// database copy, the keys, and the blobs in have.
func (a *Archive) list(dir string, l Layout, have map[string]bool) error {
	add := func(name string) error {
		size, sum, err := hashFile(filepath.Join(a.stage, filepath.FromSlash(name)))
		if err != nil {
			return err
		}
		a.Manifest.Files = append(a.Manifest.Files, File{Name: name, Size: size, SHA256: sum})
		return nil
	}
	if err := add(l.DB); err != nil {
		return err
	}
	for _, k := range l.Keys {
		src := filepath.Join(dir, k)
		if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
			continue
		}
		// Keys are small and never rewritten in place: copy them.
		b, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := os.WriteFile(filepath.Join(a.stage, k), b, 0o600); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := add(k); err != nil {
			return err
		}
	}
	blobs := make([]string, 0, len(have))
	for id := range have {
		blobs = append(blobs, id)
	}
	slices.Sort(blobs)
	for _, id := range blobs {
		if err := add(path.Join(l.Assets, id)); err != nil {
			return err
		}
	}
	return nil
}

// RemoveStale removes the staged files that a process killed during a
// backup left in the data directory dir. The caller makes sure that no
// backup of dir is running (the server runs one at a time and holds the
// database's lock; an offline backup holds it too).
func RemoveStale(dir string) error {
	stale, err := filepath.Glob(filepath.Join(dir, ".backup-*"))
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	for _, p := range stale {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("backup: remove stale %s: %w", p, err)
		}
	}
	return nil
}

// stageBlobs links every blob in src not yet in have into dst.
func stageBlobs(src, dst string, have map[string]bool) error {
	ents, err := os.ReadDir(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	for _, e := range ents {
		id := e.Name()
		if have[id] || !e.Type().IsRegular() || !blob.ValidID(id) {
			continue // temporary files of blobs being written, and the like
		}
		err := os.Link(filepath.Join(src, id), filepath.Join(dst, id))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			err = copyFile(filepath.Join(src, id), filepath.Join(dst, id))
		}
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("backup: stage blob %s: %w", id, err)
		}
		have[id] = true
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func hashFile(p string) (size int64, sum string, err error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if size, err = io.Copy(h, f); err != nil {
		return 0, "", fmt.Errorf("backup: %w", err)
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// memberTime is every member's modification time: archives of the same
// files are the same bytes.
var memberTime = time.Unix(0, 0).UTC()

// WriteTo writes the archive to w.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	// The fastest level: a server writes archives while it serves, and
	// the database pages compress well at any level.
	gz, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	tw := tar.NewWriter(gz)
	man, err := json.MarshalIndent(a.Manifest, "", "  ")
	if err != nil {
		return cw.n, fmt.Errorf("backup: %w", err)
	}
	hdr := func(name string, size int64) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: memberTime, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(ManifestName, int64(len(man)))); err != nil {
		return cw.n, fmt.Errorf("backup: %w", err)
	}
	if _, err := tw.Write(man); err != nil {
		return cw.n, fmt.Errorf("backup: %w", err)
	}
	for _, f := range a.Manifest.Files {
		if err := a.writeMember(tw, hdr(f.Name, f.Size)); err != nil {
			return cw.n, err
		}
	}
	if err := tw.Close(); err != nil {
		return cw.n, fmt.Errorf("backup: %w", err)
	}
	if err := gz.Close(); err != nil {
		return cw.n, fmt.Errorf("backup: %w", err)
	}
	return cw.n, nil
}

func (a *Archive) writeMember(tw *tar.Writer, h *tar.Header) error {
	f, err := os.Open(filepath.Join(a.stage, filepath.FromSlash(h.Name)))
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	// A staged file is a link or a copy no one writes: it has the size
	// the manifest says.
	if _, err := io.Copy(tw, io.LimitReader(f, h.Size)); err != nil {
		return fmt.Errorf("backup: %s: %w", h.Name, err)
	}
	return nil
}

// Close removes the staged files. It is idempotent.
func (a *Archive) Close() error {
	if a.stage == "" {
		return nil
	}
	err := os.RemoveAll(a.stage)
	a.stage = ""
	if a.onClose != nil {
		a.onClose()
	}
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ErrInvalid is wrapped by the errors of an archive that Check or Restore
// refuses.
var ErrInvalid = errors.New("not a valid creditd backup")

// ErrNotEmpty is wrapped by Restore's error when the target directory
// holds files.
var ErrNotEmpty = errors.New("the directory holds data")

func invalid(format string, a ...any) error {
	return fmt.Errorf("backup: %w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Check reads a whole archive and returns its manifest if Restore would
// accept it.
func Check(r io.Reader, l Layout) (*Manifest, error) {
	return read(r, l, func(string) (io.WriteCloser, error) { return nopCloser{io.Discard}, nil })
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Restore unpacks the archive r into dir, which must not exist or be
// empty. On any error it leaves dir as it was.
func Restore(r io.Reader, dir string, l Layout) (*Manifest, error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("backup: restore into %s: %w (%d entries); restore into a new directory", dir, ErrNotEmpty, len(ents))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restore-")
	if err != nil {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(stage)
		}
	}()
	if err := os.Mkdir(filepath.Join(stage, l.Assets), 0o700); err != nil {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	m, err := read(r, l, func(name string) (io.WriteCloser, error) {
		f, err := os.OpenFile(filepath.Join(stage, filepath.FromSlash(name)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("backup: restore: %w", err)
		}
		return syncCloser{f}, nil
	})
	if err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(stage, l.Assets), stage} {
		if err := syncDir(d); err != nil {
			return nil, fmt.Errorf("backup: restore: %w", err)
		}
	}
	// An empty dir gives way; one that gained files meanwhile does not
	// (Remove fails on it).
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("backup: restore into %s: %w", dir, err)
	}
	if err := os.Rename(stage, dir); err != nil {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	done = true
	if err := syncDir(parent); err != nil {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	return m, nil
}

type syncCloser struct{ f *os.File }

func (s syncCloser) Write(p []byte) (int, error) { return s.f.Write(p) }
func (s syncCloser) Close() error {
	if err := s.f.Sync(); err != nil {
		s.f.Close()
		return err
	}
	return s.f.Close()
}

func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// checkManifest checks the names, sizes and hashes a manifest lists.
func checkManifest(m *Manifest, l Layout) error {
	if m.Format != Format {
		return invalid("format %d, this version reads %d", m.Format, Format)
	}
	if m.Seq < 0 {
		return invalid("seq %d", m.Seq)
	}
	if len(m.Files) == 0 || m.Files[0].Name != l.DB {
		return invalid("the first file is not the database %s", l.DB)
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		if !allowedName(f.Name, l) {
			return invalid("unexpected file %q", f.Name)
		}
		if seen[f.Name] {
			return invalid("file %q listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Size < 0 {
			return invalid("file %q has size %d", f.Name, f.Size)
		}
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != sha256.Size {
			return invalid("file %q has no valid sha256", f.Name)
		}
	}
	return nil
}

// allowedName reports whether an archive may hold name: the database, a
// key file, or a blob of the asset directory. Nothing else, so no name
// can point outside the directory.
func allowedName(name string, l Layout) bool {
	if name == l.DB || slices.Contains(l.Keys, name) {
		return true
	}
	id, ok := strings.CutPrefix(name, l.Assets+"/")
	return ok && blob.ValidID(id)
}

// read reads an archive, creating each file it holds with create.
func read(r io.Reader, l Layout, create func(name string) (io.WriteCloser, error)) (*Manifest, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, invalid("%v", err)
	}
	tr := tar.NewReader(gz)
	h, err := tr.Next()
	if err != nil {
		return nil, invalid("no manifest: %v", err)
	}
	if h.Name != ManifestName || h.Typeflag != tar.TypeReg || h.Size > manifestBytesMax {
		return nil, invalid("the first member is %q (type %q, %d bytes), not the manifest", h.Name, h.Typeflag, h.Size)
	}
	var m Manifest
	dec := json.NewDecoder(io.LimitReader(tr, manifestBytesMax))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, invalid("manifest: %v", err)
	}
	if err := checkManifest(&m, l); err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		h, err := tr.Next()
		if err != nil {
			return nil, invalid("%s missing: %v", f.Name, err)
		}
		if h.Name != f.Name || h.Typeflag != tar.TypeReg || h.Size != f.Size {
			return nil, invalid("member %q (type %q, %d bytes) where the manifest lists %q (%d bytes)", h.Name, h.Typeflag, h.Size, f.Name, f.Size)
		}
		w, err := create(f.Name)
		if err != nil {
			return nil, err
		}
		hash := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, hash), tr)
		if cerr := w.Close(); err == nil && cerr != nil {
			return nil, fmt.Errorf("backup: restore %s: %w", f.Name, cerr)
		}
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("backup: restore %s: %w", f.Name, err) // writing it
			}
			return nil, invalid("%s: %v", f.Name, err) // reading the archive
		}
		if n != f.Size || hex.EncodeToString(hash.Sum(nil)) != f.SHA256 {
			return nil, invalid("%s does not match its size or sha256 in the manifest", f.Name)
		}
	}
	if h, err := tr.Next(); err != io.EOF {
		if err == nil {
			return nil, invalid("unexpected member %q after the files the manifest lists", h.Name)
		}
		return nil, invalid("after the last file: %v", err)
	}
	// Read the gzip stream to its end: its checksum and length are checked
	// there, and a truncated archive fails here.
	n, err := io.Copy(io.Discard, io.LimitReader(gz, trailingBytesMax+1))
	if err != nil {
		return nil, invalid("%v", err)
	}
	if n > trailingBytesMax {
		return nil, invalid("more than %d bytes after the tar's end", trailingBytesMax)
	}
	return &m, nil
}
