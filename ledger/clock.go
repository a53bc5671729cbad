package ledger

import (
	"sync"
	"time"
)

// Clock is the only source of time in the domain. Read it once per operation.
type Clock interface {
	Now() time.Time
}

// SystemClock reads the wall clock.
type SystemClock struct{}

// Now returns the current UTC time truncated to microseconds (the precision
// the stores keep).
func (SystemClock) Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// TestClock is a settable clock, like Stripe's test clocks. It never moves
// on its own. Set and Advance notify subscribers so that sweepers react.
type TestClock struct {
	mu   sync.Mutex
	now  time.Time
	subs []chan struct{}
}

// NewTestClock returns a clock frozen at t.
func NewTestClock(t time.Time) *TestClock {
	return &TestClock{now: t.UTC().Truncate(time.Microsecond)}
}

// Now returns the frozen time.
func (c *TestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t. Moving backwards is refused: time rules assume a
// monotonic clock.
func (c *TestClock) Set(t time.Time) error {
	c.mu.Lock()
	t = t.UTC().Truncate(time.Microsecond)
	if t.Before(c.now) {
		c.mu.Unlock()
		return Errorf(EInvalid, "the test clock cannot move backwards (now %s)", c.now.Format(time.RFC3339Nano))
	}
	c.now = t
	subs := append([]chan struct{}(nil), c.subs...)
	c.mu.Unlock()
	for _, s := range subs {
		select {
		case s <- struct{}{}:
		default:
		}
	}
	return nil
}

// Advance moves the clock forward by d.
func (c *TestClock) Advance(d time.Duration) error {
	if d < 0 {
		return Errorf(EInvalid, "advance must not be negative")
	}
	return c.Set(c.Now().Add(d))
}

// Subscribe returns a channel that receives a value (coalesced) after each move.
func (c *TestClock) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs = append(c.subs, ch)
	c.mu.Unlock()
	return ch
}
