package postgres

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/bus"
)

// Bus limits.
const (
	busChannel        = "creditd_events"
	busQueueMax       = 4096             // notifications waiting to be sent; beyond, they are dropped (clients resync)
	busPayloadMax     = 7000             // bytes per NOTIFY (PostgreSQL's limit is 8000)
	busReconnectMax   = 5 * time.Second  // longest wait between LISTEN reconnects
	busNotifyTimeout  = 5 * time.Second  // bound on one NOTIFY
	busListenerPingMs = 30 * time.Second // idle LISTEN connections are checked this often
)

// Bus carries engine events between nodes over LISTEN/NOTIFY. Local events
// are delivered at once; a compact notice (account, changed jobs) goes to
// the other nodes, which deliver it as a Remote event. Notices are hints:
// receivers read fresh state, and a lost notice only delays a live update.
type Bus struct {
	local  *bus.Local
	pool   *pgxpool.Pool
	node   string
	log    *slog.Logger
	out    chan []byte
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type notice struct {
	Node   string        `json:"n"`
	Events []noticeEvent `json:"e"`
}

type noticeEvent struct {
	AccountID string      `json:"a"`
	Jobs      []noticeJob `json:"j,omitempty"`
}

type noticeJob struct {
	ID     string           `json:"i"`
	Action string           `json:"x"`
	Status ledger.JobStatus `json:"s"`
}

// NewBus starts listening. Close stops it.
func NewBus(ctx context.Context, s *Store, log *slog.Logger) (*Bus, error) {
	if log == nil {
		log = slog.Default()
	}
	bctx, cancel := context.WithCancel(context.Background())
	b := &Bus{
		local: bus.NewLocal(), pool: s.pool, node: rand.Text(), log: log,
		out: make(chan []byte, busQueueMax), cancel: cancel,
	}
	conn, err := b.listen(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	b.wg.Add(2)
	go b.receive(bctx, conn)
	go b.send(bctx)
	return b, nil
}

func (b *Bus) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, b.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+busChannel); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return conn, nil
}

// Close stops the bus.
func (b *Bus) Close() {
	b.cancel()
	b.wg.Wait()
}

// Subscribe registers fn for local and remote events.
func (b *Bus) Subscribe(fn func(bus.Event)) func() { return b.local.Subscribe(fn) }

// Publish delivers events locally and queues a notice for other nodes.
func (b *Bus) Publish(events []bus.Event) {
	b.local.Publish(events)
	n := notice{Node: b.node}
	size := 0
	flush := func() {
		if len(n.Events) == 0 {
			return
		}
		payload, _ := json.Marshal(n)
		select {
		case b.out <- payload:
		default:
			b.log.Warn("event bus queue full; dropping a notice")
		}
		n.Events, size = nil, 0
	}
	for _, ev := range events {
		ne := noticeEvent{AccountID: ev.AccountID}
		for _, j := range ev.Jobs {
			ne.Jobs = append(ne.Jobs, noticeJob{ID: j.ID, Action: j.Action, Status: j.Status})
		}
		one, _ := json.Marshal(ne)
		if size+len(one) > busPayloadMax {
			flush()
		}
		n.Events = append(n.Events, ne)
		size += len(one)
	}
	flush()
}

func (b *Bus) send(ctx context.Context) {
	defer b.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-b.out:
			nctx, cancel := context.WithTimeout(ctx, busNotifyTimeout)
			if _, err := b.pool.Exec(nctx, "SELECT pg_notify($1, $2)", busChannel, string(p)); err != nil && ctx.Err() == nil {
				b.log.Warn("event bus notify failed", "err", err)
			}
			cancel()
		}
	}
}

func (b *Bus) receive(ctx context.Context, conn *pgx.Conn) {
	defer b.wg.Done()
	wait := 100 * time.Millisecond
	for {
		if conn == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			var err error
			if conn, err = b.listen(ctx); err != nil {
				b.log.Warn("event bus reconnect failed", "err", err)
				wait = min(2*wait, busReconnectMax)
				continue
			}
			wait = 100 * time.Millisecond
		}
		wctx, cancel := context.WithTimeout(ctx, busListenerPingMs)
		msg, err := conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			conn.Close(context.Background())
			return
		}
		if err != nil {
			if wctx.Err() != nil && conn.Ping(ctx) == nil {
				continue // idle, connection healthy
			}
			b.log.Warn("event bus connection lost; reconnecting", "err", err)
			conn.Close(context.Background())
			conn = nil
			continue
		}
		var n notice
		if json.Unmarshal([]byte(msg.Payload), &n) != nil || n.Node == b.node {
			continue
		}
		events := make([]bus.Event, 0, len(n.Events))
		for _, ne := range n.Events {
			ev := bus.Event{AccountID: ne.AccountID, Remote: true}
			for _, j := range ne.Jobs {
				ev.Jobs = append(ev.Jobs, ledger.Job{ID: j.ID, AccountID: ne.AccountID, Action: j.Action, Status: j.Status})
			}
			events = append(events, ev)
		}
		b.local.Publish(events)
	}
}
