package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/creditd/creditd/internal/backup"
	"github.com/creditd/creditd/ledger"
)

// BackupFunc stages a consistent snapshot of a node's data directory
// (backup.Create); the caller closes it.
type BackupFunc func(ctx context.Context) (*backup.Archive, error)

// backupWriteTimeout bounds each write of a backup to its client: the
// server's WriteTimeout would cut a large archive, while a client that
// stops reading must not hold the staged snapshot for ever.
const backupWriteTimeout = time.Minute

// getBackup streams a snapshot of the node's data (GET /v1/admin/backup):
// a gzip-compressed tar (internal/backup) that creditd backup checks and
// creditd restore unpacks. A node on PostgreSQL answers 409: its database
// is backed up with PostgreSQL's own tools.
func (s *Server) getBackup(w http.ResponseWriter, r *http.Request, _ Principal) {
	if s.Backup == nil {
		s.writeError(w, r, ledger.Errorf(ledger.EConflict,
			"this node keeps its ledger in PostgreSQL: back up the database with pg_dump or point-in-time recovery (docs/operations.md)"))
		return
	}
	a, err := s.Backup(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer a.Close()
	s.log.Info("backup: streaming a snapshot", "seq", a.Manifest.Seq, "files", len(a.Manifest.Files), "bytes", a.Manifest.Bytes())
	w.Header().Set("Content-Type", backup.ContentType)
	w.Header().Set("Content-Disposition", `attachment; filename="creditd-backup.tar.gz"`)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if _, err := a.WriteTo(deadlineWriter{w, rc}); err != nil {
		// The client finds the archive incomplete (creditd backup checks
		// it); abort the response rather than end it cleanly.
		s.log.Warn("backup: streaming failed", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// deadlineWriter renews the write deadline before every write.
type deadlineWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(backupWriteTimeout))
	return d.w.Write(p)
}
