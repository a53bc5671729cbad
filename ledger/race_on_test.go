//go:build race

package ledger

// raceEnabled: race builds skip some of the compiler's escape analysis, so
// exact allocation counts hold only without it.
const raceEnabled = true
