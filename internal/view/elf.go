package view

// The ELF symbol layer in the views. An analysis (analysis.go) takes from
// the layer what is already known for its generation: the stored result of
// every package pair abi.Pairs picks, the kABI stablelist of the
// reference's kernel-abi-stablelists. What is not known yet is left to a
// background pass (one per repo root at a time, abi.Analyzer's concurrency
// per repo), which fetches the RPMs through the repos' cache and filler,
// compares them, and stores the results in the cache store (keys.ABI).
// While a pass runs the analysis and the views built from it carry a
// "partial" input; when it ends the input changes to "done" and the views
// are rebuilt (a new view generation, signed as usual). Nothing here is on
// a client's path: the first view of a root is built from what is known
// and never waits for an RPM.
//
// Pins: the stored pair results of every root's current analysis are
// pinned (Views.Pins), so a rebuild from the same inputs (a repair) gets
// the same findings; the per-package interfaces ("abipkg/...") are not
// pinned: they only save re-reading an RPM.

import (
	"context"
	"errors"
	"io"
	"maps"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/abi"
	"github.com/dnfproxy/dnfproxy/internal/keys"
	"github.com/dnfproxy/dnfproxy/internal/repo"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// elfRetry is how long a pair whose comparison failed (an RPM upstream
// does not serve, a damaged package) counts as settled: analyses within it
// do not start a pass for it again.
const elfRetry = 10 * time.Minute

// stablelistPackage is the reference package that ships RHEL's kABI
// stablelists.
const stablelistPackage = "kernel-abi-stablelists"

// storeKV is abi.KV over the cache store, under keys.ABI.
type storeKV struct{ store cache.Store }

func (kv storeKV) Get(key []byte) ([]byte, bool, error) {
	obj, err := kv.store.Get(context.Background(), keys.ABIKey(string(key)))
	if errors.Is(err, cache.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, 64<<20))
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

func (kv storeKV) Put(key, value []byte) error {
	return repo.PutSmall(context.Background(), kv.store, keys.ABIKey(string(key)), value, "application/json")
}

// elfLayer is the views' state of the ELF layer.
type elfLayer struct {
	analyzers map[string]*abi.Analyzer // by repo; only repos with the layer on
	deep      *abi.Abipkgdiff          // nil when abipkgdiff is not on PATH
	// cpu bounds the comparisons running at once over all repos to one
	// less than the processors (at least one), so a pass always leaves a
	// processor to the clients.
	cpu chan struct{}

	mu    sync.Mutex
	roots map[string]*elfRoot // anKey(repo, root)
	// debug caches the debuginfo packages of a debuginfo repo's root
	// (anKey(debug repo, root)) for the generation it was read from.
	debug map[string]*debugList
	// debugFetch: debuginfo roots being fetched in the background, and
	// when a fetch last failed.
	debugFetch  map[string]bool
	debugFailed map[string]time.Time
}

// debugList is the debuginfo packages one generation of a debuginfo repo
// lists.
type debugList struct {
	sum  string
	pkgs []metadata.Package
}

// elfRoot is one repo root's pass and what the layer knows of it.
type elfRoot struct {
	base, ref string // the generations (repomd sums) of the last plan
	pending   bool   // a pass for base, ref runs
	cancel    context.CancelFunc
	failed    map[string]time.Time // pair result key → last failure
	stable    *abi.Stablelist
	stableSum metadata.Checksum // of the stablelists package read
	pins      []string          // store keys of the current analysis' results
}

// elfOn says whether a repo compares ELF symbols with its reference.
func elfOn(e Entry) bool { return e.Compat.ELF.Enabled && e.Compat.Reference != "" }

// deepOn says whether a repo also runs abipkgdiff.
func (v *Views) deepOn(e Entry) bool { return e.Compat.ABIPkgDiff.Enabled && v.elf.deep != nil }

func newELFLayer(opt Options) *elfLayer {
	l := &elfLayer{analyzers: map[string]*abi.Analyzer{}, roots: map[string]*elfRoot{},
		cpu:   make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1)),
		debug: map[string]*debugList{}, debugFetch: map[string]bool{}, debugFailed: map[string]time.Time{}}
	kv := storeKV{opt.Store}
	deep := false
	for name, e := range opt.Repos {
		if !elfOn(e) {
			continue
		}
		l.analyzers[name] = abi.NewAnalyzer(abi.Options{Concurrency: e.Compat.ELF.Concurrency, Results: kv, Logger: opt.Log})
		deep = deep || e.Compat.ABIPkgDiff.Enabled
	}
	if deep {
		if p, err := exec.LookPath("abipkgdiff"); err == nil {
			l.deep = &abi.Abipkgdiff{Path: p}
		} else {
			opt.Log.Warn("compat.abipkgdiff is enabled but abipkgdiff is not on PATH; only the ELF symbol layer runs")
		}
	}
	return l
}

func (l *elfLayer) root(name, root string) *elfRoot {
	k := anKey(name, root)
	st := l.roots[k]
	if st == nil {
		st = &elfRoot{failed: map[string]time.Time{}}
		l.roots[k] = st
	}
	return st
}

// elfStatus is the ELF layer's part of a view input: "partial" while a
// pass for these generations runs, "done" otherwise ("" with the layer
// off, so the input is what it was without it).
func (v *Views) elfStatus(e Entry, root, base, ref string) string {
	if !elfOn(e) {
		return ""
	}
	v.elf.mu.Lock()
	st := v.elf.roots[anKey(e.Repo.Name(), root)]
	status := "done"
	if st != nil && st.pending && st.base == base && st.ref == ref {
		status = "partial"
	}
	v.elf.mu.Unlock()
	return v.elfTag(e, root, status)
}

// elfTag is the ELF layer's part of an analysis input with a status. With
// debuginfo repos it names their generations at the root, so a new
// debuginfo generation (or a first one) is a new analysis.
func (v *Views) elfTag(e Entry, root, status string) string {
	deep := ""
	if v.deepOn(e) {
		deep = "+abipkgdiff"
		if v.debugOn(e) {
			deep += "+debuginfo=" + v.debugGens(e, root)
		}
	}
	return "|elf:" + abi.Version + deep + ":" + status
}

// debugOn says whether a repo gives abipkgdiff debuginfo packages.
func (v *Views) debugOn(e Entry) bool {
	return v.deepOn(e) && len(e.Compat.ABIPkgDiff.Debuginfo) > 0
}

// givesDebuginfo says whether a repo gives abipkgdiff the debuginfo repo
// name's packages.
func (v *Views) givesDebuginfo(e Entry, name string) bool {
	return v.debugOn(e) && slices.Contains(e.Compat.ABIPkgDiff.Debuginfo, name)
}

// debugGens returns the generations of a repo's debuginfo repos at a root
// ("-" for one holding none yet) and starts fetching those that hold none.
// It never waits for upstream: past its TTL a generation is revalidated in
// the background, as for clients.
func (v *Views) debugGens(e Entry, root string) string {
	sums := make([]string, 0, len(e.Compat.ABIPkgDiff.Debuginfo))
	for _, name := range e.Compat.ABIPkgDiff.Debuginfo {
		d, ok := v.opt.Repos[name]
		if !ok {
			sums = append(sums, "?")
			continue
		}
		cur, _ := d.Repo.Generations(root)
		if cur == nil {
			v.debugFetchLater(name, root)
			sums = append(sums, "-")
			continue
		}
		if time.Since(cur.Fetched) >= d.Repo.TTL() {
			d.Repo.Current(v.baseCtx, root) // returns at once; revalidates in the background
		}
		sums = append(sums, cur.Sum())
	}
	return strings.Join(sums, ",")
}

// debugFetchLater fetches a debuginfo repo's root in the background (once
// at a time, and not again within elfRetry of a failure). Its first
// generation is a switch like any other: Switched rebuilds the views of
// the repos using it.
func (v *Views) debugFetchLater(name, root string) {
	k := anKey(name, root)
	v.elf.mu.Lock()
	if v.elf.debugFetch[k] || time.Since(v.elf.debugFailed[k]) < elfRetry || v.baseCtx.Err() != nil {
		v.elf.mu.Unlock()
		return
	}
	v.elf.debugFetch[k] = true
	v.elf.mu.Unlock()
	v.bg.Go(func() {
		_, _, err := v.opt.Repos[name].Repo.Current(v.baseCtx, root)
		v.elf.mu.Lock()
		delete(v.elf.debugFetch, k)
		if err != nil {
			v.elf.debugFailed[k] = time.Now()
		}
		v.elf.mu.Unlock()
		if err != nil && v.baseCtx.Err() == nil {
			v.opt.Log.Warn("debuginfo repo unavailable; abipkgdiff runs without its packages",
				"repo", name, "root", root, "err", err)
		}
	})
}

// debugIndex returns the debuginfo packages the debuginfo repos of a
// repo hold at a root now (nil without debuginfo repos). Each
// generation's primary.xml is read once.
func (v *Views) debugIndex(ctx context.Context, e Entry, root string) *abi.DebugIndex {
	if !v.debugOn(e) {
		return nil
	}
	x := abi.NewDebugIndex(e.Compat.ABIPkgDiff.Debuginfo)
	for _, name := range e.Compat.ABIPkgDiff.Debuginfo {
		d, ok := v.opt.Repos[name]
		if !ok {
			continue
		}
		cur, _ := d.Repo.Generations(root)
		if cur == nil {
			continue
		}
		k := anKey(name, root)
		v.elf.mu.Lock()
		list := v.elf.debug[k]
		v.elf.mu.Unlock()
		if list == nil || list.sum != cur.Sum() {
			var pkgs []metadata.Package
			err := d.Repo.ScanPackages(ctx, root, cur, 0, func(_ string, _ bool, p *metadata.PackageDeps) error {
				if abi.IsDebuginfo(p.Name) {
					pkgs = append(pkgs, p.Package)
				}
				return nil
			})
			if err != nil {
				v.opt.Log.Warn("reading a debuginfo repo failed; abipkgdiff runs without its packages",
					"repo", name, "root", root, "err", err)
				continue
			}
			list = &debugList{sum: cur.Sum(), pkgs: pkgs}
			v.elf.mu.Lock()
			v.elf.debug[k] = list
			v.elf.mu.Unlock()
		}
		for _, p := range list.pkgs {
			x.Add(name, p)
		}
	}
	return x
}

// elfPending says whether a pass for the root's generations runs.
func (v *Views) elfPending(name, root, base, ref string) bool {
	v.elf.mu.Lock()
	defer v.elf.mu.Unlock()
	st := v.elf.roots[anKey(name, root)]
	return st != nil && st.pending && st.base == base && st.ref == ref
}

// trimDeps keeps what abi.Pairs needs of a package (the analysis holds
// both repos' lists until the pairs are chosen).
func trimDeps(p *metadata.PackageDeps) metadata.PackageDeps {
	return metadata.PackageDeps{Package: p.Package, ABIProvides: p.ABIProvides}
}

// elfStablelist returns the reference's kABI stablelist: known, or read
// from the stored stablelists package. When the package is not in the
// store yet it is returned as the pass's work (todo).
func (v *Views) elfStablelist(ctx context.Context, e Entry, root string, refDeps []metadata.PackageDeps) (sl *abi.Stablelist, todo *abi.PackageRef) {
	var pkg *metadata.PackageDeps
	for i := range refDeps {
		p := &refDeps[i]
		if p.Name == stablelistPackage && (pkg == nil || metadata.CompareEVR(p.ID().EVR(), pkg.ID().EVR()) > 0) {
			pkg = p
		}
	}
	if pkg == nil {
		return nil, nil
	}
	v.elf.mu.Lock()
	st := v.elf.root(e.Repo.Name(), root)
	if st.stableSum == pkg.Checksum {
		sl = st.stable
		v.elf.mu.Unlock()
		return sl, nil
	}
	v.elf.mu.Unlock()
	ref := abi.PackageRef{PackageID: pkg.ID(), Checksum: pkg.Checksum, Href: pkg.Href}
	refRepo := v.opt.Repos[e.Compat.Reference].Repo
	obj, ok := refRepo.StoredPackage(ctx, root+pkg.Href, pkg.Checksum)
	if !ok {
		return nil, &ref
	}
	defer obj.Close()
	sl, err := abi.ReadStablelist(ctx, obj)
	if err != nil {
		v.opt.Log.Warn("kABI stablelist unreadable; kernel symbol changes are reported without it",
			"repo", e.Compat.Reference, "root", root, "package", pkg.NEVRA(), "err", err)
		sl = nil
	}
	v.elf.mu.Lock()
	st.stable, st.stableSum = sl, pkg.Checksum
	v.elf.mu.Unlock()
	return sl, nil
}

// elfPlan is what an analysis leaves to the background pass.
type elfPlan struct {
	name, root, base, ref string
	pairs                 []abi.Pair
	stable                *abi.PackageRef // the stablelists package, when not read yet
	debug                 *abi.DebugIndex // debuginfo packages for abipkgdiff; nil: none configured
}

// elfKnown returns the stored ELF (and abipkgdiff) findings of the pairs
// of a generation, by the new package's checksum, and the plan of what is
// not known yet (nil when nothing is missing). It records the result keys
// as the root's pins.
func (v *Views) elfKnown(ctx context.Context, e Entry, root, base, ref string, refDeps, curDeps []metadata.PackageDeps, markers *metadata.VendorMarkers, stable *abi.PackageRef) (map[string][]metadata.Finding, *elfPlan) {
	name := e.Repo.Name()
	a := v.elf.analyzers[name]
	deep := v.deepOn(e)
	pairs := abi.Pairs(refDeps, curDeps, markers)
	known := map[string][]metadata.Finding{}
	plan := &elfPlan{name: name, root: root, base: base, ref: ref, stable: stable}
	if deep {
		plan.debug = v.debugIndex(ctx, e, root)
	}
	pins := make([]string, 0, len(pairs))
	v.elf.mu.Lock()
	failed := maps.Clone(v.elf.root(name, root).failed) // the pass writes the original
	v.elf.mu.Unlock()
	settled := func(k string) bool { t, ok := failed[k]; return ok && time.Since(t) < elfRetry }
	for _, p := range pairs {
		key := a.ResultKey(p.Old, p.New)
		pins = append(pins, keys.ABIKey(key))
		fs, ok, err := a.Stored(p.Old, p.New)
		if err != nil {
			v.opt.Log.Warn("reading a stored ELF result failed", "repo", name, "package", p.New.NEVRA(), "err", err)
		}
		if deep {
			dk := a.DeepResultKey(p.Old, p.New)
			req, miss, ready := abi.DeepRequest{Old: p.Old, New: p.New}, abi.MissingDebuginfo{}, true
			if plan.debug != nil {
				// The debuginfo packages are chosen by the source
				// package, which the pair's headers name once read.
				so, ok1, _ := a.StoredSourceRPM(p.Old)
				sn, ok2, _ := a.StoredSourceRPM(p.New)
				pins = append(pins, keys.ABIKey(a.SourceKey(p.Old)), keys.ABIKey(a.SourceKey(p.New)))
				if ready = ok1 && ok2; ready {
					req, miss = plan.debug.Request(p, so, sn)
					dk = a.DeepKey(req)
				}
			}
			pins = append(pins, keys.ABIKey(dk))
			dok := false
			if ready {
				var dfs []metadata.Finding
				dfs, dok, _ = a.StoredDeepRequest(req)
				fs = append(fs, miss.Annotate(dfs)...)
			}
			ok = ok && (dok || settled(dk))
		}
		known[p.New.Checksum.Value] = append(known[p.New.Checksum.Value], fs...)
		if !ok && !settled(key) {
			plan.pairs = append(plan.pairs, p)
		}
	}
	v.elf.mu.Lock()
	v.elf.root(name, root).pins = pins
	v.elf.mu.Unlock()
	if len(plan.pairs) == 0 && plan.stable == nil {
		return known, nil
	}
	return known, plan
}

// elfStart starts the background pass of a plan unless one for the same
// generations runs; a pass for older generations is cancelled. It marks the
// root pending before it returns, so inputs computed after it say
// "partial".
func (v *Views) elfStart(p *elfPlan) {
	if p == nil || v.baseCtx.Err() != nil {
		return
	}
	v.elf.mu.Lock()
	st := v.elf.root(p.name, p.root)
	if st.pending && st.base == p.base && st.ref == p.ref {
		v.elf.mu.Unlock()
		return
	}
	if st.cancel != nil {
		st.cancel()
	}
	ctx, cancel := context.WithCancel(v.baseCtx)
	st.base, st.ref, st.pending, st.cancel = p.base, p.ref, true, cancel
	v.elf.mu.Unlock()
	v.bg.Go(func() {
		defer cancel()
		start := time.Now()
		n := v.elfRun(ctx, p)
		v.elf.mu.Lock()
		mine := st.base == p.base && st.ref == p.ref && ctx.Err() == nil
		if mine {
			st.pending = false
		}
		v.elf.mu.Unlock()
		if !mine {
			return
		}
		v.opt.Log.Info("ELF symbol layer pass done", "repo", p.name, "root", p.root,
			"pairs", len(p.pairs), "failed", n, "duration", time.Since(start).Round(time.Millisecond))
		for _, s := range v.slotList() {
			if s.repo == p.name && s.root == p.root {
				v.elfRefresh(s)
			}
		}
	})
}

// elfRun compares the plan's pairs and reads its stablelist, and returns
// how many failed.
func (v *Views) elfRun(ctx context.Context, p *elfPlan) int {
	e := v.opt.Repos[p.name]
	refRepo := v.opt.Repos[e.Compat.Reference].Repo
	a := v.elf.analyzers[p.name]
	fail := func(key string, what string, err error) {
		if ctx.Err() != nil {
			return
		}
		v.opt.Log.Warn("ELF symbol layer: comparison failed; the package keeps its metadata findings",
			"repo", p.name, "root", p.root, "package", what, "err", err)
		v.elf.mu.Lock()
		v.elf.root(p.name, p.root).failed[key] = time.Now()
		v.elf.mu.Unlock()
	}
	var failures int
	var mu sync.Mutex
	count := func() { mu.Lock(); failures++; mu.Unlock() }
	if p.stable != nil {
		ref := *p.stable
		obj, err := refRepo.OpenPackage(ctx, p.root+ref.Href, ref.Checksum)
		if err == nil {
			var sl *abi.Stablelist
			sl, err = abi.ReadStablelist(ctx, obj)
			obj.Close()
			if err == nil || errors.Is(err, abi.ErrBadPackage) || errors.Is(err, abi.ErrBadStablelist) {
				v.elf.mu.Lock()
				st := v.elf.root(p.name, p.root)
				st.stable, st.stableSum = sl, ref.Checksum
				v.elf.mu.Unlock()
			}
		}
		if err != nil {
			count()
			v.opt.Log.Warn("kABI stablelist unavailable", "repo", e.Compat.Reference, "root", p.root, "package", ref.NEVRA(), "err", err)
		}
	}
	conc := max(e.Compat.ELF.Concurrency, 1)
	var g errgroup.Group
	g.SetLimit(conc)
	for _, pair := range p.pairs {
		if ctx.Err() != nil {
			break
		}
		open := func(ctx context.Context, r abi.PackageRef) (io.ReadCloser, error) {
			src := e.Repo
			switch {
			case r == pair.Old:
				src = refRepo
			case r == pair.New:
			case p.debug != nil:
				if name, ok := p.debug.RepoOf(r); ok {
					src = v.opt.Repos[name].Repo
				}
			}
			obj, err := src.OpenPackage(ctx, p.root+r.Href, r.Checksum)
			if err != nil {
				return nil, err
			}
			return yielding{obj}, nil
		}
		g.Go(func() error {
			select {
			case v.elf.cpu <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			defer func() { <-v.elf.cpu }()
			lowPriority(func() { v.elfPair(ctx, p, e, a, pair, open, count, fail) })
			return nil
		})
	}
	g.Wait()
	return failures
}

// elfPair compares one pair of a plan (and runs abipkgdiff on it when the
// repo asks for it), calling count and fail for what fails.
func (v *Views) elfPair(ctx context.Context, p *elfPlan, e Entry, a *abi.Analyzer, pair abi.Pair, open abi.Opener,
	count func(), fail func(key, what string, err error)) {
	if _, err := a.ComparePair(ctx, pair.Old, pair.New, open); err != nil {
		count()
		fail(a.ResultKey(pair.Old, pair.New), pair.New.NEVRA(), err)
		return
	}
	if !v.deepOn(e) {
		return
	}
	req := abi.DeepRequest{Old: pair.Old, New: pair.New}
	if p.debug != nil {
		// The source packages name the debuginfo packages.
		so, err1 := a.SourceRPM(ctx, pair.Old, open)
		sn, err2 := a.SourceRPM(ctx, pair.New, open)
		if err := errors.Join(err1, err2); err != nil {
			count()
			fail(a.DeepResultKey(pair.Old, pair.New), pair.New.NEVRA()+" (abipkgdiff)", err)
			return
		}
		req, _ = p.debug.Request(pair, so, sn)
	}
	if _, ok, _ := a.StoredDeepRequest(req); ok {
		return
	}
	if _, err := a.DeepCompare(ctx, v.elf.deep, req, open); err != nil {
		count()
		fail(a.DeepKey(req), pair.New.NEVRA()+" (abipkgdiff)", err)
	}
}

// elfRefresh rebuilds a slot's view after a pass, under a build key of its
// own: a build that started before the pass ended must not be joined.
func (v *Views) elfRefresh(s *slot) {
	v.rebuildLater(s, "|elf@"+time.Now().Format(time.RFC3339Nano))
}

// elfPins adds the stored results the roots' current analyses use.
func (v *Views) elfPins(add func(key string)) {
	v.elf.mu.Lock()
	defer v.elf.mu.Unlock()
	for _, st := range v.elf.roots {
		for _, k := range st.pins {
			add(k)
		}
	}
}

// elfForget drops the ELF state of a repo's roots under prefix.
func (v *Views) elfForget(name, prefix string) {
	v.elf.mu.Lock()
	defer v.elf.mu.Unlock()
	for k, st := range v.elf.roots {
		if r, root, _ := strings.Cut(k, "\x00"); r == name && strings.HasPrefix(root, prefix) {
			if st.cancel != nil {
				st.cancel()
			}
			delete(v.elf.roots, k)
		}
	}
}

// ELFStats returns the work the ELF layer's analysers did, summed over
// repos.
func (v *Views) ELFStats() abi.Stats {
	var out abi.Stats
	names := make([]string, 0, len(v.elf.analyzers))
	for n := range v.elf.analyzers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := v.elf.analyzers[n].Stats()
		out.Analysed += s.Analysed
		out.Reused += s.Reused
		out.PackagesRead += s.PackagesRead
		out.PackagesReused += s.PackagesReused
		out.PayloadBytes += s.PayloadBytes
	}
	return out
}

// ELFPending reports whether a pass runs for any root (tests and the
// benchmark wait on it).
func (v *Views) ELFPending() bool {
	v.elf.mu.Lock()
	defer v.elf.mu.Unlock()
	for _, st := range v.elf.roots {
		if st.pending {
			return true
		}
	}
	return false
}

// yieldChunk is how much of an RPM the pass reads between yields.
const yieldChunk = 16 << 10

// yielding reads an RPM for the pass in small pieces and yields the
// processor after each: decompressing and parsing are CPU-bound, and
// without it a pass holds a processor for a whole scheduler time slice
// (10 ms) while client requests wait to run.
type yielding struct{ io.ReadCloser }

func (y yielding) Read(p []byte) (int, error) {
	if len(p) > yieldChunk {
		p = p[:yieldChunk]
	}
	n, err := y.ReadCloser.Read(p)
	runtime.Gosched()
	return n, err
}
