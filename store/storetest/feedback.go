package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

// feedbackAccounts lists the accounts of a page of feedback, in order.
func feedbackAccounts(fs []ledger.Feedback) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.AccountID)
	}
	return out
}

func listFeedback(t *testing.T, s ledger.Store, p ledger.ListFeedbackParams) []ledger.Feedback {
	t.Helper()
	fs, err := s.ListFeedback(ctx(t), p)
	check(t, "ListFeedback", err)
	return fs
}

func testFeedback(t *testing.T, s ledger.Store) {
	_, err := s.GetFeedback(ctx(t), ledger.FeedbackKey{AccountID: "alice", Article: "help"})
	wantCode(t, "GetFeedback before any", err, ledger.ENotFound)
	if fs := listFeedback(t, s, ledger.ListFeedbackParams{}); len(fs) != 0 {
		t.Fatalf("ListFeedback of an empty store: %+v", fs)
	}

	// A first answer: stored as given, times in UTC, Seq set.
	first := &ledger.Feedback{AccountID: "alice", Article: "help", Helpful: true, Comment: "Clear — thanks ✓",
		CreatedAt: at(0).In(zone), UpdatedAt: at(0).In(zone), Seq: 999}
	check(t, "SaveFeedback", s.SaveFeedback(ctx(t), first))
	if first.Seq <= 0 {
		t.Fatalf("Seq after save: %d, want > 0", first.Seq)
	}
	got, err := s.GetFeedback(ctx(t), ledger.FeedbackKey{AccountID: "alice", Article: "help"})
	check(t, "GetFeedback", err)
	same(t, "first answer", *got, ledger.Feedback{AccountID: "alice", Article: "help", Helpful: true,
		Comment: "Clear — thanks ✓", CreatedAt: at(0), UpdatedAt: at(0), Seq: first.Seq})

	// Others' answers, on this article and another.
	for i, k := range [][2]string{{"bob", "help"}, {"alice", "other"}, {"carol", "help"}} {
		f := &ledger.Feedback{AccountID: k[0], Article: k[1], Helpful: i%2 == 0,
			CreatedAt: at(time.Duration(i+1) * time.Minute), UpdatedAt: at(time.Duration(i+1) * time.Minute)}
		check(t, "SaveFeedback", s.SaveFeedback(ctx(t), f))
	}
	same(t, "every article, latest first", feedbackAccounts(listFeedback(t, s, ledger.ListFeedbackParams{})),
		[]string{"carol", "alice", "bob", "alice"})

	// Answering again replaces the answer and its comment, keeps the
	// first CreatedAt (also in the saved value) and moves it to the top.
	again := &ledger.Feedback{AccountID: "alice", Article: "help", Helpful: false, Comment: "",
		CreatedAt: at(time.Hour), UpdatedAt: at(time.Hour)}
	check(t, "SaveFeedback again", s.SaveFeedback(ctx(t), again))
	if !again.CreatedAt.Equal(at(0)) {
		t.Errorf("CreatedAt after a second save: %v, want the first answer's %v", again.CreatedAt, at(0))
	}
	got, err = s.GetFeedback(ctx(t), ledger.FeedbackKey{AccountID: "alice", Article: "help"})
	check(t, "GetFeedback", err)
	same(t, "second answer", *got, ledger.Feedback{AccountID: "alice", Article: "help", Helpful: false,
		Comment: "", CreatedAt: at(0), UpdatedAt: at(time.Hour), Seq: again.Seq})
	page := listFeedback(t, s, ledger.ListFeedbackParams{Article: "help"})
	same(t, "one article, latest first", feedbackAccounts(page), []string{"alice", "carol", "bob"})
	if len(page) > 0 && page[0].Seq != again.Seq {
		t.Errorf("listed Seq %d, saved %d", page[0].Seq, again.Seq)
	}

	testFeedbackPages(t, s)
	testFeedbackConcurrentSaves(t, s, again.Seq)
}

// testFeedbackPages: Limit and BeforeSeq page the answers testFeedback
// saved, latest first.
func testFeedbackPages(t *testing.T, s ledger.Store) {
	p1 := listFeedback(t, s, ledger.ListFeedbackParams{Limit: 2})
	same(t, "first page", feedbackAccounts(p1), []string{"alice", "carol"})
	if len(p1) == 2 {
		p2 := listFeedback(t, s, ledger.ListFeedbackParams{BeforeSeq: p1[1].Seq, Limit: 2})
		same(t, "second page", feedbackAccounts(p2), []string{"alice", "bob"})
		if len(p2) == 2 && p2[0].Article != "other" {
			t.Errorf("second page starts with %+v, want alice's answer on other", p2[0])
		}
	}
	if fs := listFeedback(t, s, ledger.ListFeedbackParams{Article: "nope"}); len(fs) != 0 {
		t.Errorf("an article without answers lists %+v", fs)
	}
}

// testFeedbackConcurrentSaves: concurrent saves (several nodes at once)
// each get a Seq of their own, after the latest Seq so far.
func testFeedbackConcurrentSaves(t *testing.T, s ledger.Store, after int64) {
	const n = 16
	var wg sync.WaitGroup
	seqs := make(chan int64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := &ledger.Feedback{AccountID: fmt.Sprint("user-", i), Article: "help", Helpful: true,
				CreatedAt: at(2 * time.Hour), UpdatedAt: at(2 * time.Hour)}
			if err := s.SaveFeedback(ctx(t), f); err != nil {
				t.Errorf("concurrent SaveFeedback: %v", err)
				return
			}
			seqs <- f.Seq
		}()
	}
	wg.Wait()
	close(seqs)
	seen := map[int64]bool{}
	for q := range seqs {
		if q <= after || seen[q] {
			t.Errorf("concurrent save got Seq %d (after %d, seen %v)", q, after, seen)
		}
		seen[q] = true
	}
	if fs := listFeedback(t, s, ledger.ListFeedbackParams{Article: "help"}); len(fs) != n+3 {
		t.Errorf("after %d concurrent saves, %d answers on help, want %d", n, len(fs), n+3)
	}
}
