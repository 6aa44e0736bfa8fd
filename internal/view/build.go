package view

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/keys"
	"github.com/dnfproxy/dnfproxy/internal/repo"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// rewriters is how many files a build rewrites at once. Each rewrite runs
// its decoder, scanner and encoder on goroutines of their own, so two keep
// two cores busy; a third adds memory (its buffers, and larger batches in
// the store) more than speed.
const rewriters = 2

// buildView rewrites a generation's metadata for a view and stores the
// files. Nothing is visible until the caller installs the result.
func (v *Views) buildView(ctx context.Context, sl *slot, e Entry, g *repo.Generation, an *analysis, in input) (*Gen, error) {
	root, view := sl.root, sl.view
	start := time.Now()
	dec := an.decisions(e.Compat, view)
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
	idHash := sha256.Sum256([]byte(in.key))
	build := hex.EncodeToString(idHash[:8])
	vg := &Gen{Input: in.key, Base: an.base, Files: map[string]File{}, Created: time.Now(), Counts: an.counts()}
	// newKey names a file of this build and pins it until the build is
	// installed or given up.
	newKey := func(typ string) string {
		key := keys.ViewFileKey(sl.repo, root, view, build, typ)
		sl.mu.Lock()
		if sl.pending == nil {
			sl.pending = map[string]bool{}
		}
		sl.pending[key] = true
		sl.mu.Unlock()
		return key
	}
	replaced := map[string]metadata.FileInfo{}
	var filesMu sync.Mutex // replaced, vg.Files: the rewrites run in parallel

	// write stores one rewritten file and records where it is served.
	write := func(typ, origHref string, fill func(w io.Writer) (metadata.FileInfo, error)) error {
		key := newKey(typ)
		w, err := v.opt.Store.Create(ctx, key, cache.Meta{ContentType: keys.ContentType(origHref)})
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
		filesMu.Lock()
		replaced[typ] = info
		vg.Files[metadata.RewrittenHref(typ, origHref, info)] = File{Key: key}
		filesMu.Unlock()
		return nil
	}
	// The package files are independent given the plan: they are
	// rewritten in parallel. Without filtered packages, filelists, other
	// and filelists-ext would come out with the same content (annotations
	// go to primary.xml only, the counts do not change): upstream's files
	// are served as they are instead.
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(rewriters)
	for _, kind := range metadata.PackageKinds() {
		if kind != metadata.KindPrimary && plan.Filtered == 0 {
			continue
		}
		eg.Go(func() error {
			src, rec, err := e.Repo.Open(ectx, root, g, string(kind))
			if errors.Is(err, cache.ErrNotFound) && kind != metadata.KindPrimary {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", kind, err)
			}
			defer src.Close()
			return write(string(kind), rec.Href, func(w io.Writer) (metadata.FileInfo, error) {
				res, err := plan.RewriteWithin(v.opt.Limits, kind, src, metadata.CodecOf(rec.Href), w, outputCodec(rec.Href), v.opt.Decompressed)
				return res.FileInfo, err
			})
		})
	}
	if view == Filter && plan.Filtered > 0 {
		eg.Go(func() error { return filterUpdateinfo(ectx, v.opt.Limits, e, root, g, dec, an, write) })
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	report, affected, err := viewReport(ctx, e, root, g, an, view)
	if err != nil {
		return nil, err
	}
	var groups []metadata.CompsGroup
	if view == Filter && plan.Filtered > 0 {
		if groups, err = v.filterComps(ctx, e, root, g, dec, affected, write); err != nil {
			return nil, err
		}
	}
	var extra []metadata.ExtraRecord
	err = func() error {
		key := newKey("abi-divergence")
		w, err := v.opt.Store.Create(ctx, key, cache.Meta{ContentType: "application/gzip"})
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
			"repo": sl.repo, "path": root, "view": view, "reference": e.Compat.Reference,
			"rules_version": in.rules.Version(), "packages": report, "affected": affected,
			"affected_groups": groups,
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
		vg.Files[er.Href()] = File{Key: key}
		return nil
	}()
	if err != nil {
		return nil, fmt.Errorf("abi-divergence: %w", err)
	}
	if vg.Repomd, err = metadata.RewriteRepomd(g.Repomd, replaced, extra, nil); err != nil {
		return nil, err
	}
	// The records kept as they are point at upstream's verified files.
	for _, r := range g.MD().Records {
		if _, ok := replaced[r.Type]; ok || metadata.DropDerived(r.Type) {
			continue
		}
		vg.Files[r.Href] = File{Key: keys.MDKey(sl.repo, root+r.Href, r.Checksum.String()), Checksum: r.Checksum.String(), Size: r.Size}
	}
	signer, err := v.Signer()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	vg.KeyFP = signer.Fingerprint()
	if vg.Signature, err = signer.Sign(vg.Repomd); err != nil {
		return nil, err
	}
	v.opt.Log.Info("view built", "repo", sl.repo, "root", root, "view", view, "packages", plan.Packages,
		"annotated", plan.Annotated, "filtered", plan.Filtered, "duration_ms", time.Since(start).Milliseconds())
	return vg, nil
}

// filterUpdateinfo drops the filtered packages from the advisories.
func filterUpdateinfo(ctx context.Context, limits metadata.Limits, e Entry, root string, g *repo.Generation, dec map[string]metadata.Decision, an *analysis,
	write func(typ, origHref string, fill func(io.Writer) (metadata.FileInfo, error)) error) error {
	zr, rec, err := e.Repo.OpenContent(ctx, root, g, "updateinfo")
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
		if _, err := limits.FilterUpdateinfo(zr, fw, func(id metadata.PackageID) bool { return drop[metadata.ModularKey(id)] }); err != nil {
			return metadata.FileInfo{}, err
		}
		if err := fw.Close(); err != nil {
			return metadata.FileInfo{}, err
		}
		return fw.Info(), nil
	})
}

// filterComps rewrites every comps record (group, group_gz, group_xz...)
// without the packages the filter view makes uninstallable: the filtered
// ones, and the kept ones whose requirements only filtered packages
// satisfied. A name of which the view keeps an installable build stays.
// Each record keeps its codec. It returns the groups that lost packages.
func (v *Views) filterComps(ctx context.Context, e Entry, root string, g *repo.Generation, dec map[string]metadata.Decision,
	affected []AffectedPackage, write func(typ, origHref string, fill func(io.Writer) (metadata.FileInfo, error)) error) ([]metadata.CompsGroup, error) {
	var recs []metadata.Record
	for _, r := range g.MD().Records {
		if metadata.IsCompsRecord(r.Type) {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return nil, nil
	}
	broken := map[string]bool{} // NEVRA of kept packages left uninstallable
	for _, a := range affected {
		broken[a.NEVRA] = true
	}
	drop, keep := map[string]bool{}, map[string]bool{}
	err := e.Repo.ScanPackages(ctx, root, g, 0, func(_ string, _ bool, p *metadata.PackageDeps) error {
		if dec[p.Checksum.Value].Action == metadata.ActionFilter || broken[p.NEVRA()] {
			drop[p.Name] = true
		} else {
			keep[p.Name] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("comps: %w", err)
	}
	for name := range keep {
		delete(drop, name)
	}
	if len(drop) == 0 {
		return nil, nil
	}
	var groups []metadata.CompsGroup
	for i, rec := range recs {
		src, err := e.Repo.OpenRecord(ctx, root, rec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rec.Type, err)
		}
		err = write(rec.Type, rec.Href, func(w io.Writer) (metadata.FileInfo, error) {
			res, err := metadata.FilterComps(src, metadata.CodecOf(rec.Href), w, compsCodec(rec.Href), v.opt.Decompressed,
				func(name string) bool { return drop[name] })
			if i == 0 {
				groups = res.Groups
			}
			return res.FileInfo, err
		})
		src.Close()
		if err != nil {
			return nil, err
		}
	}
	return groups, nil
}

// compsCodec keeps a comps record's codec: plain comps.xml stays plain.
func compsCodec(href string) metadata.Codec {
	if metadata.CodecOf(href) == metadata.None {
		return metadata.None
	}
	return outputCodec(href)
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
