package storetest

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

func listWorkerPolls(t *testing.T, s ledger.Store) []ledger.WorkerPoll {
	t.Helper()
	ps, err := s.ListWorkerPolls(ctx(t))
	check(t, "ListWorkerPolls", err)
	slices.SortFunc(ps, func(a, b ledger.WorkerPoll) int { return cmp.Compare(a.Action, b.Action) })
	return ps
}

func testWorkerPolls(t *testing.T, s ledger.Store) {
	if ps := listWorkerPolls(t, s); len(ps) != 0 {
		t.Fatalf("polls of a new store: %+v", ps)
	}
	check(t, "RecordWorkerPolls nothing", s.RecordWorkerPolls(ctx(t), nil))
	check(t, "RecordWorkerPolls", s.RecordWorkerPolls(ctx(t), []ledger.WorkerPoll{
		{Action: "generate", At: at(time.Minute).In(zone)}, {Action: "crop", At: at(0)},
	}))
	same(t, "first polls", listWorkerPolls(t, s), []ledger.WorkerPoll{{Action: "crop", At: at(0)}, {Action: "generate", At: at(time.Minute)}})
	// A later time raises an action's poll; an earlier one (a node that
	// records late) keeps it; an action listed twice keeps its latest.
	check(t, "RecordWorkerPolls again", s.RecordWorkerPolls(ctx(t), []ledger.WorkerPoll{
		{Action: "crop", At: at(time.Hour)}, {Action: "generate", At: at(time.Second)},
		{Action: "video", At: at(2 * time.Hour)}, {Action: "video", At: at(3 * time.Hour)}, {Action: "video", At: at(time.Hour)},
	}))
	same(t, "polls raised, never lowered", listWorkerPolls(t, s), []ledger.WorkerPoll{
		{Action: "crop", At: at(time.Hour)}, {Action: "generate", At: at(time.Minute)}, {Action: "video", At: at(3 * time.Hour)},
	})
}
