package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/creditd/creditd/client"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/backup"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/sqlite"
)

// dataLayout is what a backup holds of a data directory.
var dataLayout = backup.Layout{
	DB:     dbFileName,
	Keys:   []string{adminKeyFileName, workerKeyFileName, sessionKeyFile},
	Assets: assetsDirName,
}

// backupHeaderTimeout bounds the wait for the server to stage its snapshot
// (the materializer's backlog, then the copy of the database).
const backupHeaderTimeout = 10 * time.Minute

// sqliteBackup is the API's BackupFunc of a SQLite node serving dataDir.
// One backup at a time: each stages a copy of the database, and a second
// one at once would double the disk and I/O it takes for nothing.
func sqliteBackup(dataDir string, st *sqlite.Store) httpapi.BackupFunc {
	running := make(chan struct{}, 1)
	return func(ctx context.Context) (*backup.Archive, error) {
		select {
		case running <- struct{}{}:
		default:
			return nil, ledger.Errorf(ledger.EConflict, "a backup of this node is running; try again when it has finished")
		}
		err := backup.RemoveStale(dataDir)
		var a *backup.Archive
		if err == nil {
			a, err = backup.Create(ctx, dataDir, dataLayout, snapshotOf(st))
		}
		if err != nil {
			<-running
			return nil, err
		}
		return a.OnClose(func() { <-running }), nil
	}
}

func snapshotOf(st *sqlite.Store) backup.SnapshotFunc {
	return func(ctx context.Context, dst string) (int64, []string, error) {
		if _, err := st.Snapshot(ctx, dst); err != nil {
			return 0, nil, err
		}
		return sqlite.SnapshotInfo(ctx, dst)
	}
}

const backupAbout = `Writes a backup of a SQLite node to FILE: a consistent snapshot of its
database (every write acknowledged before the backup began is in it), its
key files and its assets, as one gzip-compressed tar (mode 0600; written to
a temporary file, checked, then renamed, so FILE is never half-written).

By default it asks the running server (--server, --key; GET
/v1/admin/backup), which keeps serving meanwhile. --from-data DIR backs up
a stopped server's data directory instead: it opens DIR as serve does
(applying migrations and replaying the journal), so it fails while a
server runs on DIR. A node on PostgreSQL refuses: back up its database with
pg_dump or point-in-time recovery (docs/operations.md).

"creditd restore --in FILE --data DIR" unpacks a backup.`

func backupCmd(args []string) error {
	c := newCommand("backup", "creditd backup --out FILE [--server URL] [--key KEY] | --from-data DIR --out FILE", backupAbout)
	mk := clientFlags(c)
	out := c.String("out", "", "the backup file to write (required)")
	from := c.String("from-data", "", "back up this stopped data directory instead of asking a server")
	if err := c.parseNone(args); err != nil {
		return err
	}
	if *out == "" {
		return c.usageError("--out is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var m *backup.Manifest
	var err error
	if *from != "" {
		m, err = backupStopped(ctx, *from, *out)
	} else {
		var cl *client.Client
		if cl, err = mk(); err != nil {
			return err
		}
		m, err = backupServer(ctx, cl, *out)
	}
	if err != nil {
		return err
	}
	fi, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Printf("backup written: %s (%d bytes, %d files, %d bytes uncompressed), holding the ledger up to batch %d\n",
		*out, fi.Size(), len(m.Files), m.Bytes(), m.Seq)
	return nil
}

// backupServer downloads the server's snapshot into out.
func backupServer(ctx context.Context, cl *client.Client, out string) (*backup.Manifest, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = backupHeaderTimeout
	tr.DisableCompression = true
	cl.HTTP = &http.Client{Transport: tr}
	body, err := cl.Backup(ctx)
	if err != nil {
		var e *client.Error
		if errors.As(err, &e) {
			if e.Code != "" {
				return nil, fmt.Errorf("GET /v1/admin/backup: %d %s: %s (%s)", e.Status, http.StatusText(e.Status), e.Message, e.Code)
			}
			return nil, fmt.Errorf("GET /v1/admin/backup: %d %s", e.Status, http.StatusText(e.Status))
		}
		return nil, err
	}
	defer body.Close()
	return writeBackup(out, func(w io.Writer) error {
		_, err := io.Copy(w, body)
		return err
	})
}

// backupStopped archives the data directory of a stopped server.
func backupStopped(ctx context.Context, dir, out string) (*backup.Manifest, error) {
	path := filepath.Join(dir, dbFileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no database at %s: %w", path, err)
	}
	st, err := sqlite.Open(ctx, path)
	if errors.Is(err, sqlite.ErrLocked) {
		return nil, fmt.Errorf("%w: a server runs on %s; back it up through it (creditd backup --server URL --out FILE)", err, dir)
	}
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if err := backup.RemoveStale(dir); err != nil {
		return nil, err
	}
	a, err := backup.Create(ctx, dir, dataLayout, snapshotOf(st))
	if err != nil {
		return nil, err
	}
	defer a.Close()
	return writeBackup(out, func(w io.Writer) error {
		_, err := a.WriteTo(w)
		return err
	})
}

// writeBackup writes a backup with fill into a temporary file beside out
// (mode 0600), checks it, makes it durable and renames it to out.
func writeBackup(out string, fill func(io.Writer) error) (m *backup.Manifest, err error) {
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return nil, err
	}
	if err := fill(f); err != nil {
		return nil, fmt.Errorf("write backup: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if m, err = backup.Check(f, dataLayout); err != nil {
		return nil, fmt.Errorf("the backup received is incomplete or damaged: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, err
	}
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return m, nil
}

const restoreAbout = `Unpacks a backup written by "creditd backup" into the data directory DIR,
which must not exist or be empty: it never overwrites data. It checks the
whole archive first (every file's name, size and SHA-256 against its
manifest; only the database, key files and assets/ID files are accepted)
and unpacks into a temporary directory beside DIR, renamed to DIR only
when all of it checked out.

Then "creditd verify --data DIR" checks the restored ledger, and
"creditd serve --data DIR" serves it, with the backed-up keys unless
CREDITD_ADMIN_KEY and the like set others.`

func restoreCmd(args []string) error {
	c := newCommand("restore", "creditd restore --in FILE --data DIR", restoreAbout)
	in := c.String("in", "", "the backup file (required)")
	data := c.String("data", "", "the new data directory to restore into (required)")
	if err := c.parseNone(args); err != nil {
		return err
	}
	if *in == "" || *data == "" {
		return c.usageError("--in and --data are required")
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := backup.Restore(f, *data, dataLayout)
	if err != nil {
		return err
	}
	fmt.Printf("restored %d files (%d bytes) into %s, holding the ledger up to batch %d; check it with: creditd verify --data %s\n",
		len(m.Files), m.Bytes(), *data, m.Seq, *data)
	return nil
}
