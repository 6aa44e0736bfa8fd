// Package bg tracks background work that a shutdown waits for. It owns no
// state of the proxy's: each owner (fills, refreshes, view builds) keeps a
// Group of its own.
//
// Guarantee: once Close has begun, no new work starts (Go and Enter report
// false), so Close never races with a late start, and it returns when all
// started work has ended.
package bg

import "sync"

// Group is a set of running background work. The zero value is ready.
type Group struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs fn in a new goroutine unless the group is closing.
func (g *Group) Go(fn func()) bool {
	if !g.Enter() {
		return false
	}
	go func() {
		defer g.Leave()
		fn()
	}()
	return true
}

// Enter counts work that runs on the caller's goroutine (a singleflight
// function); every true must be followed by Leave.
func (g *Group) Enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

// Leave ends work counted by Enter.
func (g *Group) Leave() { g.wg.Done() }

// Close refuses new work and waits for what runs.
func (g *Group) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}
