package postgres

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/bus"
)

func TestBusCrossesNodes(t *testing.T) {
	a, dsn := openNew(t)
	b := open(t, dsn)
	ctx := context.Background()
	busA, err := NewBus(ctx, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer busA.Close()
	busB, err := NewBus(ctx, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer busB.Close()
	gotA := make(chan bus.Event, 8)
	gotB := make(chan bus.Event, 8)
	defer busA.Subscribe(func(ev bus.Event) { gotA <- ev })()
	defer busB.Subscribe(func(ev bus.Event) { gotB <- ev })()

	bal := ledger.Balance{AccountID: "acct", AvailableCredits: 40}
	busA.Publish([]bus.Event{{AccountID: "acct", Balance: &bal, Jobs: []ledger.Job{{ID: "job_1", AccountID: "acct", Action: "crop", Status: ledger.JobQueued}}}})

	select {
	case ev := <-gotA:
		if ev.Remote || ev.Balance == nil || ev.Balance.AvailableCredits != 40 {
			t.Fatalf("local delivery: %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no local delivery")
	}
	select {
	case ev := <-gotB:
		if !ev.Remote || ev.AccountID != "acct" || len(ev.Jobs) != 1 || ev.Jobs[0].ID != "job_1" ||
			ev.Jobs[0].Action != "crop" || ev.Jobs[0].Status != ledger.JobQueued {
			t.Fatalf("remote delivery: %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event did not reach the other node")
	}
	// A node does not receive its own notices back as remote events.
	select {
	case ev := <-gotA:
		t.Fatalf("echo: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestBlobs(t *testing.T) {
	s, _ := openNew(t)
	bl := s.Blobs()
	if err := bl.Put("asset_1", []byte("png bytes")); err != nil {
		t.Fatal(err)
	}
	if err := bl.Put("asset_1", []byte("other")); err != nil {
		t.Fatal(err)
	}
	r, err := bl.Open("asset_1")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != "png bytes" {
		t.Fatalf("blob %q (a second Put must keep the first)", got)
	}
	if _, err := bl.Open("asset_none"); ledger.ErrorCode(err) != ledger.ENotFound {
		t.Fatalf("missing blob: %v", err)
	}
}
