package engine

import (
	"sync"
	"sync/atomic"

	"github.com/creditd/creditd/ledger"
)

// stateCache holds the committed snapshots of at most max accounts.
//
// Only the committer installs snapshots, and only committed ones, so a
// snapshot in the cache is always the account's latest committed state
// (on a non-exclusive store: the latest this node committed; the committer
// compares versions under the row lock). An account that is not cached is
// loaded from the store by the committer when an operation needs it, so
// eviction costs a reload, never correctness.
//
// Eviction is CLOCK (second chance): the slots form a ring; a read sets the
// slot's reference bit; to make room the hand walks the ring, clearing set
// bits and taking the first slot whose bit is clear. Every step of the hand
// either clears a bit some access set or evicts, so an install costs O(1)
// amortized, with no sort and no per-read write: readers share the read
// lock and set the bit with an atomic store (only when it is clear, so a
// hot account's slot is not written on every read).
type stateCache struct {
	max int

	mu    sync.RWMutex
	index map[string]int // account id → slot
	slots []cacheSlot    // the ring; grows up to max, then slots are reused
	hand  int
}

type cacheSlot struct {
	id  string
	st  *ledger.State
	ref atomic.Bool
}

func newStateCache(max int) *stateCache {
	if max < 1 {
		max = 1
	}
	return &stateCache{max: max, index: map[string]int{}}
}

// clear forgets every snapshot: the next batch that needs an account loads
// it from the store.
func (c *stateCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.index = map[string]int{}
	c.slots = nil
	c.hand = 0
}

// get returns the committed snapshot of an account, or nil if it is not
// cached. The snapshot is immutable.
func (c *stateCache) get(id string) *ledger.State {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, ok := c.index[id]
	if !ok {
		return nil
	}
	s := &c.slots[i]
	if !s.ref.Load() {
		s.ref.Store(true)
	}
	return s.st
}

// len returns the number of cached accounts.
func (c *stateCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.index)
}

// install makes committed snapshots visible, evicting others as needed so
// that at most max accounts stay cached, and returns how many it evicted
// and how many are cached. Nil states (absent accounts) are skipped. The
// committer calls it after every commit.
func (c *stateCache) install(states map[string]*ledger.State) (evicted, cached int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, st := range states {
		if st == nil {
			continue
		}
		if i, ok := c.index[id]; ok {
			c.slots[i].st = st
			c.slots[i].ref.Store(true)
			continue
		}
		if len(c.slots) < c.max {
			c.index[id] = len(c.slots)
			c.slots = append(c.slots, cacheSlot{id: id, st: st})
			continue
		}
		i := c.victim()
		s := &c.slots[i]
		delete(c.index, s.id)
		s.id, s.st = id, st
		s.ref.Store(false)
		c.index[id] = i
		evicted++
	}
	return evicted, len(c.index)
}

// victim advances the hand to a slot whose reference bit is clear, clearing
// the bits it passes, and returns that slot. It ends within one turn of the
// ring plus one slot. The caller holds the write lock.
func (c *stateCache) victim() int {
	for {
		i := c.hand
		c.hand++
		if c.hand == len(c.slots) {
			c.hand = 0
		}
		s := &c.slots[i]
		if !s.ref.Load() {
			return i
		}
		s.ref.Store(false)
	}
}
