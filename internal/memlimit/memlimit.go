// Package memlimit owns the process's soft memory limit (the Go runtime's
// GOMEMLIMIT). By default the collector lets the heap grow to twice the
// live data before it runs (GOGC=100); for a proxy whose live data is a few
// tens of MiB (package indexes, reference summaries) that slack is most of
// its resident set. Start keeps the runtime's memory near a floor instead,
// and raises the limit with the live data after each collection, so that
// garbage may always reach half the live heap (and at least 8 MiB): a fixed
// soft limit near or below the live heap would have the collector run back
// to back, this one at most doubles its work against GOGC=100 once the
// live data outgrows the floor.
//
// An operator's GOMEMLIMIT in the environment wins: Start then leaves the
// runtime alone.
package memlimit

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultFloor is the limit while the live heap is under two thirds of
// it. With it the proxy's heap and runtime stay near 52 MiB
// while it builds the annotate view of a 30,000-package repo (live data
// ~28 MB at the peak); see docs/BENCHMARKS.md for what it costs.
const DefaultFloor = 52 << 20

// minSlack is the least garbage the limit leaves room for.
const minSlack = 8 << 20

// For is the limit for a live heap of live bytes: the floor, or the live
// heap and room for half as much garbage (at least minSlack) when that is
// more.
func For(floor, live uint64) uint64 {
	return max(floor, live+max(live/2, minSlack))
}

// Governor re-sets the limit after every collection. Stop ends it.
type Governor struct {
	floor uint64
	prev  int64 // the runtime's limit before Start

	mu      sync.Mutex
	stopped bool
	limit   uint64 // the last limit set
	sample  []metrics.Sample
}

// Start starts a Governor with the given floor, or returns nil when
// GOMEMLIMIT is set in the environment (or floor is 0).
func Start(floor uint64) *Governor {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok || floor == 0 {
		return nil
	}
	g := &Governor{floor: floor, prev: debug.SetMemoryLimit(-1), sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	g.adjust()
	g.arm()
	return g
}

// arm has adjust run after the next collection: a finalizer runs once the
// collector has found its object unreachable, and re-arms.
func (g *Governor) arm() {
	sentinel := new([16]byte)
	runtime.SetFinalizer(sentinel, func(*[16]byte) {
		if g.adjust() {
			g.arm()
		}
	})
}

// adjust sets the limit for the live heap now; false once stopped.
func (g *Governor) adjust() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	metrics.Read(g.sample)
	var live uint64
	if g.sample[0].Value.Kind() == metrics.KindUint64 {
		live = g.sample[0].Value.Uint64()
	}
	limit := For(g.floor, live)
	if limit != g.limit && limit <= math.MaxInt64 {
		debug.SetMemoryLimit(int64(limit))
		g.limit = limit
	}
	return true
}

// Stop ends the adjustments and gives the runtime back the limit it had
// before Start.
func (g *Governor) Stop() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.stopped {
		g.stopped = true
		debug.SetMemoryLimit(g.prev)
	}
}
