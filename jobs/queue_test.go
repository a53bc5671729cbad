package jobs_test

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditd/creditd/jobs"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func entry(id, action string, ageSeconds int) jobs.Entry {
	return jobs.Entry{ID: id, AccountID: "acct_" + id, Action: action, CreatedAt: t0.Add(time.Duration(ageSeconds) * time.Second)}
}

func mustPop(t *testing.T, q *jobs.Queue, actions []string, want string) {
	t.Helper()
	e, ok, _ := q.Pop(actions)
	if want == "" {
		if ok {
			t.Fatalf("pop %v: got %s, want nothing", actions, e.ID)
		}
		return
	}
	if !ok || e.ID != want {
		t.Fatalf("pop %v: got %q (ok %v), want %s", actions, e.ID, ok, want)
	}
	if e.AccountID != "acct_"+want {
		t.Fatalf("pop %v: entry %+v lost its account", actions, e)
	}
}

func TestQueuePopsOldestAmongActions(t *testing.T) {
	q := jobs.NewQueue()
	q.Push(entry("g1", "generate", 10))
	q.Push(entry("u1", "upscale", 5))
	q.Push(entry("g2", "generate", 20))
	q.Push(entry("v1", "video", 1))
	q.Push(entry("u2", "upscale", 15))
	if q.Len() != 5 {
		t.Fatalf("len %d, want 5", q.Len())
	}
	both := []string{"generate", "upscale"}
	mustPop(t, q, both, "u1")
	mustPop(t, q, both, "g1")
	mustPop(t, q, both, "u2")
	mustPop(t, q, both, "g2")
	mustPop(t, q, both, "")
	mustPop(t, q, []string{"crop"}, "")
	mustPop(t, q, []string{"crop", "video", "video"}, "v1")
	if q.Len() != 0 {
		t.Fatalf("len %d, want 0", q.Len())
	}
}

func TestQueueTiesByID(t *testing.T) {
	q := jobs.NewQueue()
	for _, id := range []string{"c", "a", "b"} {
		q.Push(entry(id, "generate", 0))
	}
	for _, want := range []string{"a", "b", "c"} {
		mustPop(t, q, []string{"generate"}, want)
	}
}

func TestQueueRemoveAndRequeue(t *testing.T) {
	q := jobs.NewQueue()
	q.Push(entry("old", "generate", 1))
	q.Push(entry("new", "generate", 2))
	q.Remove("old")
	q.Remove("missing")
	if q.Len() != 1 {
		t.Fatalf("len %d, want 1", q.Len())
	}
	mustPop(t, q, []string{"generate"}, "new")
	// A job requeued after a lost lease keeps its place by age.
	q.Push(entry("newer", "generate", 3))
	q.Push(entry("old", "generate", 1))
	mustPop(t, q, []string{"generate"}, "old")
	mustPop(t, q, []string{"generate"}, "newer")
}

func TestQueuePushKeepsPlaceUnlessEarlier(t *testing.T) {
	q := jobs.NewQueue()
	q.Push(entry("a", "generate", 5))
	q.Push(entry("b", "generate", 10))
	q.Push(entry("b", "generate", 20)) // later: ignored
	q.Push(jobs.Entry{ID: "b"})        // no time: ignored
	if q.Len() != 2 {
		t.Fatalf("len %d, want 2", q.Len())
	}
	q.Push(entry("b", "generate", 1)) // heard of earlier: moves up
	if q.Len() != 2 {
		t.Fatalf("len %d, want 2", q.Len())
	}
	mustPop(t, q, []string{"generate"}, "b")
	mustPop(t, q, []string{"generate"}, "a")
	mustPop(t, q, []string{"generate"}, "")
}

func TestQueueNotifiesOnPush(t *testing.T) {
	q := jobs.NewQueue()
	_, ok, notify := q.Pop([]string{"generate"})
	if ok {
		t.Fatal("pop from an empty queue")
	}
	select {
	case <-notify:
		t.Fatal("notified before any push")
	default:
	}
	q.Push(entry("a", "upscale", 0))
	select {
	case <-notify:
	default:
		t.Fatal("push did not notify")
	}
}

func TestQueueManyRemovals(t *testing.T) {
	q := jobs.NewQueue()
	const n = 1000
	for i := range n {
		q.Push(entry(fmt.Sprintf("j%04d", i), "generate", i))
	}
	// Remove all but every tenth, so that the heap is rebuilt on the way.
	for i := range n {
		if i%10 != 0 {
			q.Remove(fmt.Sprintf("j%04d", i))
		}
	}
	if q.Len() != n/10 {
		t.Fatalf("len %d, want %d", q.Len(), n/10)
	}
	for i := 0; i < n; i += 10 {
		mustPop(t, q, []string{"generate"}, fmt.Sprintf("j%04d", i))
	}
	mustPop(t, q, []string{"generate"}, "")
}

func TestQueueUnserved(t *testing.T) {
	q := jobs.NewQueue()
	q.Push(entry("g1", "generate", 1))
	q.Push(entry("g2", "generate", 100))
	q.Push(entry("v1", "video", 1))
	got := q.Unserved(func(action string, createdAt time.Time) bool {
		return action == "generate" && createdAt.Before(t0.Add(50*time.Second))
	}, 10)
	if len(got) != 1 || got[0].ID != "g1" {
		t.Fatalf("unserved %+v, want g1", got)
	}
	if all := q.Unserved(func(string, time.Time) bool { return true }, 2); len(all) != 2 {
		t.Fatalf("unserved with limit 2: %d", len(all))
	}
	if q.Len() != 3 {
		t.Fatalf("unserved took jobs off the queue: len %d", q.Len())
	}
}

// TestQueueModel checks the queue against a plain list under random
// pushes, removals and pops.
func TestQueueModel(t *testing.T) {
	actions := []string{"generate", "upscale", "video"}
	rapid.Check(t, func(rt *rapid.T) {
		q := jobs.NewQueue()
		ref := map[string]jobs.Entry{}
		for step := range rapid.IntRange(1, 400).Draw(rt, "steps") {
			id := fmt.Sprintf("j%d", rapid.IntRange(0, 40).Draw(rt, "id"))
			switch rapid.IntRange(0, 4).Draw(rt, "op") {
			case 0, 1:
				e := entry(id, rapid.SampledFrom(actions).Draw(rt, "action"), rapid.IntRange(0, 50).Draw(rt, "age"))
				if c, ok := ref[id]; ok {
					if e.CreatedAt.Before(c.CreatedAt) {
						c.CreatedAt = e.CreatedAt
						ref[id] = c
					}
				} else {
					ref[id] = e
				}
				q.Push(e)
			case 2:
				delete(ref, id)
				q.Remove(id)
			case 3:
				as := rapid.SliceOfNDistinct(rapid.SampledFrom(actions), 1, 3, rapid.ID).Draw(rt, "actions")
				var want *jobs.Entry
				for _, e := range ref {
					if slices.Contains(as, e.Action) && (want == nil || cmp.Or(e.CreatedAt.Compare(want.CreatedAt), cmp.Compare(e.ID, want.ID)) < 0) {
						want = &e
					}
				}
				got, ok, _ := q.Pop(as)
				switch {
				case want == nil && ok:
					rt.Fatalf("step %d: pop %v gave %+v, want nothing", step, as, got)
				case want != nil && (!ok || got != *want):
					rt.Fatalf("step %d: pop %v gave %+v (ok %v), want %+v", step, as, got, ok, *want)
				}
				if want != nil {
					delete(ref, want.ID)
				}
			case 4:
				age := rapid.IntRange(0, 50).Draw(rt, "unserved_age")
				served := rapid.SampledFrom(actions).Draw(rt, "served_action")
				due := func(action string, createdAt time.Time) bool {
					return action != served && !createdAt.After(t0.Add(time.Duration(age)*time.Second))
				}
				var want, got []string
				for _, e := range ref {
					if due(e.Action, e.CreatedAt) {
						want = append(want, e.ID)
					}
				}
				for _, e := range q.Unserved(due, len(ref)+1) {
					got = append(got, e.ID)
				}
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					rt.Fatalf("step %d: unserved %v, want %v", step, got, want)
				}
			}
			if q.Len() != len(ref) {
				rt.Fatalf("step %d: len %d, want %d", step, q.Len(), len(ref))
			}
		}
	})
}

func TestQueueConcurrent(t *testing.T) {
	q := jobs.NewQueue()
	const producers, perProducer = 4, 500
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProducer {
				q.Push(entry(fmt.Sprintf("p%d-%d", p, i), []string{"generate", "upscale"}[i%2], i))
			}
		}()
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	done := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				e, ok, notify := q.Pop([]string{"generate", "upscale"})
				if ok {
					mu.Lock()
					if seen[e.ID] {
						t.Errorf("%s popped twice", e.ID)
					}
					seen[e.ID] = true
					n := len(seen)
					mu.Unlock()
					if n == producers*perProducer {
						close(done)
					}
					continue
				}
				select {
				case <-notify:
				case <-done:
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != producers*perProducer {
		t.Fatalf("popped %d, want %d", len(seen), producers*perProducer)
	}
}
