package engine

import (
	"sync"

	"github.com/creditd/creditd/ledger"
)

// Event tells subscribers what a committed batch changed for an account:
// its new balance, the entries written, and the holds and jobs changed.
//
// An event that crossed from another node (Remote) carries only AccountID
// and the ids of the changed jobs (Jobs[i].ID); subscribers read fresh
// state through the engine.
type Event struct {
	AccountID string
	Balance   *ledger.Balance
	Entries   []ledger.Entry
	Holds     []ledger.Hold
	Jobs      []ledger.Job
	Remote    bool
}

// Bus carries committed events to subscribers, possibly across nodes.
type Bus interface {
	// Publish is called by the committer after every commit. It must not block.
	Publish(events []Event)
	// Subscribe registers fn for every event (local and remote) until the
	// returned cancel is called. fn runs on the publisher's goroutine and
	// must not block: hand the event to a bounded buffer.
	Subscribe(fn func(Event)) (cancel func())
}

// LocalBus delivers events within one process.
type LocalBus struct {
	mu   sync.RWMutex
	next int
	subs map[int]func(Event)
}

// NewLocalBus returns an empty bus.
func NewLocalBus() *LocalBus { return &LocalBus{subs: map[int]func(Event){}} }

// Publish delivers events to every subscriber.
func (b *LocalBus) Publish(events []Event) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, ev := range events {
		for _, fn := range b.subs {
			fn(ev)
		}
	}
}

// Subscribe registers fn.
func (b *LocalBus) Subscribe(fn func(Event)) func() {
	b.mu.Lock()
	id := b.next
	b.next++
	b.subs[id] = fn
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
	}
}

// Subscribe registers fn for the events of every committed batch (and,
// with a cross-node bus, of other nodes). See Bus.Subscribe.
func (e *Engine) Subscribe(fn func(Event)) (cancel func()) { return e.bus.Subscribe(fn) }
