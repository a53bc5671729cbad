package httpx

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/ledger"
)

const (
	// eventWriteTimeout bounds one write to a stream (the server's
	// WriteTimeout does not apply to streams).
	eventWriteTimeout = 15 * time.Second
	// eventRetryMs is the reconnection delay we suggest to EventSource.
	eventRetryMs = 3000
	// eventRefusedRetryAfter is the Retry-After of a stream refused by the
	// per-account cap.
	eventRefusedRetryAfter = "10"
)

// ServeEvents streams an account's events (app.Service.SubscribeEvents)
// as Server-Sent Events. Each event has an id; a client that reconnects
// with Last-Event-ID (or ?last_event_id=) gets the events it missed, or,
// when they are no longer known, a fresh "balance" first. Comments keep
// idle connections alive. The caller must have checked access to the
// account; cred is the user credential the stream is opened with (nil for
// the admin key), and the stream ends when it expires or is revoked.
func ServeEvents(w http.ResponseWriter, r *http.Request, svc *app.Service, log *slog.Logger, accountID string, cred *app.Claims) {
	lastID := r.Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = r.URL.Query().Get("last_event_id")
	}
	sub, err := svc.SubscribeEvents(r.Context(), accountID, lastID, cred)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ETooMany {
			w.Header().Set("Retry-After", eventRefusedRetryAfter)
		}
		WriteError(w, r, log, err)
		return
	}
	defer sub.Close()
	rc := http.NewResponseController(w)
	sub.SetAbort(func() { _ = rc.SetWriteDeadline(time.Now()) })
	// The server's read timeout would end the stream (its background
	// read of the idle connection times out), so streams have none.
	_ = rc.SetReadDeadline(time.Time{})

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	send := func() bool {
		if buf.Len() == 0 {
			return true
		}
		if sub.Arm(func() { _ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout)) }) != nil {
			return false
		}
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		return err == nil && rc.Flush() == nil
	}
	add := func(e app.Event) {
		fmt.Fprintf(&buf, "id: %s\nevent: %s\ndata: %s\n\n", e.ID, e.Name, e.Data)
	}
	fmt.Fprintf(&buf, "retry: %d\n\n", eventRetryMs)
	for _, e := range sub.Start {
		add(e)
	}
	if !send() {
		return
	}
	streamEvents(r, sub, &buf, add, send)
}

// streamEvents is ServeEvents' loop: events as they come, a keep-alive
// (and revocation check) at every heartbeat, until the stream ends.
func streamEvents(r *http.Request, sub *app.Subscription, buf *bytes.Buffer, add func(app.Event), send func() bool) {
	tick := time.NewTicker(sub.Heartbeat())
	defer tick.Stop()
	events := sub.Events()
	for {
		select {
		case e := <-events:
			add(e)
		more:
			for range app.EventBufferSize {
				select {
				case e := <-events:
					add(e)
				default:
					break more
				}
			}
		case <-tick.C:
			if sub.Revoked(r.Context()) {
				return
			}
			buf.WriteString(": ping\n\n")
		case <-sub.Gone():
			return
		case <-r.Context().Done():
			return
		}
		if sub.Expired() {
			return
		}
		if !send() {
			return
		}
	}
}
