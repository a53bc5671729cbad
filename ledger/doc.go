// Package ledger is the domain of creditd: accounts, grants (credit buckets),
// holds (two-phase reservations), immutable ledger entries, prices, the
// clock, limits and errors. The credit rules live here and only here, as pure
// functions over one account's State; the engine package batches and persists
// them, the stores only save what the rules decided.
//
// # Invariants
//
// For every grant (bucket):
//
//	amount = remaining + held + charged + expired, each term >= 0
//
// For every account:
//
//	available = Σ remaining of unexpired buckets >= 0
//	held      = Σ amount of pending holds = Σ held of its buckets
//
// Every change to a bucket is a Leg of an immutable Entry. Replaying the legs
// of all entries (Verify) reproduces every bucket exactly.
//
// # Holds
//
// A hold is pending, then exactly one of captured (possibly partially),
// released or expired:
//
//	            reserve
//	               │
//	               ▼
//	  ┌────────  pending ────────┐
//	  │capture     │ release     │ ttl passed
//	  ▼            ▼             ▼
//	captured    released      expired
//
// Capture charges unit_price × delivered and returns the rest; release and
// expiry return everything. Credits returned to a bucket whose expiry has
// passed are expired, never added to a newer bucket.
package ledger
