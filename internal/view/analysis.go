package view

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/abi"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/repo"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// analysis is what the rules and the reference repo say of every package
// of one generation. Views derive their decisions from it. Immutable once
// built, except for the lazily computed affected dependents.
type analysis struct {
	input   string // analysis part of the view input
	base    string // sha256 of upstream's repomd.xml
	total   int    // packages primary.xml lists
	pkgs    []analyzedPkg
	modular map[string]bool // ModularKey → listed in modules.yaml
	// elfPartial: ELF comparisons were left to a background pass (elfPlan);
	// input then says "partial".
	elfPartial bool
	elfPlan    *elfPlan

	// stablelist lists the kernel symbols on the reference's kABI
	// stablelist whose CRC changed: they break third-party kmods.
	stablelist []string

	mu       sync.Mutex
	affected map[string][]AffectedPackage // by view
	deps     *depSummary                  // for affectedBy; nil without filter classes
}

// analyzedPkg is a package with findings; the others are only counted, so
// the analysis stays small whatever the size of the repo.
type analyzedPkg struct {
	id       metadata.PackageID
	pkgid    string
	findings []metadata.Finding
}

func anKey(name, root string) string { return name + "\x00" + root }

// analysisFor returns the analysis of a generation for an input, computing
// it once however many callers ask. No lock is held while primary.xml is
// scanned: other views and the metrics read the previous analysis meanwhile.
// An analysis made at the generation's switch, in the pass that built its
// package index (SwitchScan), is taken when its input is the one asked.
func (v *Views) analysisFor(ctx context.Context, name string, e Entry, root string, g *repo.Generation, in input) (*analysis, error) {
	v.mu.Lock()
	an := v.analyses[anKey(name, root)]
	v.mu.Unlock()
	if an != nil && an.input == in.anKey {
		return an, nil
	}
	ch := v.analyses1.DoChan(anKey(name, root)+"\x00"+in.anKey, func() (any, error) {
		if !v.bg.Enter() {
			return nil, context.Canceled // shutting down
		}
		defer v.bg.Leave()
		v.mu.Lock()
		an := v.early[anKey(name, root)]
		if an != nil && an.input == in.anKey && an.base == g.Sum() {
			delete(v.early, anKey(name, root))
		} else {
			an = nil
		}
		v.mu.Unlock()
		if an == nil {
			run, err := v.startAnalysis(ctx, name, e, root, in)
			if err != nil {
				return nil, err
			}
			if err := e.Repo.ScanPackages(ctx, root, g, run.fields(), run.add); err != nil {
				return nil, err
			}
			if an, err = run.finish(ctx, g); err != nil {
				return nil, err
			}
		}
		if an.elfPartial {
			an.input = in.anHash + v.elfTag(e, root, "partial")
			v.elfStart(an.elfPlan) // before the analysis is seen: inputs say "partial" from now
		}
		v.mu.Lock()
		v.analyses[anKey(name, root)] = an
		v.mu.Unlock()
		return an, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*analysis), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// SwitchScan is repo's IndexSink for the repo name: when the root's views
// are in use, the analysis of the new generation g rides on the pass that
// builds its package index, so the switch reads primary.xml once for both.
// The analysis is kept aside until a view asks for its input
// (analysisFor); when the input cannot be had at the switch (the reference
// is not fetched, and a view is served meanwhile or the reference has a
// reference itself), there is no sink and the analysis reads primary.xml
// when it is asked for.
func (v *Views) SwitchScan(ctx context.Context, name, root string, g *repo.Generation) repo.Sink {
	e, ok := v.opt.Repos[name]
	if !ok {
		return nil
	}
	inUse, haveView := v.viewsInUse(name, e, root)
	if !inUse {
		return v.refScan(name, root, g)
	}
	if !v.bg.Enter() {
		return nil
	}
	// This runs inside the repo's refresh: waiting here for the reference's
	// first generation is safe only when the reference has no reference of
	// its own (its refresh then never waits in turn; with repos referencing
	// each other, each refresh would wait for the other). Otherwise the
	// reference is fetched in the background and the analysis is left to
	// the view build.
	wait := !haveView && v.opt.Repos[e.Compat.Reference].Compat.Reference == ""
	in, err := v.inputFor(ctx, e, root, g, "", !wait)
	if err == nil {
		var run *analysisRun
		if run, err = v.startAnalysis(ctx, name, e, root, in); err == nil {
			return &switchSink{v: v, ctx: ctx, name: name, root: root, g: g, run: run}
		}
	}
	v.bg.Leave()
	v.opt.Log.Debug("analysis left to the view build", "repo", name, "root", root, "err", err)
	return nil
}

// refSummary is what analyses need of one reference generation: its
// packages' ABI provides, and for the ELF layer their identities.
// Read-only once made, so analyses of several repos share it.
type refSummary struct {
	sum  string // the reference generation's Sum
	ref  *metadata.Reference
	elf  bool                   // deps were kept
	deps []metadata.PackageDeps // the packages, for the ELF layer's pairs
}

type refCollector struct {
	elf  bool
	pkgs []metadata.ABIPackage
	deps []metadata.PackageDeps
}

func newRefCollector(elf bool) *refCollector { return &refCollector{elf: elf} }

func (c *refCollector) add(p *metadata.PackageDeps) {
	c.pkgs = append(c.pkgs, metadata.ABIPackage{PackageID: p.ID(), Provides: p.ABIProvides})
	if c.elf {
		c.deps = append(c.deps, trimDeps(p))
	}
}

func (c *refCollector) summary(sum string) *refSummary {
	return &refSummary{sum: sum, ref: metadata.NewReference(c.pkgs), elf: c.elf, deps: c.deps}
}

// refScan is SwitchScan for a repo whose views are not in use: when it is
// the reference of a repo whose views are, the reference's summary is
// read in the pass that builds its own package index, so the analyses do
// not read its primary.xml a second time. The summary replaces the one of
// the root's previous generation.
func (v *Views) refScan(name, root string, g *repo.Generation) repo.Sink {
	referenced, elf := false, false
	for other, e := range v.opt.Repos {
		if e.Compat.Reference != name {
			continue
		}
		if inUse, _ := v.viewsInUse(other, e, root); !inUse {
			continue
		}
		referenced, elf = true, elf || elfOn(e)
	}
	if !referenced {
		return nil
	}
	return &refSink{v: v, key: anKey(name, root), sum: g.Sum(), c: newRefCollector(elf)}
}

// viewsInUse reports whether the repo serves rewritten views of root (its
// compat mode rewrites, or a client asked for a view of that root), and
// whether one of them has been built.
func (v *Views) viewsInUse(name string, e Entry, root string) (inUse, haveView bool) {
	if mode := string(e.Compat.Mode); mode == Annotate || mode == Filter {
		inUse = true
	}
	for _, s := range v.slotList() {
		if s.repo == name && s.root == root {
			inUse = true
			haveView = haveView || s.current() != nil
		}
	}
	return inUse, haveView
}

// refSummaryOf returns the summary of the reference generation rg made at
// its switch, nil when there is none (or it lacks what the ELF layer needs).
func (v *Views) refSummaryOf(ref, root string, rg *repo.Generation, elf bool) *refSummary {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.refs[anKey(ref, root)]
	if s == nil || s.sum != rg.Sum() || (elf && !s.elf) {
		return nil
	}
	return s
}

// refSink collects a reference generation's summary from its index pass.
type refSink struct {
	v   *Views
	key string
	sum string
	c   *refCollector
}

func (s *refSink) Fields() metadata.ScanFields { return metadata.ScanProvides }

func (s *refSink) Package(_ string, _ bool, p *metadata.PackageDeps) error {
	s.c.add(p)
	return nil
}

func (s *refSink) Done(err error) {
	if err != nil {
		return
	}
	sum := s.c.summary(s.sum)
	s.v.mu.Lock()
	s.v.refs[s.key] = sum
	s.v.mu.Unlock()
}

// switchSink feeds an analysis from the switch's index pass.
type switchSink struct {
	v          *Views
	ctx        context.Context
	name, root string
	g          *repo.Generation
	run        *analysisRun
}

func (s *switchSink) Fields() metadata.ScanFields { return s.run.fields() }

func (s *switchSink) Package(rel string, inside bool, p *metadata.PackageDeps) error {
	return s.run.add(rel, inside, p)
}

func (s *switchSink) Done(err error) {
	defer s.v.bg.Leave()
	var an *analysis
	if err == nil {
		an, err = s.run.finish(s.ctx, s.g)
	}
	if err != nil {
		s.v.opt.Log.Debug("analysis at the switch not kept", "repo", s.name, "root", s.root, "err", err)
		return
	}
	s.v.mu.Lock()
	s.v.early[anKey(s.name, s.root)] = an
	s.v.mu.Unlock()
}

// analysisRun is one analysis under way: startAnalysis reads the
// reference, add takes the generation's packages one by one (from any
// pass over its primary.xml), finish completes it.
type analysisRun struct {
	v          *Views
	e          Entry
	root       string
	in         input
	markers    *metadata.VendorMarkers
	ref        *metadata.Reference
	refDeps    []metadata.PackageDeps // for the ELF layer's pairs
	curDeps    []metadata.PackageDeps
	stable     *abi.Stablelist
	stableTodo *abi.PackageRef
	an         *analysis
	byPkgid    map[string]int // pkgid → index in an.pkgs
	depIdx     map[string]int // pkgid → index in an.deps, for packages only the ELF layer may flag
}

func (v *Views) startAnalysis(ctx context.Context, name string, e Entry, root string, in input) (*analysisRun, error) {
	markers, err := metadata.NewVendorMarkers(e.Compat.VendorMarkers)
	if err != nil {
		return nil, fmt.Errorf("compat.vendor_markers: %w", err)
	}
	r := &analysisRun{v: v, e: e, root: root, in: in, markers: markers,
		an: &analysis{input: in.anKey, base: in.base}, byPkgid: map[string]int{}, depIdx: map[string]int{}}
	if in.refGen != nil {
		if sum := v.refSummaryOf(e.Compat.Reference, root, in.refGen, in.elf); sum != nil {
			r.ref, r.refDeps = sum.ref, sum.deps
		} else {
			refRepo := v.opt.Repos[e.Compat.Reference].Repo
			c := newRefCollector(in.elf)
			err := refRepo.ScanPackages(ctx, root, in.refGen, metadata.ScanProvides, func(_ string, _ bool, p *metadata.PackageDeps) error {
				c.add(p)
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("reference repo %s/%s: %w", e.Compat.Reference, root, err)
			}
			sum := c.summary(in.refGen.Sum())
			r.ref, r.refDeps = sum.ref, sum.deps
		}
		if in.elf {
			r.stable, r.stableTodo = v.elfStablelist(ctx, e, root, r.refDeps)
		}
	}
	if v.filterInUse(name, e, root) {
		// The affected dependents come from this same pass.
		r.an.deps = newDepSummary()
	}
	return r, nil
}

// filterInUse reports whether a filter view of the root filters anything:
// the repo is in filter mode, or a client asked for its @filter view. Only
// then does the analysis keep what the affected dependents need (a filter
// view asked for later reads primary.xml for them: lateDeps).
func (v *Views) filterInUse(name string, e Entry, root string) bool {
	if len(e.Compat.Filter) == 0 {
		return false
	}
	if e.Compat.Mode == config.ModeFilter {
		return true
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.slots[slotKey(name, root, Filter)]
	return ok
}

// fields is what the analysis reads of each package's dependencies: the
// provides to compare with a reference, everything for the affected
// dependents.
func (r *analysisRun) fields() metadata.ScanFields {
	var f metadata.ScanFields
	if r.in.refGen != nil {
		f |= metadata.ScanProvides
	}
	if r.an.deps != nil {
		f |= metadata.ScanAll
	}
	return f
}

// add analyses one package of the generation.
func (r *analysisRun) add(_ string, _ bool, p *metadata.PackageDeps) error {
	an, in := r.an, r.in
	id := p.ID()
	an.total++
	c := metadata.CompareWith(metadata.ABIPackage{PackageID: id, Provides: p.ABIProvides}, r.ref,
		metadata.CompareOptions{Markers: r.markers, Stablelist: r.stable.ForArch(p.Arch)})
	findings := append(in.rules.Match(id), c.Findings...)
	an.stablelist = append(an.stablelist, c.StablelistBreaks...)
	at := int32(-1)
	if len(findings) > 0 {
		at = int32(len(an.pkgs))
		r.byPkgid[p.Checksum.Value] = len(an.pkgs)
		an.pkgs = append(an.pkgs, analyzedPkg{id: id, pkgid: p.Checksum.Value, findings: findings})
	}
	elfCandidate := in.elf && at < 0 && len(p.ABIProvides) > 0
	if an.deps != nil {
		di := an.deps.add(p, at, at >= 0 || elfCandidate)
		if elfCandidate {
			r.depIdx[p.Checksum.Value] = di
		}
	}
	if in.elf {
		r.curDeps = append(r.curDeps, trimDeps(p))
	}
	return nil
}

// finish adds the ELF layer's known findings and the modular packages.
func (r *analysisRun) finish(ctx context.Context, g *repo.Generation) (*analysis, error) {
	an, in, v, e := r.an, r.in, r.v, r.e
	if in.elf {
		known, plan := v.elfKnown(ctx, e, r.root, in.base, in.refGen.Sum(), r.refDeps, r.curDeps, r.markers, r.stableTodo)
		for _, p := range r.curDeps {
			fs := known[p.Checksum.Value]
			if len(fs) == 0 {
				continue
			}
			if i, ok := r.byPkgid[p.Checksum.Value]; ok {
				an.pkgs[i].findings = append(an.pkgs[i].findings, fs...)
			} else {
				r.byPkgid[p.Checksum.Value] = len(an.pkgs)
				if di, ok := r.depIdx[p.Checksum.Value]; ok && an.deps != nil {
					an.deps.pkgs[di].an = int32(len(an.pkgs))
				}
				an.pkgs = append(an.pkgs, analyzedPkg{id: p.ID(), pkgid: p.Checksum.Value, findings: fs})
			}
		}
		an.elfPlan, an.elfPartial = plan, plan != nil
	}
	var err error
	if an.modular, err = readModules(ctx, v.opt.Limits, e.Repo, r.root, g); err != nil {
		return nil, err
	}
	return an, nil
}

func readModules(ctx context.Context, l metadata.Limits, r *repo.Repo, root string, g *repo.Generation) (map[string]bool, error) {
	zr, _, err := r.OpenContent(ctx, root, g, "modules")
	if errors.Is(err, cache.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return l.ModularPackages(zr)
}

// decisions applies a view's compat classes to the analysis. Modular
// packages are annotated, never filtered one by one: dnf can only use them
// through their module stream.
func (an *analysis) decisions(c config.Compat, view string) map[string]metadata.Decision {
	out := make(map[string]metadata.Decision, len(an.pkgs))
	for _, p := range an.pkgs {
		if len(p.findings) == 0 {
			continue
		}
		d := metadata.Decide(p.findings, c.Annotate, c.Filter, view)
		if d.Action == metadata.ActionFilter && an.modular[metadata.ModularKey(p.id)] {
			d = metadata.Decide(p.findings, append(slices.Clone(c.Annotate), c.Filter...), nil, Annotate)
		}
		out[p.pkgid] = d
	}
	return out
}

// counts is the number of packages with findings, by class.
func (an *analysis) counts() map[string]int {
	out := map[string]int{}
	for _, p := range an.pkgs {
		seen := map[string]bool{}
		for _, f := range p.findings {
			if !seen[f.Class] {
				seen[f.Class] = true
				out[f.Class]++
			}
		}
	}
	return out
}

// AffectedPackage is a kept package that needs something only filtered
// packages provided.
type AffectedPackage struct {
	NEVRA    string   `json:"nevra"`
	Requires []string `json:"requires"`
	Filtered []string `json:"filtered_providers"`
}

// affectedBy lists the kept packages whose requirements only filtered
// packages satisfied, from what the analysis's scan kept (no further read
// of primary.xml).
func affectedBy(an *analysis, dec map[string]metadata.Decision) []AffectedPackage {
	if an.deps == nil {
		return nil
	}
	return an.deps.affected(func(i int32) bool { return dec[an.pkgs[i].pkgid].Action == metadata.ActionFilter })
}

// DivergentPackage is one package of a divergence report.
type DivergentPackage struct {
	NEVRA   string          `json:"nevra"`
	Name    string          `json:"name"`
	Epoch   string          `json:"epoch"`
	Version string          `json:"version"`
	Release string          `json:"release"`
	Arch    string          `json:"arch"`
	Classes []string        `json:"classes"`
	Reasons []string        `json:"reasons"`
	Action  metadata.Action `json:"action"` // annotate | filter | none
}

// report renders the analysis as the divergence report's packages.
func (an *analysis) report(c config.Compat, view string) []DivergentPackage {
	dec := an.decisions(c, view)
	out := []DivergentPackage{}
	for _, p := range an.pkgs {
		if len(p.findings) == 0 {
			continue
		}
		action := dec[p.pkgid].Action
		if view == Raw || action == "" {
			action = metadata.ActionNone
		}
		dp := DivergentPackage{
			NEVRA: p.id.NEVRA(), Name: p.id.Name, Epoch: p.id.Epoch, Version: p.id.Version,
			Release: p.id.Release, Arch: p.id.Arch, Classes: []string{}, Reasons: []string{}, Action: action,
		}
		for _, f := range p.findings {
			if !slices.Contains(dp.Classes, f.Class) {
				dp.Classes = append(dp.Classes, f.Class)
			}
			dp.Reasons = append(dp.Reasons, f.Class+" — "+f.Reason)
		}
		if view == Filter && an.modular[metadata.ModularKey(p.id)] &&
			slices.ContainsFunc(p.findings, func(f metadata.Finding) bool { return slices.Contains(c.Filter, f.Class) }) {
			dp.Reasons = append(dp.Reasons, "modular package (listed in modules.yaml): annotated, not filtered")
		}
		out = append(out, dp)
	}
	return out
}

// viewReport is the divergence report of a view: the packages with
// findings and, in filter views, the affected dependents (computed once
// per analysis).
func viewReport(ctx context.Context, e Entry, root string, g *repo.Generation, an *analysis, view string) ([]DivergentPackage, []AffectedPackage, error) {
	pkgs := an.report(e.Compat, view)
	if view != Filter {
		return pkgs, nil, nil
	}
	an.mu.Lock()
	defer an.mu.Unlock()
	if aff, ok := an.affected[view]; ok {
		return pkgs, aff, nil
	}
	if an.deps == nil && len(e.Compat.Filter) > 0 {
		if err := lateDeps(ctx, e, root, g, an); err != nil {
			return nil, nil, fmt.Errorf("affected dependents: %w", err)
		}
	}
	aff := affectedBy(an, an.decisions(e.Compat, view))
	if an.affected == nil {
		an.affected = map[string][]AffectedPackage{}
	}
	an.affected[view] = aff
	return pkgs, aff, nil
}

// lateDeps gives an analysis made while no filter view was in use what
// the affected dependents need, in a pass over primary.xml of its own.
// Called with an.mu held.
func lateDeps(ctx context.Context, e Entry, root string, g *repo.Generation, an *analysis) error {
	at := make(map[string]int32, len(an.pkgs)) // pkgid → index in an.pkgs
	for i, p := range an.pkgs {
		at[p.pkgid] = int32(i)
	}
	deps := newDepSummary()
	err := e.Repo.ScanPackages(ctx, root, g, metadata.ScanAll, func(_ string, _ bool, p *metadata.PackageDeps) error {
		i, ok := at[p.Checksum.Value]
		if !ok {
			i = -1
		}
		deps.add(p, i, ok)
		return nil
	})
	if err != nil {
		return err
	}
	an.deps = deps
	return nil
}

// Report is a root's divergence report.
type Report struct {
	Repo      string             `json:"repo"`
	Path      string             `json:"path"`
	Reference string             `json:"reference"`
	Packages  []DivergentPackage `json:"packages"` // never null
	// Affected lists, in filter mode, the kept packages whose requirements
	// only filtered packages satisfied (beyond DESIGN.md's fields).
	Affected []AffectedPackage `json:"affected,omitempty"`
	// StablelistBreaks are the kernel symbols on the reference's kABI
	// stablelist whose CRC differs (they break kmods built for RHEL),
	// counted apart from the other findings.
	StablelistBreaks []string `json:"stablelist_breaks,omitempty"`
}

// Report returns the divergence report of a repo root with each package's
// action in the repo's compat mode. With wait, a root without metadata is
// fetched first; without, only what is there is used (pages that must not
// go upstream), and a root without metadata has an empty report.
func (v *Views) Report(ctx context.Context, name, root string, wait bool) (Report, error) {
	e, ok := v.opt.Repos[name]
	if !ok {
		return Report{}, fmt.Errorf("%w: no repo %q", cache.ErrNotFound, name)
	}
	rep := Report{Repo: name, Path: root, Reference: e.Compat.Reference, Packages: []DivergentPackage{}}
	g, _ := e.Repo.Generations(root)
	if g == nil || wait {
		if !wait {
			return rep, nil
		}
		var err error
		if g, _, err = e.Repo.Current(ctx, root); err != nil {
			return Report{}, err
		}
	}
	in, err := v.inputFor(ctx, e, root, g, "", !wait)
	if err != nil {
		return Report{}, err
	}
	an, err := v.analysisFor(ctx, name, e, root, g, in)
	if err != nil {
		return Report{}, err
	}
	mode := string(e.Compat.Mode)
	if mode == string(config.ModeOff) {
		mode = Raw
	}
	rep.StablelistBreaks = an.stablelist
	rep.Packages, rep.Affected, err = viewReport(ctx, e, root, g, an, mode)
	return rep, err
}
