package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// streamLineBytesMax bounds one line of an event stream.
const streamLineBytesMax = 1 << 20

// StreamEvent is one event of an account's live stream: Name is
// "balance" or "job", Data the object in the API's JSON shape, ID what to
// resume after (Last-Event-ID).
type StreamEvent struct {
	ID   string
	Name string
	Data json.RawMessage
}

// Stream is an open event stream (Server-Sent Events); Close it when done.
// It is not safe for concurrent use.
type Stream struct {
	body   io.ReadCloser
	cancel context.CancelFunc
	sc     *bufio.Scanner
	// LastID is the id of the last event read: reconnect with it.
	LastID string
}

// Stream opens the live event stream of account id (GET
// /v1/accounts/{id}/events), resuming after lastEventID when not empty.
// Only ctx bounds it. The server ends a stream that falls behind: then
// Next answers io.EOF, and the caller reconnects with Stream.LastID.
func (c *Client) Stream(ctx context.Context, id, lastEventID string, opts ...Option) (*Stream, error) {
	if lastEventID != "" {
		opts = append(opts, WithHeader("Last-Event-ID", lastEventID))
	}
	opts = append(opts, WithHeader("Accept", "text/event-stream"))
	resp, cancel, err := c.send(ctx, call{method: "GET", path: accountPath(id, "events"), opts: opts})
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), streamLineBytesMax)
	return &Stream{body: resp.Body, cancel: cancel, sc: sc, LastID: lastEventID}, nil
}

// Next reads the next event, skipping comments (keep-alive pings) and
// retry hints. It answers io.EOF when the stream ends.
func (s *Stream) Next() (StreamEvent, error) {
	var ev StreamEvent
	var data bytes.Buffer
	seen := false
	for s.sc.Scan() {
		line := s.sc.Text()
		if line == "" {
			if seen && (ev.Name != "" || data.Len() > 0) {
				ev.Data = json.RawMessage(bytes.Clone(data.Bytes()))
				if ev.ID != "" {
					s.LastID = ev.ID
				}
				return ev, nil
			}
			ev, seen = StreamEvent{}, false
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID, seen = value, true
		case "event":
			ev.Name, seen = value, true
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			seen = true
		}
	}
	if err := s.sc.Err(); err != nil {
		return StreamEvent{}, fmt.Errorf("creditd: event stream: %w", err)
	}
	return StreamEvent{}, io.EOF
}

// Close ends the stream.
func (s *Stream) Close() error {
	err := s.body.Close()
	s.cancel()
	return err
}
