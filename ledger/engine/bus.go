package engine

import "github.com/creditd/creditd/ledger/bus"

// The event types live in package bus, below the engine and the stores;
// these names keep the engine's API whole.
type (
	// Event is bus.Event.
	Event = bus.Event
	// Bus is bus.Bus.
	Bus = bus.Bus
	// LocalBus is bus.Local.
	LocalBus = bus.Local
)

// NewLocalBus returns an empty bus.Local.
func NewLocalBus() *LocalBus { return bus.NewLocal() }

// subscriberCounter is the optional method of a Bus that lets the engine
// skip building events nobody receives.
type subscriberCounter interface{ Subscribers() int }

// Subscribe registers fn for the events of every committed batch (and,
// with a cross-node bus, of other nodes). See Bus.Subscribe.
func (e *Engine) Subscribe(fn func(Event)) (cancel func()) { return e.bus.Subscribe(fn) }
