// Package evict keeps the cache store under storage.max_size. It owns the
// eviction rounds and nothing else: what must stay is asked of the owners
// of the state (Pinners), each of which lists the keys its persisted
// records and its work in progress still need. No time-based grace stands
// in for a pin.
//
// A round runs after fills commit (a cheap wake-up that only compares the
// store's running total with the bound) and every Interval. When the store
// holds more than max_size it lists every object and deletes the least
// recently used unpinned ones (cache.Info.Accessed, oldest first) until it
// holds at most LowWater of max_size. After a round that deleted something,
// and on every timer round (which also covers purges and replaced
// objects), the store's garbage collection runs so the space reaches the
// disk.
package evict

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
)

// Tuning.
const (
	Interval  = 30 * time.Second
	LowWater  = 0.9
	gcTimeout = time.Minute
)

// Pinner is an owner of state that needs store keys kept.
type Pinner interface {
	Pins(add func(key string))
}

// Result says what an eviction round did.
type Result struct {
	Objects    int           `json:"objects"`
	Bytes      int64         `json:"bytes"`
	Pinned     int           `json:"pinned"`
	StoreBytes int64         `json:"store_bytes"`
	Duration   time.Duration `json:"duration"`
	GC         time.Duration `json:"gc,omitempty"`
	DiskBefore int64         `json:"disk_before,omitempty"`
	DiskAfter  int64         `json:"disk_after,omitempty"`
}

// Evictor runs the rounds.
type Evictor struct {
	store   cache.Store
	max     int64
	pinners []Pinner
	log     *slog.Logger
	evicted func(n int, bytes int64) // metrics; may be nil

	kick chan struct{}
	done chan struct{}
	mu   sync.Mutex // one round at a time
}

// New returns an Evictor; Run starts it.
func New(store cache.Store, max int64, log *slog.Logger, evicted func(int, int64), pinners ...Pinner) *Evictor {
	return &Evictor{store: store, max: max, pinners: pinners, log: log, evicted: evicted,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// Soon wakes the evictor after a commit. It never blocks.
func (e *Evictor) Soon() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run runs rounds until ctx ends; Done is closed then.
func (e *Evictor) Run(ctx context.Context) {
	defer close(e.done)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		gc := false
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-tick.C:
			gc = true
		}
		if _, err := e.round(ctx, gc); err != nil && ctx.Err() == nil {
			e.log.Warn("cache eviction failed", "err", err)
		}
	}
}

// Done is closed when Run returned.
func (e *Evictor) Done() <-chan struct{} { return e.done }

// Evict runs one round now, then the store's GC.
func (e *Evictor) Evict(ctx context.Context) (Result, error) { return e.round(ctx, true) }

func (e *Evictor) round(ctx context.Context, gc bool) (Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var res Result
	total, known := e.storeBytes()
	if !known || total > e.max {
		var err error
		if res, err = e.evictLRU(ctx); err != nil {
			return res, err
		}
	}
	if res.Objects > 0 || gc {
		if err := e.collectGarbage(ctx, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (e *Evictor) storeBytes() (int64, bool) {
	sz, ok := e.store.(cache.Sizer)
	if !ok {
		return 0, false
	}
	_, b := sz.Size()
	return b, true
}

// Pinned returns the keys every owner needs kept now.
func (e *Evictor) Pinned() map[string]bool {
	pinned := map[string]bool{}
	for _, p := range e.pinners {
		p.Pins(func(k string) { pinned[k] = true })
	}
	return pinned
}

type candidate struct {
	key              string
	size             int64
	accessed, stored time.Time
}

func (e *Evictor) evictLRU(ctx context.Context) (Result, error) {
	start := time.Now()
	var res Result
	var cands []candidate
	var listed int64
	// Pins taken before listing; a key an owner pins later (a refresh
	// finding a file already present) is re-checked before its deletion.
	pinned := e.Pinned()
	err := e.store.List(ctx, "", func(in cache.Info) error {
		listed += in.Size
		if pinned[in.Key] {
			res.Pinned++
			return nil
		}
		if in.Leased {
			return nil // in use: deleting it would free nothing until its readers close
		}
		cands = append(cands, candidate{in.Key, in.Size, in.Accessed, in.Stored})
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("listing the cache: %w", err)
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if !a.accessed.Equal(b.accessed) {
			return a.accessed.Before(b.accessed)
		}
		if !a.stored.Equal(b.stored) {
			return a.stored.Before(b.stored)
		}
		return a.key < b.key
	})
	low := int64(float64(e.max) * LowWater)
	total := listed
	for _, c := range cands {
		if t, ok := e.storeBytes(); ok {
			total = t
		}
		if total <= low {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		in, err := e.store.Stat(ctx, c.key)
		if errors.Is(err, cache.ErrNotFound) {
			continue
		}
		if err != nil {
			return res, err
		}
		if in.Accessed.After(c.accessed) || !in.Stored.Equal(c.stored) {
			continue
		}
		// A last look at the pins: a refresh may have found this file
		// present and pinned it since the list was taken.
		if e.pinnedNow(c.key) {
			continue
		}
		if err := e.store.Delete(ctx, c.key); err != nil {
			return res, err
		}
		res.Objects++
		res.Bytes += c.size
		total -= c.size
	}
	res.StoreBytes = total
	if t, ok := e.storeBytes(); ok {
		res.StoreBytes = t
	}
	res.Duration = time.Since(start)
	if e.evicted != nil && res.Objects > 0 {
		e.evicted(res.Objects, res.Bytes)
	}
	e.log.Info("cache eviction", "objects", res.Objects, "bytes", res.Bytes, "pinned", res.Pinned,
		"store_bytes", res.StoreBytes, "max_bytes", e.max, "duration_ms", res.Duration.Milliseconds())
	if res.StoreBytes > e.max {
		e.log.Warn("cache stays over storage.max_size: what is left is pinned (metadata generations and views in use) or in use",
			"store_bytes", res.StoreBytes, "max_bytes", e.max, "pinned", res.Pinned)
	}
	return res, nil
}

// pinnedNow asks the owners about one key.
func (e *Evictor) pinnedNow(key string) bool {
	found := false
	for _, p := range e.pinners {
		p.Pins(func(k string) {
			if k == key {
				found = true
			}
		})
	}
	return found
}

func (e *Evictor) collectGarbage(ctx context.Context, res *Result) error {
	gcer, ok := e.store.(cache.GCer)
	if !ok {
		return nil
	}
	du, _ := e.store.(cache.DiskUser)
	if du != nil {
		res.DiskBefore, _ = du.DiskUsage()
	}
	gctx, cancel := context.WithTimeout(ctx, gcTimeout)
	defer cancel()
	start := time.Now()
	err := gcer.RunGC(gctx)
	res.GC = time.Since(start)
	if du != nil {
		res.DiskAfter, _ = du.DiskUsage()
	}
	if err != nil {
		return fmt.Errorf("cache GC: %w", err)
	}
	if res.Objects > 0 || res.DiskAfter < res.DiskBefore {
		e.log.Info("cache GC", "disk_before", res.DiskBefore, "disk_after", res.DiskAfter,
			"duration_ms", res.GC.Milliseconds())
	}
	return nil
}
