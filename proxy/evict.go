package proxy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
)

// Eviction keeps the store under storage.max_size.
//
// A round runs after fills commit (a cheap wake-up that only compares the
// store's running total with the bound) and every evictInterval. When the
// store holds more than max_size it lists every object and deletes the least
// recently used (cache.Info.Accessed, oldest first) until it holds at most
// evictLowWater of max_size, so that rounds do not follow every fill.
//
// Never evicted:
//   - gen/ records (a root's generations: without them the proxy forgets
//     which repomd.xml it serves);
//   - the repodata files of every root's current generation, so a served
//     repomd.xml never lists a file the proxy cannot serve with upstream
//     down;
//   - the repodata files of the previous generation while the current one
//     is younger than the repo's metadata_ttl (at least prevGenGrace):
//     clients that read the old repomd.xml just before the switch still
//     fetch its files;
//   - viewrec/ records and the rewritten files of every view in use
//     (current and retired), so a served view never lists a missing file;
//   - repodata and view files stored less than freshGrace ago: a refresh
//     fetches or builds a new generation's files before it switches to it.
//
// After a round that deleted something, and on every timer round (which
// also covers purges and replaced objects), the store's garbage collection
// runs (cache.GCer, bounded by gcTimeout) so the space reaches the disk.
const (
	evictInterval = 30 * time.Second
	evictLowWater = 0.9
	prevGenGrace  = 10 * time.Minute
	freshGrace    = 10 * time.Minute
	gcTimeout     = time.Minute
)

// evictor is the state of the eviction goroutine.
type evictor struct {
	max  int64
	kick chan struct{} // buffered(1): "something was committed"
	done chan struct{} // closed when the goroutine ends

	mu        sync.Mutex    // one round at a time; guards what follows
	fresh     time.Duration // freshGrace (tests shorten it)
	prevGrace time.Duration // prevGenGrace (tests shorten it)
}

// EvictResult says what an eviction round did.
type EvictResult struct {
	Objects    int           `json:"objects"`      // objects evicted
	Bytes      int64         `json:"bytes"`        // their size
	Pinned     int           `json:"pinned"`       // objects that could not be evicted
	StoreBytes int64         `json:"store_bytes"`  // store total after the round
	Duration   time.Duration `json:"duration"`     // eviction, not counting GC
	GC         time.Duration `json:"gc,omitempty"` // time in the store's GC
	DiskBefore int64         `json:"disk_before,omitempty"`
	DiskAfter  int64         `json:"disk_after,omitempty"`
}

// startEvictor starts the eviction goroutine; it ends with s.baseCtx, and
// stopEvictor waits for it.
func (s *Server) startEvictor() {
	s.evict = &evictor{
		max:  int64(s.cfg.Storage.MaxSize),
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),

		fresh:     freshGrace,
		prevGrace: prevGenGrace,
	}
	go s.runEvictor()
}

// stopEvictor waits for the eviction goroutine, which s.stop ends.
func (s *Server) stopEvictor() {
	if s.evict != nil {
		<-s.evict.done
	}
}

// evictSoon wakes the evictor after a commit. It never blocks.
func (s *Server) evictSoon() {
	if s.evict == nil {
		return
	}
	select {
	case s.evict.kick <- struct{}{}:
	default:
	}
}

func (s *Server) runEvictor() {
	defer close(s.evict.done)
	tick := time.NewTicker(evictInterval)
	defer tick.Stop()
	for {
		gc := false
		select {
		case <-s.baseCtx.Done():
			return
		case <-s.evict.kick:
		case <-tick.C:
			gc = true
		}
		if _, err := s.evictRound(s.baseCtx, gc); err != nil && s.baseCtx.Err() == nil {
			s.log.Warn("cache eviction failed", "err", err)
		}
	}
}

// Evict runs one eviction round now, then the store's GC, and returns when
// both are done.
func (s *Server) Evict(ctx context.Context) (EvictResult, error) {
	return s.evictRound(ctx, true)
}

// evictRound evicts if the store is over its bound, then runs the store's
// GC if anything was evicted or gc is set.
func (s *Server) evictRound(ctx context.Context, gc bool) (EvictResult, error) {
	if s.evict == nil {
		return EvictResult{}, errors.New("eviction not running")
	}
	s.evict.mu.Lock()
	defer s.evict.mu.Unlock()
	var res EvictResult
	total, known := s.storeBytes()
	if !known || total > s.evict.max {
		var err error
		if res, err = s.evictLRU(ctx); err != nil {
			return res, err
		}
	}
	if res.Objects > 0 || gc {
		if err := s.collectGarbage(ctx, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// storeBytes is the store's running total, if it keeps one.
func (s *Server) storeBytes() (int64, bool) {
	sz, ok := s.store.(cache.Sizer)
	if !ok {
		return 0, false
	}
	_, b := sz.Size()
	return b, true
}

type evictCandidate struct {
	key      string
	size     int64
	accessed time.Time
	stored   time.Time
}

// evictLRU deletes the least recently used unpinned objects until the store
// holds at most evictLowWater of max_size.
func (s *Server) evictLRU(ctx context.Context) (EvictResult, error) {
	start := time.Now()
	var res EvictResult
	pinned := s.pinnedKeys(start)
	var cands []evictCandidate
	var listed int64
	err := s.store.List(ctx, "", func(in cache.Info) error {
		listed += in.Size
		if pinned[in.Key] || strings.HasPrefix(in.Key, nsGen) || strings.HasPrefix(in.Key, nsViewRec) ||
			(strings.HasPrefix(in.Key, nsMD) || strings.HasPrefix(in.Key, nsView)) && start.Sub(in.Stored) < s.evict.fresh {
			res.Pinned++
			return nil
		}
		cands = append(cands, evictCandidate{key: in.Key, size: in.Size, accessed: in.Accessed, stored: in.Stored})
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
	low := int64(float64(s.evict.max) * evictLowWater)
	total := listed
	for _, c := range cands {
		if t, ok := s.storeBytes(); ok {
			total = t // counts what fills committed meanwhile
		}
		if total <= low {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		// Read since it was listed, or replaced: it is not the one to go.
		in, err := s.store.Stat(ctx, c.key)
		if errors.Is(err, cache.ErrNotFound) {
			continue
		}
		if err != nil {
			return res, err
		}
		if in.Accessed.After(c.accessed) || !in.Stored.Equal(c.stored) {
			continue
		}
		if err := s.store.Delete(ctx, c.key); err != nil {
			return res, err
		}
		res.Objects++
		res.Bytes += c.size
		total -= c.size
	}
	res.StoreBytes = total
	if t, ok := s.storeBytes(); ok {
		res.StoreBytes = t
	}
	res.Duration = time.Since(start)
	s.ObserveEviction(res.Objects, res.Bytes)
	s.log.Info("cache eviction", "objects", res.Objects, "bytes", res.Bytes, "pinned", res.Pinned,
		"store_bytes", res.StoreBytes, "max_bytes", s.evict.max, "duration_ms", res.Duration.Milliseconds())
	if res.StoreBytes > s.evict.max {
		s.log.Warn("cache stays over storage.max_size: what is left is pinned (current metadata generations) or in use",
			"store_bytes", res.StoreBytes, "max_bytes", s.evict.max, "pinned", res.Pinned)
	}
	return res, nil
}

// pinnedKeys returns the store keys eviction must not touch besides gen/
// records: the repodata files of every root's current generation, and of
// its previous one while the current one is young. s.evict.mu is held.
func (s *Server) pinnedKeys(now time.Time) map[string]bool {
	pinned := map[string]bool{}
	for _, rp := range s.repos {
		rp.mu.Lock()
		roots := make(map[string]*rootState, len(rp.roots))
		for root, st := range rp.roots {
			roots[root] = st
		}
		rp.mu.Unlock()
		grace := max(rp.ttl, s.evict.prevGrace)
		for root, st := range roots {
			cur, prev := st.get()
			if cur == nil {
				continue
			}
			gens := []*generation{cur}
			if prev != nil && now.Sub(cur.Created) < grace {
				gens = append(gens, prev)
			}
			for _, g := range gens {
				for href, rec := range g.files {
					pinned[mdKey(rp.name, root+href, rec.Checksum.String())] = true
				}
			}
		}
	}
	// The rewritten files of every view in use, current and retired.
	s.views.Range(func(_, v any) bool {
		for _, vg := range v.(*viewSlot).all() {
			for _, f := range vg.Files {
				pinned[f.Key] = true
			}
		}
		return true
	})
	return pinned
}

// collectGarbage runs the store's GC, if it has one, and records its time
// and the disk space before and after.
func (s *Server) collectGarbage(ctx context.Context, res *EvictResult) error {
	gcer, ok := s.store.(cache.GCer)
	if !ok {
		return nil
	}
	du, _ := s.store.(cache.DiskUser)
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
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// Objects stayed open the whole time: try again next round.
		s.log.Warn("cache GC found no moment without open objects; retrying next round",
			"waited_ms", res.GC.Milliseconds())
		return nil
	}
	if err != nil {
		return fmt.Errorf("cache GC: %w", err)
	}
	if res.Objects > 0 || res.DiskAfter < res.DiskBefore {
		s.log.Info("cache GC", "disk_before", res.DiskBefore, "disk_after", res.DiskAfter,
			"duration_ms", res.GC.Milliseconds())
	}
	return nil
}
