package bg

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestCloseWaitsAndRefusesLateWork: Close waits for running work, and work
// started while or after it closes is refused instead of racing its Wait
// (run with -race).
func TestCloseWaitsAndRefusesLateWork(t *testing.T) {
	var g Group
	var done atomic.Int32
	release := make(chan struct{})
	if !g.Go(func() { <-release; done.Add(1) }) {
		t.Fatal("Go refused work on an open group")
	}
	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()
	// Late starts from other goroutines while Close waits.
	late := make(chan bool, 50)
	for range 50 {
		go func() { late <- g.Go(func() { done.Add(100) }) }()
	}
	time.Sleep(20 * time.Millisecond)
	select {
	case <-closed:
		t.Fatal("Close returned while work was running")
	default:
	}
	close(release)
	<-closed
	accepted := 0
	for range 50 {
		if <-late {
			accepted++
		}
	}
	if got := done.Load(); got != int32(1+100*accepted) {
		t.Fatalf("work done %d, want %d: Close returned before accepted work ended", got, 1+100*accepted)
	}
	if g.Enter() {
		t.Fatal("Enter accepted work after Close")
	}
}
