// Package bus holds the types of committed-change events and the buses that
// carry them: the engine publishes on a Bus, a store may carry events
// between nodes (store/postgres), and the HTTP and web layers subscribe.
// It sits below both the engine and the stores so that neither imports the
// other.
package bus

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Event tells subscribers what a committed batch changed for an account:
// the entries written, the holds and jobs changed, and the account's
// committed state after the batch.
//
// The engine does not compute balances for events: most changed accounts
// have nobody watching them. A subscriber that serves an account's balance
// calls BalanceView, which computes it from State only then.
//
// An event that crossed from another node (Remote) carries only AccountID
// and the ids of the changed jobs (Jobs[i].ID); subscribers read fresh
// state through the engine.
type Event struct {
	AccountID string
	// State is the account's committed snapshot after the batch (nil when
	// the account does not exist, and in remote events). It is immutable
	// and shared with the engine's cache: read it, never change it, and do
	// not keep it beyond the call.
	State *ledger.State
	// At is the batch's time: the now every operation of the batch saw.
	At time.Time
	// Balance is the balance after the batch when the publisher computed
	// it (a bus may carry it between processes); the engine leaves it nil.
	Balance *ledger.Balance
	Entries []ledger.Entry
	Holds   []ledger.Hold
	Jobs    []ledger.Job
	Remote  bool
}

// BalanceView returns the account's balance after the batch: Balance if
// the publisher set it, else computed from State at At; nil when the event
// has neither (a remote event, or an account that does not exist).
func (ev *Event) BalanceView(cfg *ledger.Config) *ledger.Balance {
	if ev.Balance != nil {
		return ev.Balance
	}
	if ev.State == nil {
		return nil
	}
	b := ev.State.View(cfg, ev.At)
	return &b
}

// Bus carries committed events to subscribers, possibly across nodes.
//
// A Bus may also have a method Subscribers() int; when it reports none,
// the engine builds no events at all (Local has it; a bus that forwards
// events to other nodes must not report none).
type Bus interface {
	// Publish is called by the committer after every commit. It must not block.
	Publish(events []Event)
	// Subscribe registers fn for every event (local and remote) until the
	// returned cancel is called. fn runs on the publisher's goroutine and
	// must not block: hand the event to a bounded buffer.
	Subscribe(fn func(Event)) (cancel func())
}

// Local delivers events within one process.
type Local struct {
	mu   sync.RWMutex
	next int
	subs map[int]func(Event)
	n    atomic.Int64 // len(subs), read without the lock
}

// NewLocal returns an empty bus.
func NewLocal() *Local { return &Local{subs: map[int]func(Event){}} }

// Publish delivers events to every subscriber.
func (b *Local) Publish(events []Event) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, ev := range events {
		for _, fn := range b.subs {
			fn(ev)
		}
	}
}

// Subscribe registers fn.
func (b *Local) Subscribe(fn func(Event)) func() {
	b.mu.Lock()
	id := b.next
	b.next++
	b.subs[id] = fn
	b.n.Store(int64(len(b.subs)))
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.n.Store(int64(len(b.subs)))
		b.mu.Unlock()
	}
}

// Subscribers returns the number of subscribers.
func (b *Local) Subscribers() int { return int(b.n.Load()) }
