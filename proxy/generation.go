package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// generation is one verified repomd.xml of a repo root and the files it
// lists. It is immutable once built, except for its fetched time, which
// revalidation replaces by swapping in a copy.
type generation struct {
	Repomd       []byte    `json:"repomd"`
	Signature    []byte    `json:"signature,omitempty"` // upstream repomd.xml.asc
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Created      time.Time `json:"created"`
	Fetched      time.Time `json:"fetched"` // last time upstream confirmed it

	md    *metadata.Repomd
	files map[string]metadata.Record // href → record
	idx   *pkgIndex
}

// pkgIndex maps package hrefs to what primary.xml says of them. It is built
// once, from the cached primary file, on first use.
type pkgIndex struct {
	once  sync.Once
	built atomic.Bool // once has run: pkgs and err are set
	pkgs  map[string]pkgRef
	err   error
}

// set builds the index with fn unless it is already built.
func (x *pkgIndex) set(fn func() (map[string]pkgRef, error)) error {
	x.once.Do(func() {
		x.pkgs, x.err = fn()
		x.built.Store(true)
	})
	return x.err
}

type pkgRef struct {
	sum  metadata.Checksum
	size int64
}

func (g *generation) init() error {
	md, err := metadata.ParseRepomd(g.Repomd)
	if err != nil {
		return err
	}
	g.md = md
	g.files = make(map[string]metadata.Record, len(md.Records))
	for _, r := range md.Records {
		g.files[r.Href] = r
	}
	if g.idx == nil {
		g.idx = &pkgIndex{}
	}
	return nil
}

// rootState holds a repo root's current and previous generation. The
// previous one stays servable so clients holding its repomd.xml can finish.
type rootState struct {
	mu   sync.RWMutex
	cur  *generation
	prev *generation

	health refreshHealth // last revalidation attempt and outcome (admin API)
}

func (r *rootState) get() (cur, prev *generation) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cur, r.prev
}

type genRecord struct {
	Cur  *generation `json:"cur"`
	Prev *generation `json:"prev,omitempty"`
}

// root returns the state of a repo root, creating an empty one.
func (rp *repoState) root(root string) *rootState {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	st, ok := rp.roots[root]
	if !ok {
		st = &rootState{}
		rp.roots[root] = st
	}
	return st
}

// forgetEmpty drops a root's state if it never got a generation.
func (rp *repoState) forgetEmpty(root string, st *rootState) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if cur, _ := st.get(); cur == nil && rp.roots[root] == st {
		delete(rp.roots, root)
	}
}

// knownRoot returns the state of a root that has a generation, or nil.
func (rp *repoState) knownRoot(root string) *rootState {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.roots[root]
}

// loadGenerations restores the persisted generations of every repo.
func (s *Server) loadGenerations(ctx context.Context) error {
	for _, rp := range s.repos {
		prefix := genKey(rp.name, "")
		var keys []string
		if err := s.store.List(ctx, prefix, func(i cache.Info) error {
			keys = append(keys, i.Key)
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			rec, err := s.readGenRecord(ctx, k)
			if err != nil {
				s.log.Warn("ignoring unreadable metadata generation", "key", k, "err", err)
				continue
			}
			st := rp.root(strings.TrimPrefix(k, prefix))
			st.cur, st.prev = rec.Cur, rec.Prev
		}
	}
	return nil
}

func (s *Server) readGenRecord(ctx context.Context, key string) (*genRecord, error) {
	obj, err := s.store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	var rec genRecord
	if err := json.NewDecoder(obj).Decode(&rec); err != nil {
		return nil, err
	}
	if rec.Cur == nil {
		return nil, errors.New("no current generation")
	}
	for _, g := range []*generation{rec.Cur, rec.Prev} {
		if g != nil {
			if err := g.init(); err != nil {
				return nil, err
			}
		}
	}
	return &rec, nil
}

func (s *Server) writeGenRecord(ctx context.Context, key string, rec genRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.putSmall(ctx, key, data, "application/json")
}

// putSmall stores a small object in one piece.
func (s *Server) putSmall(ctx context.Context, key string, data []byte, ctype string) error {
	w, err := s.store.Create(ctx, key, cache.Meta{ContentType: ctype, Fetched: time.Now()})
	if err != nil {
		return err
	}
	defer w.Cancel()
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Commit(ctx)
}

// Result labels for the access log and metrics.
const (
	resultHit   = "hit"
	resultMiss  = "miss"
	resultStale = "stale"
	resultPass  = "pass"
)

// generationFor returns the generation to serve for a root. A generation
// older than the repo's TTL (or any, when force is set) is revalidated
// first; when that fails the last good generation is served and the fault
// logged. Concurrent callers share one refresh.
func (s *Server) generationFor(ctx context.Context, rp *repoState, root string, maxAge time.Duration) (*generation, string, error) {
	g, result, err := s.revalidate(ctx, rp, root, maxAge)
	if err != nil && g != nil {
		s.log.Warn("metadata refresh failed; serving the last good generation",
			"repo", rp.name, "root", root, "err", err)
		return g, resultStale, nil
	}
	return g, result, err
}

// revalidate is generationFor that also reports a failed refresh when it
// falls back to the last good generation: then g is that generation,
// result is resultStale and err says why the refresh failed.
func (s *Server) revalidate(ctx context.Context, rp *repoState, root string, maxAge time.Duration) (g *generation, result string, err error) {
	st := rp.root(root)
	cur, _ := st.get()
	if cur != nil && time.Since(cur.Fetched) < maxAge {
		return cur, resultHit, nil
	}
	ch := s.refreshes.DoChan(rp.name+"\x00"+root, func() (any, error) {
		res, err := s.refresh(rp, root, st)
		st.health.record(time.Now(), err)
		if err != nil {
			// Any client can name a root: one that never had metadata is
			// not remembered, so made-up paths cannot grow the state.
			rp.forgetEmpty(root, st)
		}
		return res, err
	})
	var res refreshResult
	select {
	case r := <-ch:
		if r.Err != nil {
			if cur != nil {
				return cur, resultStale, r.Err
			}
			return nil, resultMiss, r.Err
		}
		res = r.Val.(refreshResult)
	case <-ctx.Done():
		return nil, resultMiss, ctx.Err()
	}
	if res.changed {
		return res.gen, resultMiss, nil
	}
	return res.gen, resultHit, nil
}

type refreshResult struct {
	gen     *generation
	changed bool
}

// refresh revalidates a root's repomd.xml. A new one becomes current only
// after every file it lists is in the cache, verified against its checksum,
// and its package index is built.
func (s *Server) refresh(rp *repoState, root string, st *rootState) (refreshResult, error) {
	ctx, cancel := context.WithTimeout(s.baseCtx, s.refreshTimeout)
	defer cancel()
	cur, prev := st.get()
	hdr := http.Header{}
	if cur != nil {
		if cur.ETag != "" {
			hdr.Set("If-None-Match", cur.ETag)
		}
		if cur.LastModified != "" {
			hdr.Set("If-Modified-Since", cur.LastModified)
		}
	}
	resp, err := rp.up.get(ctx, root+"repodata/repomd.xml", hdr)
	if err != nil {
		return refreshResult{}, err
	}
	defer resp.Body.Close()
	var body []byte
	switch {
	case resp.StatusCode == http.StatusNotModified && cur != nil:
	case resp.StatusCode == http.StatusOK:
		if body, err = metadata.ReadLimited(resp.Body, s.limits.repomd); err != nil {
			return refreshResult{}, fmt.Errorf("%w: %srepodata/repomd.xml: %v", ErrUpstream, root, err)
		}
	default:
		return refreshResult{}, statusError(resp)
	}
	now := time.Now()
	if body == nil || (cur != nil && bytes.Equal(body, cur.Repomd)) {
		// Unchanged: only the confirmation time moves.
		ng := *cur
		ng.Fetched = now
		if v := resp.Header.Get("ETag"); v != "" {
			ng.ETag = v
		}
		if err := s.commitGeneration(ctx, rp, root, st, &ng, prev); err != nil {
			return refreshResult{}, err
		}
		return refreshResult{gen: &ng}, nil
	}
	g := &generation{
		Repomd: body, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"),
		Created: now, Fetched: now,
	}
	if err := g.init(); err != nil {
		return refreshResult{}, fmt.Errorf("%w: %s: %v", ErrUpstream, rp.name+"/"+root+"repodata/repomd.xml", err)
	}
	if err := s.fetchGenerationFiles(ctx, rp, root, g); err != nil {
		return refreshResult{}, err
	}
	if g.Signature, err = s.fetchSignature(ctx, rp, root); err != nil {
		return refreshResult{}, err
	}
	// Views of the new generation are ready before anyone sees it. Their
	// analysis reads primary.xml and fills the package index on the way.
	s.prepareViews(ctx, rp, root, g)
	if err := s.buildIndex(rp, root, g); err != nil {
		return refreshResult{}, err
	}
	if err := s.commitGeneration(ctx, rp, root, st, g, cur); err != nil {
		return refreshResult{}, err
	}
	s.log.Info("metadata generation switched", "repo", rp.name, "root", root,
		"revision", g.md.Revision, "files", len(g.md.Records))
	return refreshResult{gen: g, changed: true}, nil
}

// commitGeneration persists cur/prev, then makes them visible.
func (s *Server) commitGeneration(ctx context.Context, rp *repoState, root string, st *rootState, cur, prev *generation) error {
	if err := s.writeGenRecord(ctx, genKey(rp.name, root), genRecord{Cur: cur, Prev: prev}); err != nil {
		return fmt.Errorf("saving metadata generation: %w", err)
	}
	st.mu.Lock()
	st.cur, st.prev = cur, prev
	st.mu.Unlock()
	return nil
}

// fetchGenerationFiles brings every file a repomd lists into the cache,
// verified. Files already cached under their checksum are not fetched.
func (s *Server) fetchGenerationFiles(ctx context.Context, rp *repoState, root string, g *generation) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(4)
	for _, rec := range g.md.Records {
		eg.Go(func() error {
			rel := root + rec.Href
			return s.ensureCached(ctx, rp, mdKey(rp.name, rel, rec.Checksum.String()), rel,
				expect{size: rec.Size, sum: rec.Checksum, maxSize: s.limits.metadata})
		})
	}
	return eg.Wait()
}

// ensureCached makes sure key holds the verified object, joining or
// starting a fill.
func (s *Server) ensureCached(ctx context.Context, rp *repoState, key, rel string, exp expect) error {
	for range 3 {
		f := s.startFill(rp, key, rel, exp, nil, false)
		if f == nil {
			return nil
		}
		err := f.await(ctx)
		f.release()
		if err == nil {
			return nil
		}
		if !errors.Is(err, errRetryStore) {
			return err
		}
	}
	return fmt.Errorf("%w: %s: could not settle", ErrUpstream, rel)
}

// fetchSignature gets upstream's repomd.xml.asc; none (404) is fine.
func (s *Server) fetchSignature(ctx context.Context, rp *repoState, root string) ([]byte, error) {
	resp, err := rp.up.get(ctx, root+"repodata/repomd.xml.asc", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return metadata.ReadLimited(resp.Body, 1<<20)
	case http.StatusNotFound, http.StatusForbidden, http.StatusGone:
		return nil, nil
	}
	return nil, statusError(resp)
}

// buildIndex reads the generation's primary.xml from the cache into its
// package index.
func (s *Server) buildIndex(rp *repoState, root string, g *generation) error {
	return g.idx.set(func() (map[string]pkgRef, error) {
		// Not the caller's context: one client hanging up must not leave
		// the index failed for everyone.
		ictx, cancel := context.WithTimeout(s.baseCtx, s.refreshTimeout)
		defer cancel()
		return s.readIndex(ictx, rp, root, g)
	})
}

func (s *Server) readIndex(ctx context.Context, rp *repoState, root string, g *generation) (map[string]pkgRef, error) {
	zr, _, err := s.openContent(ctx, rp, root, g, "primary")
	if errors.Is(err, cache.ErrNotFound) {
		return map[string]pkgRef{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("primary of %s/%s: %w", rp.name, root, err)
	}
	defer zr.Close()
	pkgs := map[string]pkgRef{}
	err = metadata.ScanPrimary(zr, func(p metadata.Package) error {
		pkgs[p.Href] = pkgRef{sum: p.Checksum, size: p.Size}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: primary of %s/%s: %v", ErrUpstream, rp.name, root, err)
	}
	return pkgs, nil
}

// lookupPackage finds the primary entry of a package path: it tries each
// known repo root above the path, current generation first.
func (s *Server) lookupPackage(ctx context.Context, rp *repoState, rel string) (pkgRef, bool) {
	for i := len(rel); i >= 0; i-- {
		if i != 0 && rel[i-1] != '/' {
			continue
		}
		st := rp.knownRoot(rel[:i])
		if st == nil {
			continue
		}
		cur, prev := st.get()
		for _, g := range []*generation{cur, prev} {
			if g == nil {
				continue
			}
			if err := s.buildIndex(rp, rel[:i], g); err != nil {
				s.log.Warn("package index unavailable", "repo", rp.name, "root", rel[:i], "err", err)
				continue
			}
			if ref, ok := g.idx.pkgs[rel[i:]]; ok {
				return ref, true
			}
		}
	}
	return pkgRef{}, false
}
