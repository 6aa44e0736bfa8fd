package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/upstream"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// Generation is one verified repomd.xml of a repo root and the files it
// lists. It is immutable once built, except that revalidation replaces its
// fetched time by swapping in a copy.
type Generation struct {
	Repomd       []byte    `json:"repomd"`
	Signature    []byte    `json:"signature,omitempty"` // upstream repomd.xml.asc
	Key          []byte    `json:"key,omitempty"`       // upstream repomd.xml.key
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Created      time.Time `json:"created"`
	Fetched      time.Time `json:"fetched"` // last time upstream confirmed it
	Mirror       string    `json:"mirror,omitempty"`

	md    *metadata.Repomd
	files map[string]metadata.Record // href → record
	idx   *pkgIndex
	sum   string // hex sha256 of Repomd
}

// Sum is the hex sha256 of the generation's repomd.xml.
func (g *Generation) Sum() string { return g.sum }

func (g *Generation) init() error {
	md, err := metadata.ParseRepomd(g.Repomd)
	if err != nil {
		return err
	}
	g.md = md
	h := sha256.Sum256(g.Repomd)
	g.sum = hex.EncodeToString(h[:])
	g.files = make(map[string]metadata.Record, len(md.Records))
	for _, r := range md.Records {
		g.files[r.Href] = r
	}
	if g.idx == nil {
		g.idx = &pkgIndex{}
	}
	return nil
}

// MD is the parsed repomd.xml.
func (g *Generation) MD() *metadata.Repomd { return g.md }

// File returns the record listing href (relative to the root).
func (g *Generation) File(href string) (metadata.Record, bool) {
	rec, ok := g.files[href]
	return rec, ok
}

// pkgIndex maps package hrefs to what primary.xml says of them. It is built
// once per generation.
// A failed build (primary.xml evicted while upstream is down) is tried
// again on the next use.
type pkgIndex struct {
	mu    sync.Mutex // one build at a time
	built atomic.Bool
	pkgs  map[string]PkgRef // set once, before built
}

func (x *pkgIndex) set(fn func() (map[string]PkgRef, error)) error {
	if x.built.Load() {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.built.Load() {
		return nil
	}
	pkgs, err := fn()
	if err != nil {
		return err
	}
	x.pkgs = pkgs
	x.built.Store(true)
	return nil
}

func (x *pkgIndex) count() (int, bool) {
	if !x.built.Load() {
		return 0, false
	}
	return len(x.pkgs), true
}

// PkgRef is what primary.xml says of a package file.
type PkgRef struct {
	Sum  metadata.Checksum
	Size int64
}

// SetIndex gives a generation its package index when a scan that also did
// other work (the views' analysis) built it; a no-op once built.
func (g *Generation) SetIndex(pkgs map[string]PkgRef) {
	g.idx.set(func() (map[string]PkgRef, error) { return pkgs, nil })
}

// buildIndex reads the generation's primary.xml into its package index.
func (r *Repo) buildIndex(ctx context.Context, root string, g *Generation) error {
	return g.idx.set(func() (map[string]PkgRef, error) {
		// Not the caller's context: one client hanging up must not leave
		// the index failed for everyone.
		ictx, cancel := context.WithTimeout(r.baseCtx, r.opt.RefreshTimeout)
		defer cancel()
		return r.readIndex(ictx, root, g)
	})
}

func (r *Repo) readIndex(ctx context.Context, root string, g *Generation) (map[string]PkgRef, error) {
	zr, _, err := r.OpenContent(ctx, root, g, "primary")
	if errors.Is(err, cache.ErrNotFound) {
		if _, ok := g.md.Record("primary"); !ok {
			return map[string]PkgRef{}, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("primary of %s/%s: %w", r.opt.Name, root, err)
	}
	defer zr.Close()
	pkgs := map[string]PkgRef{}
	var bases []string // computed on the first xml:base location
	err = r.opt.Limits.Decode.ScanPrimary(zr, func(p metadata.Package) error {
		rel := p.Href
		if p.LocationBase != "" {
			if bases == nil {
				bases = r.rootBases(root, g)
			}
			var inside bool
			if rel, inside, _ = metadata.ResolveLocation(p.LocationBase, p.Href, bases); !inside {
				return nil // clients fetch it from its xml:base, not through the proxy
			}
		}
		pkgs[rel] = PkgRef{Sum: p.Checksum, Size: p.Size}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: primary of %s/%s: %v", upstream.ErrUnavailable, r.opt.Name, root, err)
	}
	return pkgs, nil
}

// rootBases lists the upstream URLs of a repo root: the configured bases
// with the root appended, the list mirrors of the root, and the mirror the
// generation came from. A package location resolving below one of them is
// inside the repo.
func (r *Repo) rootBases(root string, g *Generation) []string {
	out := []string{}
	// g.Mirror is a configured base (the root goes below it) or a list
	// mirror's repo URL (the root itself); Status tells which.
	if g.Mirror != "" {
		out = append(out, strings.TrimSuffix(g.Mirror, "/")+"/"+root)
	}
	st, ok := r.opt.Up.(interface {
		Status() []upstream.MirrorStatus
	})
	if !ok {
		return out
	}
	var lists []string
	for _, m := range st.Status() {
		switch {
		case m.Source == "url":
			out = append(out, strings.TrimSuffix(m.Base, "/")+"/"+root)
		case m.Root == root:
			lists = append(lists, m.Base)
		}
	}
	return append(out, lists...)
}

// LookupPackage finds the primary entry of a package path: it tries each
// known root above the path, current generation first.
func (r *Repo) LookupPackage(ctx context.Context, rel string) (PkgRef, bool) {
	type cand struct {
		root string
		st   *rootState
	}
	var cands []cand
	r.mu.Lock()
	for i := len(rel); i >= 0; i-- {
		if i != 0 && rel[i-1] != '/' {
			continue
		}
		if st, ok := r.roots[rel[:i]]; ok {
			cands = append(cands, cand{rel[:i], st})
		}
	}
	r.mu.Unlock()
	for _, c := range cands {
		c.st.mu.RLock()
		gens := []*Generation{c.st.cur, c.st.prev}
		c.st.mu.RUnlock()
		for _, g := range gens {
			if g == nil {
				continue
			}
			if err := r.buildIndex(ctx, c.root, g); err != nil {
				r.opt.Log.Warn("package index unavailable", "repo", r.opt.Name, "root", c.root, "err", err)
				continue
			}
			if ref, ok := g.idx.pkgs[rel[len(c.root):]]; ok {
				return ref, true
			}
		}
	}
	return PkgRef{}, false
}

// WarmIndexes builds, in the background, the package indexes of the
// generations restored at start, so the first package request after a
// restart does not wait for a primary.xml scan.
func (r *Repo) WarmIndexes() {
	for _, rs := range r.Status() {
		cur, _ := r.Generations(rs.Root)
		if cur == nil {
			continue
		}
		r.bg.Go(func() {
			if err := r.buildIndex(r.baseCtx, rs.Root, cur); err != nil && r.baseCtx.Err() == nil {
				r.opt.Log.Warn("package index unavailable", "repo", r.opt.Name, "root", rs.Root, "err", err)
			}
		})
	}
}
