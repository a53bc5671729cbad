package engine

// CachedAccounts returns how many accounts the engine's cache holds.
func (e *Engine) CachedAccounts() int { return e.cache.len() }

// IsCached reports whether an account's snapshot is cached (it counts as a
// read for the eviction order).
func (e *Engine) IsCached(id string) bool { return e.cache.get(id) != nil }

// DropCache forgets every cached snapshot, as if all were evicted.
func (e *Engine) DropCache() { e.cache.clear() }

// QueuedOps returns how many operations wait in the committers' queues.
func (e *Engine) QueuedOps() int {
	n := 0
	for _, q := range e.ops {
		n += len(q)
	}
	return n
}
