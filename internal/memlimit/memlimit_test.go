package memlimit

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	const MiB = 1 << 20
	for _, tc := range []struct {
		floor, live, want uint64
	}{
		{64 * MiB, 0, 64 * MiB},
		{64 * MiB, 20 * MiB, 64 * MiB},
		{64 * MiB, 42 * MiB, 64 * MiB},
		{64 * MiB, 48 * MiB, 72 * MiB},
		{64 * MiB, 500 * MiB, 750 * MiB},
		{8 * MiB, 10 * MiB, 18 * MiB}, // at least minSlack of garbage
		{0, 0, 8 * MiB},
	} {
		if got := For(tc.floor, tc.live); got != tc.want {
			t.Errorf("For(%d MiB, %d MiB) = %d MiB, want %d MiB", tc.floor/MiB, tc.live/MiB, got/MiB, tc.want/MiB)
		}
	}
}

// waitLimit polls the runtime's limit (the governor sets it from a
// finalizer, after the collection) until ok or a timeout.
func waitLimit(t *testing.T, what string, ok func(int64) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := debug.SetMemoryLimit(-1)
		if ok(l) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the runtime's limit is %d MiB", what, l>>20)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGovernorFollowsLiveHeap: the limit is the floor while the live heap
// is small, rises with the live heap when that outgrows the floor (room
// for half as much garbage), comes back down with it, and Stop restores
// the runtime's previous limit. Not parallel: the limit is the process's.
func TestGovernorFollowsLiveHeap(t *testing.T) {
	const floor = 64 << 20
	prev := debug.SetMemoryLimit(-1)
	g := Start(floor)
	if g == nil {
		t.Skip("GOMEMLIMIT is set in the environment")
	}
	waitLimit(t, "small live heap", func(l int64) bool { return l == floor })
	live := make([][]byte, 48)
	for i := range live {
		live[i] = make([]byte, 1<<20)
		live[i][0] = 1
	}
	waitLimit(t, "48 MiB live", func(l int64) bool { return l >= 72<<20 })
	runtime.KeepAlive(live)
	live = nil
	waitLimit(t, "live data dropped", func(l int64) bool { return l == floor })
	g.Stop()
	if l := debug.SetMemoryLimit(-1); l != prev {
		t.Errorf("after Stop the limit is %d, want the previous %d", l, prev)
	}
}

// TestGovernorBoundsHeap: with the collector told to let the heap grow to
// five times the live data (GOGC=400), churning garbage over 20 MiB of
// live data keeps the heap goal near a 64 MiB floor (within half of it:
// the limit is soft) while the governor runs; without it the goal passes
// 80 MiB.
func TestGovernorBoundsHeap(t *testing.T) {
	const floor = 64 << 20
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	live := make([][]byte, 20)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	churn := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
		var peak uint64
		var sink []byte
		for i := 0; i < 4000; i++ {
			sink = make([]byte, 64<<10)
			sink[0] = byte(i)
			if i%100 == 0 {
				metrics.Read(s)
				peak = max(peak, s[0].Value.Uint64())
			}
		}
		runtime.KeepAlive(sink)
		return peak
	}
	runtime.GC()
	without := churn()
	g := Start(floor)
	if g == nil {
		t.Skip("GOMEMLIMIT is set in the environment")
	}
	defer g.Stop()
	waitLimit(t, "started", func(l int64) bool { return l == floor })
	runtime.GC() // a cycle that starts under the limit
	with := churn()
	runtime.KeepAlive(live)
	t.Logf("peak heap goal: %d MiB without the governor, %d MiB with a %d MiB floor (limit now %d MiB)", without>>20, with>>20, floor>>20, debug.SetMemoryLimit(-1)>>20)
	if without <= 80<<20 {
		t.Errorf("without the governor the goal peaked at %d MiB: the test does not load the collector", without>>20)
	}
	// The limit is soft: when collecting to it would take more than half
	// the CPU (a loaded machine, the race detector), the runtime's GC CPU
	// limiter lets the heap pass it for a while. Alone the goal peaks at
	// the floor's 56 MiB; in a loaded CI run it reached 83 MiB.
	if with > floor*3/2 {
		t.Errorf("with a %d MiB floor the heap goal peaked at %d MiB (without: %d MiB)", floor>>20, with>>20, without>>20)
	}
}

// TestGovernorLeavesGOMEMLIMIT: an operator's GOMEMLIMIT is the runtime's
// own setting; Start leaves it alone.
func TestGovernorLeavesGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "1GiB")
	prev := debug.SetMemoryLimit(-1)
	if g := Start(DefaultFloor); g != nil {
		g.Stop()
		t.Fatal("Start ran with GOMEMLIMIT set")
	}
	if l := debug.SetMemoryLimit(-1); l != prev {
		t.Errorf("the limit changed from %d to %d", prev, l)
	}
}
