//go:build race

package engine_test

// raceEnabled: the race detector slows the SQLite driver down a lot, so the
// model test makes fewer runs.
const raceEnabled = true
