package proxy

import (
	"context"
	"sync"
	"time"
)

// trafficWindow is how far back the dashboard's traffic chart reaches.
const (
	trafficWindow  = 6 * time.Hour
	trafficMinutes = int(trafficWindow / time.Minute)
)

// trafficCounts are cumulative access-log counters, or their growth over
// one sample.
type trafficCounts struct {
	Hits, Misses     int64
	Served, Upstream int64 // bytes
}

func (a trafficCounts) sub(b trafficCounts) trafficCounts {
	return trafficCounts{Hits: a.Hits - b.Hits, Misses: a.Misses - b.Misses,
		Served: a.Served - b.Served, Upstream: a.Upstream - b.Upstream}
}

// trafficSample is the growth of the counters over the minute that ended at
// End (or, for the newest sample, up to End).
type trafficSample struct {
	End time.Time
	trafficCounts
}

// traffic owns a ring of per-minute samples of the access-log counters: it
// reads the counters once a minute and keeps the difference, so the
// request path pays nothing for it. It holds the last trafficWindow.
type traffic struct {
	read func() trafficCounts

	mu     sync.Mutex
	last   trafficCounts // the counters at lastAt
	lastAt time.Time
	ring   [trafficMinutes]trafficSample
	next   int // where the next sample goes
	n      int // samples held
}

func newTraffic(read func() trafficCounts, now time.Time) *traffic {
	return &traffic{read: read, last: read(), lastAt: now}
}

// run samples at every minute until ctx ends.
func (t *traffic) run(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			t.sample(now)
		}
	}
}

// sample records the counters' growth since the previous sample as the
// sample ending at now.
func (t *traffic) sample(now time.Time) {
	cur := t.read()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ring[t.next] = trafficSample{End: now, trafficCounts: cur.sub(t.last)}
	t.next = (t.next + 1) % trafficMinutes
	if t.n < trafficMinutes {
		t.n++
	}
	t.last, t.lastAt = cur, now
}

// samples returns the samples of the window ending at now, oldest first,
// followed by the minute in progress (the growth since the last sample).
func (t *traffic) samples(now time.Time) []trafficSample {
	cur := t.read()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]trafficSample, 0, t.n+1)
	from := now.Add(-trafficWindow)
	for i := range t.n {
		s := t.ring[(t.next-t.n+i+trafficMinutes)%trafficMinutes]
		if s.End.After(from) {
			out = append(out, s)
		}
	}
	return append(out, trafficSample{End: now, trafficCounts: cur.sub(t.last)})
}
