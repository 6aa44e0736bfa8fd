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
	pkgs  *pkgTable // set once, before built
}

// lookup returns the index's entry for a path below the root.
func (x *pkgIndex) lookup(rel string) (PkgRef, bool) {
	return x.pkgs.lookup(rel)
}

func (x *pkgIndex) set(fn func() (*pkgTable, error)) error {
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
	return x.pkgs.count(), true
}

// PkgRef is what primary.xml says of a package file.
type PkgRef struct {
	Sum  metadata.Checksum
	Size int64
}

// Sink takes the packages of a generation's primary.xml from the pass
// that builds its package index, so a consumer of every package (the views'
// analysis) does not read primary.xml again. Package gets each package in
// document order with its resolved path (see ScanPackages); an error from
// it ends the sink's part, not the index: Done is then told that error.
// Done is called once, with nil only when every package was passed.
type Sink interface {
	Fields() metadata.ScanFields // the dependency data Package needs
	Package(rel string, inside bool, p *metadata.PackageDeps) error
	Done(err error)
}

// buildIndex reads the generation's primary.xml into its package index.
func (r *Repo) buildIndex(ctx context.Context, root string, g *Generation) error {
	return r.buildIndexWith(ctx, root, g, nil)
}

// buildIndexWith is buildIndex feeding sink (may be nil) in the same pass.
// When the index is already built, sink gets nothing and Done(errIndexBuilt).
func (r *Repo) buildIndexWith(ctx context.Context, root string, g *Generation, sink Sink) error {
	ran := false
	err := g.idx.set(func() (*pkgTable, error) {
		ran = true
		// Not the caller's context: one client hanging up must not leave
		// the index failed for everyone.
		ictx, cancel := context.WithTimeout(r.baseCtx, r.opt.RefreshTimeout)
		defer cancel()
		return r.readIndex(ictx, root, g, sink)
	})
	if !ran && sink != nil {
		sink.Done(errIndexBuilt)
	}
	return err
}

// errIndexBuilt tells a Sink that the index was built before its pass.
var errIndexBuilt = errors.New("package index already built")

// ScanPackages reads a generation's primary.xml once and calls fn with
// every package in document order (fn owns p), with its path below the
// root as the package index keys it: the href resolved against its
// xml:base, inside=false when that base points outside the repo (clients
// fetch such a package from its base, not through the proxy). When the
// generation's package index is not built yet, it is built in the same
// pass.
// fields says what fn needs of each package's dependency data.
func (r *Repo) ScanPackages(ctx context.Context, root string, g *Generation, fields metadata.ScanFields, fn func(rel string, inside bool, p *metadata.PackageDeps) error) error {
	s := &funcSink{fn: fn, fields: fields}
	err := r.buildIndexWith(ctx, root, g, s)
	if !s.done { // built before: a pass of its own
		return r.scanResolved(ctx, root, g, fields, fn)
	}
	if err != nil {
		return err
	}
	return s.err
}

type funcSink struct {
	fn     func(string, bool, *metadata.PackageDeps) error
	fields metadata.ScanFields
	done   bool
	err    error
}

func (s *funcSink) Fields() metadata.ScanFields { return s.fields }

func (s *funcSink) Package(rel string, inside bool, p *metadata.PackageDeps) error {
	return s.fn(rel, inside, p)
}

func (s *funcSink) Done(err error) {
	if err != errIndexBuilt {
		s.done, s.err = true, err
	}
}

// readIndex scans the generation's primary.xml into a package index,
// passing every package to sink too.
func (r *Repo) readIndex(ctx context.Context, root string, g *Generation, sink Sink) (*pkgTable, error) {
	var pkgs tableBuilder
	var sinkErr error
	var fields metadata.ScanFields
	if sink != nil {
		fields = sink.Fields()
	}
	err := r.scanResolved(ctx, root, g, fields, func(rel string, inside bool, p *metadata.PackageDeps) error {
		if inside {
			pkgs.add(rel, PkgRef{Sum: p.Checksum, Size: p.Size})
		}
		if sink != nil && sinkErr == nil {
			sinkErr = sink.Package(rel, inside, p)
		}
		return nil
	})
	if sink != nil {
		if err != nil {
			sink.Done(err)
		} else {
			sink.Done(sinkErr)
		}
	}
	if err != nil {
		return nil, err
	}
	return pkgs.table()
}

// scanResolved scans the generation's primary.xml (with the dependency
// data fields asks for) and calls fn with each package and its resolved
// path. A generation without primary.xml has no packages.
func (r *Repo) scanResolved(ctx context.Context, root string, g *Generation, fields metadata.ScanFields, fn func(rel string, inside bool, p *metadata.PackageDeps) error) error {
	zr, _, err := r.OpenContent(ctx, root, g, "primary")
	if errors.Is(err, cache.ErrNotFound) {
		if _, ok := g.md.Record("primary"); !ok {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("primary of %s/%s: %w", r.opt.Name, root, err)
	}
	defer zr.Close()
	var bases []string // computed on the first xml:base location
	each := func(p *metadata.PackageDeps) error {
		rel, inside := p.Href, true
		if p.LocationBase != "" {
			if bases == nil {
				bases = r.rootBases(root, g)
			}
			rel, inside, _ = metadata.ResolveLocation(p.LocationBase, p.Href, bases)
		}
		return fn(rel, inside, p)
	}
	if fields != 0 {
		err = r.opt.Limits.Decode.ScanPrimaryFields(zr, fields, each)
	} else {
		var d metadata.PackageDeps
		err = r.opt.Limits.Decode.ScanPrimary(zr, func(p metadata.Package) error {
			d.Package = p
			return each(&d)
		})
	}
	if err != nil {
		return fmt.Errorf("%w: primary of %s/%s: %v", upstream.ErrUnavailable, r.opt.Name, root, err)
	}
	return nil
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
			if ref, ok := g.idx.lookup(rel[len(c.root):]); ok {
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
