package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// The views that rewrite metadata.
const (
	ViewAnnotate = "annotate"
	ViewFilter   = "filter"
)

// viewFormat versions the rewritten output: bump it when the rewriter's
// output changes, so persisted views are rebuilt.
const viewFormat = "1"

// viewGen is one generation's metadata rewritten for a view: its
// repomd.xml, the proxy's signature of it, and where each file it lists is
// stored. It is built when the generation is fetched (or the rules
// change), never while a client waits for a file of it.
type viewGen struct {
	Input     string              `json:"input"` // what it was built from (viewInput)
	Base      string              `json:"base"`  // sha256 of upstream's repomd.xml
	Repomd    []byte              `json:"repomd"`
	Signature []byte              `json:"signature"`
	Files     map[string]viewFile `json:"files"` // href → stored object
	Created   time.Time           `json:"created"`
}

type viewFile struct {
	Key      string `json:"key"`
	Checksum string `json:"checksum"` // "type:hex"; empty for proxy-made files
}

// viewSlot holds a root's current view of one kind and the views it
// replaced (newest first, at most maxRetiredViews): a client may still hold
// any of their repomd.xml files, after an upstream change or a rules reload.
type viewSlot struct {
	mu      sync.Mutex
	cur     *viewGen
	retired []*viewGen
	loaded  bool // persisted record read
}

const maxRetiredViews = 3

// all returns the current view and the retired ones, newest first.
func (v *viewSlot) all() []*viewGen {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cur == nil {
		return nil
	}
	return append([]*viewGen{v.cur}, v.retired...)
}

type viewRecord struct {
	Cur     *viewGen   `json:"cur"`
	Retired []*viewGen `json:"retired,omitempty"`
}

func viewRecordKey(repo, root, view string) string {
	return nsViewRec + repo + "/" + root + "@" + view
}

func (s *Server) viewSlot(repo, root, view string) *viewSlot {
	k := repo + "\x00" + root + "\x00" + view
	v, _ := s.views.LoadOrStore(k, &viewSlot{})
	return v.(*viewSlot)
}

// effectiveView maps a request's view to the one served: no view means the
// repo's compat mode, and mode off means raw.
func effectiveView(rp *repoState, view string) string {
	if view == ViewDefault {
		view = string(rp.cfg.Compat.Mode)
	}
	if view == string(config.ModeOff) {
		return ViewRaw
	}
	return view
}

// rules returns the current rule set (nil: none).
func (s *Server) ruleSet() *metadata.RuleSet { return s.rules.Load() }

// LoadRules (re)reads the configured rule files. On error the previous
// rules stay in force. Views are rebuilt in the background: clients keep
// getting the previous views until the new ones are complete.
func (s *Server) LoadRules() error {
	rs, err := metadata.LoadRules(s.cfg.RuleFiles...)
	if err != nil {
		return err
	}
	old := s.rules.Swap(rs)
	if old != nil && old.Version() == rs.Version() {
		return nil
	}
	s.log.Info("rules loaded", "files", len(s.cfg.RuleFiles), "rules", rs.Len(), "version", rs.Version()[:12])
	if old != nil {
		s.fillWG.Add(1)
		go func() {
			defer s.fillWG.Done()
			s.rebuildViews()
		}()
	}
	return nil
}

// rebuildViews brings every view in use up to date with the rules.
func (s *Server) rebuildViews() {
	s.views.Range(func(k, v any) bool {
		parts := strings.SplitN(k.(string), "\x00", 3)
		rp := s.repos[parts[0]]
		if rp == nil || s.baseCtx.Err() != nil {
			return s.baseCtx.Err() == nil
		}
		cur, _ := rp.root(parts[1]).get()
		if cur == nil {
			return true
		}
		if _, err := s.viewFor(s.baseCtx, rp, parts[1], cur, parts[2]); err != nil {
			s.log.Warn("rebuilding view failed", "repo", rp.name, "root", parts[1], "view", parts[2], "err", err)
		}
		return true
	})
}

// signerFor loads (or, once, generates) the signing key on first use.
func (s *Server) signerFor() (*metadata.Signer, error) {
	s.signerOnce.Do(func() {
		s.signer, s.signerErr = metadata.LoadOrCreateSigner(s.cfg.Signing.KeyFile, s.cfg.Storage.Dir)
		if s.signerErr == nil {
			s.log.Info("signing key ready", "fingerprint", s.signer.Fingerprint())
		}
	})
	return s.signer, s.signerErr
}

// prepareViews builds, before a new generation becomes visible, the views
// clients use for this root: the repo's compat mode and any view already
// asked for.
func (s *Server) prepareViews(ctx context.Context, rp *repoState, root string, g *generation) {
	views := map[string]bool{}
	if v := effectiveView(rp, ViewDefault); v != ViewRaw {
		views[v] = true
	}
	for _, v := range []string{ViewAnnotate, ViewFilter} {
		if _, ok := s.views.Load(rp.name + "\x00" + root + "\x00" + v); ok {
			views[v] = true
		}
	}
	for v := range views {
		if _, err := s.viewFor(ctx, rp, root, g, v); err != nil {
			s.log.Warn("building view failed", "repo", rp.name, "root", root, "view", v, "err", err)
		}
	}
}

// viewFor returns the view of generation g. A view built from the same
// upstream metadata with older rules is served while the new one is built
// in the background; otherwise the view is built now (once, however many
// callers ask).
func (s *Server) viewFor(ctx context.Context, rp *repoState, root string, g *generation, view string) (*viewGen, error) {
	slot := s.viewSlot(rp.name, root, view)
	s.loadViewRecord(ctx, slot, rp.name, root, view)
	an, err := s.analysisFor(ctx, rp, root, g, s.refTTL(rp))
	if err != nil {
		return nil, err
	}
	input := an.input + "|" + view + "|" + viewFormat
	slot.mu.Lock()
	cur := slot.cur
	slot.mu.Unlock()
	if cur != nil && cur.Input == input {
		return cur, nil
	}
	ch := s.viewBuilds.DoChan(rp.name+"\x00"+root+"\x00"+view+"\x00"+input, func() (any, error) {
		bctx, cancel := context.WithTimeout(s.baseCtx, s.refreshTimeout)
		defer cancel()
		vg, err := s.buildView(bctx, rp, root, g, an, view, input)
		if err != nil {
			return nil, err
		}
		s.installView(bctx, slot, rp.name, root, view, vg)
		return vg, nil
	})
	if cur != nil && cur.Base == an.base {
		// Same upstream metadata, other rules: keep serving until rebuilt.
		return cur, nil
	}
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*viewGen), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Server) installView(ctx context.Context, slot *viewSlot, repo, root, view string, vg *viewGen) {
	slot.mu.Lock()
	if slot.cur != nil {
		slot.retired = append([]*viewGen{slot.cur}, slot.retired...)
		if len(slot.retired) > maxRetiredViews {
			slot.retired = slot.retired[:maxRetiredViews]
		}
	}
	slot.cur = vg
	rec := viewRecord{Cur: vg, Retired: slices.Clone(slot.retired)}
	slot.mu.Unlock()
	data, err := json.Marshal(rec)
	if err == nil {
		err = s.putSmall(ctx, viewRecordKey(repo, root, view), data, "application/json")
	}
	if err != nil {
		s.log.Warn("saving view record failed", "repo", repo, "root", root, "view", view, "err", err)
	}
}

func (s *Server) loadViewRecord(ctx context.Context, slot *viewSlot, repo, root, view string) {
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.loaded {
		return
	}
	slot.loaded = true
	obj, err := s.store.Get(ctx, viewRecordKey(repo, root, view))
	if err != nil {
		return
	}
	defer obj.Close()
	var rec viewRecord
	if json.NewDecoder(obj).Decode(&rec) == nil && rec.Cur != nil {
		slot.cur, slot.retired = rec.Cur, rec.Retired
	}
}

// analysis is what the rules and the reference repo say of every package
// of one generation. Views derive their decisions from it.
type analysis struct {
	input   string // upstream repomd + rules + compat settings + reference
	base    string // sha256 of upstream's repomd.xml
	total   int    // packages primary.xml lists
	pkgs    []analyzedPkg
	modular map[string]bool // ModularKey → listed in modules.yaml

	mu       sync.Mutex
	affected map[string][]affectedPackage // by view, computed on demand
}

// analyzedPkg is a package with findings; the others are only counted, so
// the analysis stays small whatever the size of the repo.
type analyzedPkg struct {
	id       metadata.PackageID
	pkgid    string
	findings []metadata.Finding
}

type analysisSlot struct {
	mu sync.Mutex
	an *analysis
}

// analysisFor returns the analysis of a generation, computing it when the
// generation, the rules or the reference changed.
// refTTL is the metadata TTL of a repo's reference repo (0 without one).
func (s *Server) refTTL(rp *repoState) time.Duration {
	if ref := s.repos[rp.cfg.Compat.Reference]; ref != nil {
		return ref.ttl
	}
	return 0
}

// noRevalidate as a maxAge serves whatever generation is there.
const noRevalidate = time.Duration(math.MaxInt64)

// refMaxAge bounds the age of the reference repo's generation (see
// generationFor).
func (s *Server) analysisFor(ctx context.Context, rp *repoState, root string, g *generation, refMaxAge time.Duration) (*analysis, error) {
	rs := s.ruleSet()
	h := sha256.New()
	base := sha256.Sum256(g.Repomd)
	fmt.Fprintf(h, "%x|%s|%v|%v|%s", base, rs.Version(), rp.cfg.Compat.Annotate, rp.cfg.Compat.Filter, rp.cfg.Compat.Reference)
	var refGen *generation
	var refRepo *repoState
	if name := rp.cfg.Compat.Reference; name != "" {
		refRepo = s.repos[name]
		var err error
		if refGen, _, err = s.generationFor(ctx, refRepo, root, refMaxAge); err != nil {
			return nil, fmt.Errorf("reference repo %s/%s: %w", name, root, err)
		}
		fmt.Fprintf(h, "|%x", sha256.Sum256(refGen.Repomd))
	}
	input := hex.EncodeToString(h.Sum(nil))

	v, _ := s.analyses.LoadOrStore(rp.name+"\x00"+root, &analysisSlot{})
	slot := v.(*analysisSlot)
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.an != nil && slot.an.input == input {
		return slot.an, nil
	}
	var ref *metadata.Reference
	if refGen != nil {
		var refPkgs []metadata.ABIPackage
		err := s.scanDeps(ctx, refRepo, root, refGen, func(p metadata.PackageDeps) error {
			refPkgs = append(refPkgs, metadata.ABIPackage{PackageID: p.ID(), Provides: p.ABIProvides})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reference repo %s/%s: %w", refRepo.name, root, err)
		}
		ref = metadata.NewReference(refPkgs)
	}
	an := &analysis{input: input, base: hex.EncodeToString(base[:])}
	index := map[string]pkgRef{} // the generation's package index, same pass
	err := s.scanDeps(ctx, rp, root, g, func(p metadata.PackageDeps) error {
		index[p.Href] = pkgRef{sum: p.Checksum, size: p.Size}
		id := p.ID()
		an.total++
		findings := append(rs.Match(id), metadata.Compare(metadata.ABIPackage{PackageID: id, Provides: p.ABIProvides}, ref)...)
		if len(findings) > 0 {
			an.pkgs = append(an.pkgs, analyzedPkg{id: id, pkgid: p.Checksum.Value, findings: findings})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	g.idx.set(func() (map[string]pkgRef, error) { return index, nil }) // no-op when already built
	if an.modular, err = s.readModules(ctx, rp, root, g); err != nil {
		return nil, err
	}
	slot.an = an
	return an, nil
}

// openRecord opens a generation's cached file of a record type.
func (s *Server) openRecord(ctx context.Context, rp *repoState, root string, g *generation, typ string) (cache.Object, metadata.Record, error) {
	rec, ok := g.md.Record(typ)
	if !ok {
		return nil, rec, cache.ErrNotFound
	}
	obj, err := s.store.Get(ctx, mdKey(rp.name, root+rec.Href, rec.Checksum.String()))
	if errors.Is(err, cache.ErrNotFound) {
		// Evicted or purged since: fetch it again, verified.
		if err = s.ensureCached(ctx, rp, mdKey(rp.name, root+rec.Href, rec.Checksum.String()), root+rec.Href,
			expect{size: rec.Size, sum: rec.Checksum, maxSize: s.limits.metadata}); err == nil {
			obj, err = s.store.Get(ctx, mdKey(rp.name, root+rec.Href, rec.Checksum.String()))
		}
	}
	return obj, rec, err
}

// openContent opens a record's file decompressed, within the size limit.
// Closing the result closes the stored object too.
func (s *Server) openContent(ctx context.Context, rp *repoState, root string, g *generation, typ string) (io.ReadCloser, metadata.Record, error) {
	obj, rec, err := s.openRecord(ctx, rp, root, g, typ)
	if err != nil {
		return nil, rec, err
	}
	zr, err := metadata.Decompress(obj, metadata.CodecOf(rec.Href), s.limits.decompressed)
	if err != nil {
		obj.Close()
		return nil, rec, err
	}
	return closeBoth{zr, obj}, rec, nil
}

type closeBoth struct {
	io.ReadCloser
	obj io.Closer
}

func (c closeBoth) Close() error {
	err := c.ReadCloser.Close()
	if oerr := c.obj.Close(); err == nil {
		err = oerr
	}
	return err
}

func (s *Server) scanDeps(ctx context.Context, rp *repoState, root string, g *generation, fn func(metadata.PackageDeps) error) error {
	zr, _, err := s.openContent(ctx, rp, root, g, "primary")
	if err != nil {
		return fmt.Errorf("primary.xml: %w", err)
	}
	defer zr.Close()
	return metadata.ScanPrimaryDeps(zr, fn)
}

func (s *Server) readModules(ctx context.Context, rp *repoState, root string, g *generation) (map[string]bool, error) {
	zr, _, err := s.openContent(ctx, rp, root, g, "modules")
	if errors.Is(err, cache.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return metadata.ModularPackages(zr)
}

// divergentByClass counts, per repo and class, the packages with findings
// in the current analyses of the repo's roots (for the metrics).
func (s *Server) divergentByClass() map[string]map[string]int {
	out := map[string]map[string]int{}
	s.analyses.Range(func(k, v any) bool {
		repo, _, _ := strings.Cut(k.(string), "\x00")
		slot := v.(*analysisSlot)
		slot.mu.Lock()
		defer slot.mu.Unlock()
		if slot.an == nil {
			return true
		}
		if out[repo] == nil {
			out[repo] = map[string]int{}
		}
		for _, p := range slot.an.pkgs {
			seen := map[string]bool{}
			for _, f := range p.findings {
				if !seen[f.Class] {
					seen[f.Class] = true
					out[repo][f.Class]++
				}
			}
		}
		return true
	})
	return out
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
			d = metadata.Decide(p.findings, append(slices.Clone(c.Annotate), c.Filter...), nil, ViewAnnotate)
		}
		out[p.pkgid] = d
	}
	return out
}

// affectedPackage is a kept package that needs something only filtered
// packages provided.
type affectedPackage struct {
	NEVRA    string   `json:"nevra"`
	Requires []string `json:"requires"`
	Filtered []string `json:"filtered_providers"`
}

// affectedBy lists the kept packages whose requirements only filtered
// packages satisfied. It streams primary.xml twice instead of holding every
// package's dependencies: first for the names the filtered packages
// provide, then for who else provides them and who requires them.
func (s *Server) affectedBy(ctx context.Context, rp *repoState, root string, g *generation, dec map[string]metadata.Decision) ([]affectedPackage, error) {
	filtered := map[string]bool{} // pkgid
	for pkgid, d := range dec {
		if d.Action == metadata.ActionFilter {
			filtered[pkgid] = true
		}
	}
	if len(filtered) == 0 {
		return nil, nil
	}
	byFiltered := map[string][]string{} // name → filtered NEVRAs providing it
	err := s.scanDeps(ctx, rp, root, g, func(p metadata.PackageDeps) error {
		if filtered[p.Checksum.Value] {
			for _, name := range append(p.Provides, p.Files...) {
				byFiltered[name] = append(byFiltered[name], p.NEVRA())
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	keptProvides := map[string]bool{}
	type need struct {
		nevra string
		reqs  []string
	}
	var needs []need
	err = s.scanDeps(ctx, rp, root, g, func(p metadata.PackageDeps) error {
		if filtered[p.Checksum.Value] {
			return nil
		}
		for _, name := range append(p.Provides, p.Files...) {
			if _, ok := byFiltered[name]; ok {
				keptProvides[name] = true
			}
		}
		n := need{nevra: p.NEVRA()}
		for _, req := range p.Requires {
			if _, ok := byFiltered[req]; ok && !slices.Contains(n.reqs, req) {
				n.reqs = append(n.reqs, req)
			}
		}
		if len(n.reqs) > 0 {
			needs = append(needs, n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []affectedPackage
	for _, n := range needs {
		a := affectedPackage{NEVRA: n.nevra}
		for _, req := range n.reqs {
			if keptProvides[req] {
				continue
			}
			a.Requires = append(a.Requires, req)
			for _, f := range byFiltered[req] {
				if !slices.Contains(a.Filtered, f) {
					a.Filtered = append(a.Filtered, f)
				}
			}
		}
		if len(a.Requires) > 0 {
			out = append(out, a)
		}
	}
	return out, nil
}

// report renders the analysis as the admin API's divergence report (the
// packages with findings; see viewReport for the affected dependents).
func (an *analysis) report(c config.Compat, view string) []DivergentPackage {
	dec := an.decisions(c, view)
	out := []DivergentPackage{}
	for _, p := range an.pkgs {
		if len(p.findings) == 0 {
			continue
		}
		d := dec[p.pkgid]
		action := d.Action
		if view == ViewRaw || action == "" {
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
		if view == ViewFilter && an.modular[metadata.ModularKey(p.id)] &&
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
func (s *Server) viewReport(ctx context.Context, rp *repoState, root string, g *generation, an *analysis, view string) ([]DivergentPackage, []affectedPackage, error) {
	pkgs := an.report(rp.cfg.Compat, view)
	if view != ViewFilter {
		return pkgs, nil, nil
	}
	an.mu.Lock()
	defer an.mu.Unlock()
	if aff, ok := an.affected[view]; ok {
		return pkgs, aff, nil
	}
	aff, err := s.affectedBy(ctx, rp, root, g, an.decisions(rp.cfg.Compat, view))
	if err != nil {
		return nil, nil, err
	}
	if an.affected == nil {
		an.affected = map[string][]affectedPackage{}
	}
	an.affected[view] = aff
	return pkgs, aff, nil
}

// buildView rewrites a generation's metadata for a view and stores the
// files. Nothing is visible until the caller installs the result.
func (s *Server) buildView(ctx context.Context, rp *repoState, root string, g *generation, an *analysis, view, input string) (*viewGen, error) {
	start := time.Now()
	dec := an.decisions(rp.cfg.Compat, view)
	// The analysis already scanned primary.xml: the plan comes from it.
	var decided []metadata.PlannedPackage
	for _, p := range an.pkgs {
		if d, ok := dec[p.pkgid]; ok && d.Action != metadata.ActionNone && d.Action != "" {
			decided = append(decided, metadata.PlannedPackage{ID: p.id, PkgID: p.pkgid, Decision: d})
		}
	}
	plan, err := metadata.PlanOf(an.total, decided)
	if err != nil {
		return nil, err
	}
	idHash := sha256.Sum256([]byte(input))
	keyBase := nsView + rp.name + "/" + root + view + "/" + hex.EncodeToString(idHash[:8]) + "/"
	vg := &viewGen{Input: input, Base: an.base, Files: map[string]viewFile{}, Created: time.Now()}
	replaced := map[string]metadata.FileInfo{}

	// write stores one rewritten file and records where it is served.
	write := func(typ, origHref string, fill func(w io.Writer) (metadata.FileInfo, error)) error {
		key := keyBase + typ
		w, err := s.store.Create(ctx, key, cache.Meta{ContentType: contentType(origHref)})
		if err != nil {
			return err
		}
		defer w.Cancel()
		info, err := fill(w)
		if err != nil {
			return fmt.Errorf("%s: %w", typ, err)
		}
		if err := w.Commit(ctx); err != nil {
			return err
		}
		replaced[typ] = info
		vg.Files[metadata.RewrittenHref(typ, origHref, info)] = viewFile{Key: key}
		return nil
	}
	for _, kind := range []metadata.FileKind{metadata.KindPrimary, metadata.KindFilelists, metadata.KindOther} {
		in, rec, err := s.openRecord(ctx, rp, root, g, string(kind))
		if errors.Is(err, cache.ErrNotFound) && kind != metadata.KindPrimary {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		err = write(string(kind), rec.Href, func(w io.Writer) (metadata.FileInfo, error) {
			res, err := plan.Rewrite(kind, in, metadata.CodecOf(rec.Href), w, outputCodec(rec.Href), s.limits.decompressed)
			return res.FileInfo, err
		})
		in.Close()
		if err != nil {
			return nil, err
		}
	}
	if view == ViewFilter && plan.Filtered > 0 {
		if err := s.filterUpdateinfo(ctx, rp, root, g, dec, an, write); err != nil {
			return nil, err
		}
	}
	report, affected, err := s.viewReport(ctx, rp, root, g, an, view)
	if err != nil {
		return nil, err
	}
	var extra []metadata.ExtraRecord
	err = func() error {
		key := keyBase + "abi-divergence"
		w, err := s.store.Create(ctx, key, cache.Meta{ContentType: "application/gzip"})
		if err != nil {
			return err
		}
		defer w.Cancel()
		fw, err := metadata.NewFileWriter(w, metadata.Gzip)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(fw)
		enc.SetIndent("", " ")
		if err := enc.Encode(map[string]any{
			"repo": rp.name, "path": root, "view": view, "reference": rp.cfg.Compat.Reference,
			"rules_version": s.ruleSet().Version(), "packages": report, "affected": affected,
		}); err != nil {
			return err
		}
		if err := fw.Close(); err != nil {
			return err
		}
		if err := w.Commit(ctx); err != nil {
			return err
		}
		er := metadata.ExtraRecord{Type: "abi-divergence", Ext: ".json", Info: fw.Info()}
		extra = append(extra, er)
		vg.Files[er.Href()] = viewFile{Key: key}
		return nil
	}()
	if err != nil {
		return nil, fmt.Errorf("abi-divergence: %w", err)
	}
	if vg.Repomd, err = metadata.RewriteRepomd(g.Repomd, replaced, extra, nil); err != nil {
		return nil, err
	}
	// The records kept as they are point at upstream's verified files.
	for _, r := range g.md.Records {
		if _, ok := replaced[r.Type]; ok || metadata.DropDerived(r.Type) {
			continue
		}
		vg.Files[r.Href] = viewFile{Key: mdKey(rp.name, root+r.Href, r.Checksum.String()), Checksum: r.Checksum.String()}
	}
	signer, err := s.signerFor()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if vg.Signature, err = signer.Sign(vg.Repomd); err != nil {
		return nil, err
	}
	s.log.Info("view built", "repo", rp.name, "root", root, "view", view, "packages", plan.Packages,
		"annotated", plan.Annotated, "filtered", plan.Filtered, "duration_ms", time.Since(start).Milliseconds())
	return vg, nil
}

// filterUpdateinfo drops the filtered packages from the advisories.
func (s *Server) filterUpdateinfo(ctx context.Context, rp *repoState, root string, g *generation, dec map[string]metadata.Decision, an *analysis,
	write func(typ, origHref string, fill func(io.Writer) (metadata.FileInfo, error)) error) error {
	zr, rec, err := s.openContent(ctx, rp, root, g, "updateinfo")
	if errors.Is(err, cache.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer zr.Close()
	drop := map[string]bool{}
	for _, p := range an.pkgs {
		if dec[p.pkgid].Action == metadata.ActionFilter {
			drop[metadata.ModularKey(p.id)] = true
		}
	}
	return write("updateinfo", rec.Href, func(w io.Writer) (metadata.FileInfo, error) {
		fw, err := metadata.NewFileWriter(w, outputCodec(rec.Href))
		if err != nil {
			return metadata.FileInfo{}, err
		}
		if _, err := metadata.FilterUpdateinfo(zr, fw, func(id metadata.PackageID) bool { return drop[metadata.ModularKey(id)] }); err != nil {
			return metadata.FileInfo{}, err
		}
		if err := fw.Close(); err != nil {
			return metadata.FileInfo{}, err
		}
		return fw.Info(), nil
	})
}

// outputCodec keeps upstream's compression where the rewriter can write
// it (gz, xz, zstd) and uses gzip otherwise.
func outputCodec(href string) metadata.Codec {
	switch c := metadata.CodecOf(href); c {
	case metadata.Gzip, metadata.Xz, metadata.Zstd:
		return c
	}
	return metadata.Gzip
}

// serveView answers the metadata paths of a rewriting view: the rewritten
// repomd.xml, the proxy's signature and public key, and the files the
// view's current or previous repomd.xml lists.
func (s *Server) serveView(c *gin.Context, rp *repoState, view, rel, kind, root string) error {
	ctx := c.Request.Context()
	if kind == kindRepodata && strings.HasSuffix(rel, "/repomd.xml.key") || rel == "repodata/repomd.xml.key" {
		signer, err := s.signerFor()
		if err != nil {
			return err
		}
		serveMetadata(c, "repomd.xml.key", time.Time{}, signer.PublicKey())
		return nil
	}
	g, result, err := s.generationFor(ctx, rp, root, rp.ttl)
	if err != nil {
		return err
	}
	c.Set(logResult, result)
	vg, err := s.viewFor(ctx, rp, root, g, view)
	if err != nil {
		return fmt.Errorf("%w: %s view of %s/%s: %v", ErrUpstream, view, rp.name, root, err)
	}
	switch kind {
	case kindRepomd:
		serveMetadata(c, "repomd.xml", vg.Created, vg.Repomd)
		return nil
	case kindSignature:
		serveMetadata(c, "repomd.xml.asc", vg.Created, vg.Signature)
		return nil
	}
	href := rel[len(root):]
	for _, v := range append([]*viewGen{vg}, s.viewSlot(rp.name, root, view).all()...) {
		if v == nil {
			continue
		}
		f, ok := v.Files[href]
		if !ok {
			continue
		}
		obj, err := s.store.Get(ctx, f.Key)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNotFound, rel, err)
		}
		c.Set(logResult, resultHit)
		s.serveObject(c, obj, rel, immutable, rp.ttl)
		return nil
	}
	// Not a file of the view (a key or comps file beside repomd.xml).
	return s.serveRepodata(c, rp, rel, root)
}
