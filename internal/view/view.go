// Package view owns the rewriting views (annotate, filter) of every repo
// root: their builds, their persisted records, the analyses they derive
// from, and the signing key that signs their repomd.xml. It is a decorator
// over package repo: it reads generations through the same Repo and adds
// the rewritten files.
//
// Guarantees: a view is built in the background when its upstream
// generation switches, the rules change or the reference changes — never
// while a client waits for a file it already lists; until a new build is
// done the last good view is served; a root without any view waits for the
// first build, and when that fails the caller serves raw (ErrNoView); a
// served view's files stay pinned (Pins) and a listed file found missing
// is refetched or rebuilt (Repair); a signing-key change re-signs the
// persisted views before any is served.
package view

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/bg"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/keys"
	"github.com/dnfproxy/dnfproxy/internal/repo"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// The views that rewrite metadata.
const (
	Annotate = "annotate"
	Filter   = "filter"
	Raw      = "raw"
)

// format versions the rewritten output: bump it when the rewriter's output
// changes, so persisted views are rebuilt.
const format = "1"

// ErrNoView: no view of the root could be built yet; serve raw.
var ErrNoView = errors.New("view unavailable")

// Entry is one configured repo as the views see it.
type Entry struct {
	Repo   *repo.Repo
	Compat config.Compat
}

// Options configure the Views.
type Options struct {
	Store        cache.Store
	Log          *slog.Logger
	Repos        map[string]Entry
	KeyFile      string // signing.key_file
	StorageDir   string // where a generated key lives
	Decompressed int64  // decompressed-size limit
	// Limits bound the decoders' memory (xz dictionary, zstd window, XML
	// element); zero fields are the defaults.
	Limits metadata.Limits
	// BuildFailed is told about each failed build (metrics). May be nil.
	BuildFailed func(repo, view string)
	// Built is told about each finished build (metrics). May be nil.
	Built func(repo, view string)
}

// Gen is one generation's metadata rewritten for a view.
type Gen struct {
	Input     string          `json:"input"` // what it was built from
	Base      string          `json:"base"`  // sha256 of upstream's repomd.xml
	Repomd    []byte          `json:"repomd"`
	Signature []byte          `json:"signature"`
	KeyFP     string          `json:"key,omitempty"` // fingerprint of the signing key
	Files     map[string]File `json:"files"`         // href → stored object
	Created   time.Time       `json:"created"`
	Counts    map[string]int  `json:"counts,omitempty"` // packages with findings, by class

	sumOnce sync.Once
	sum     string // hex sha256 of Repomd
}

// Sum is the hex sha256 of the view's repomd.xml, computed once.
func (g *Gen) Sum() string {
	g.sumOnce.Do(func() {
		h := sha256.Sum256(g.Repomd)
		g.sum = hex.EncodeToString(h[:])
	})
	return g.sum
}

// File is where a view's listed file is stored.
type File struct {
	Key      string `json:"key"`
	Checksum string `json:"checksum,omitempty"` // "type:hex" of an upstream file kept as is
	Size     int64  `json:"size,omitempty"`     // of an upstream file kept as is
}

// slot holds a root's current view of one kind and the views it replaced
// (newest first): a client may still hold any of their repomd.xml files.
type slot struct {
	repo, root, view string

	mu      sync.Mutex
	cur     *Gen
	retired []*Gen
	pending map[string]bool // keys a running build wrote (pins)
	lastErr string
	errAt   time.Time
	failed  string // input of the last failed build (retried after failRetry)
}

// failRetry is how long a failed build's input is not tried again by
// background kicks.
const failRetry = time.Minute

// Retired views: the newest pinnedRetired keep their files pinned; up to
// maxRetired stay listed (their files served while the store still holds
// them: eviction decides, not this count), pruned once all their
// rewritten files are gone.
const (
	pinnedRetired = 3
	maxRetired    = 64
)

func (s *slot) all() []*Gen {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	return append([]*Gen{s.cur}, s.retired...)
}

func (s *slot) current() *Gen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

type record struct {
	Cur     *Gen   `json:"cur"`
	Retired []*Gen `json:"retired,omitempty"`
}

// Views owns every root's views.
type Views struct {
	opt     Options
	baseCtx context.Context

	rules atomic.Pointer[metadata.RuleSet]

	signerOnce sync.Once
	signer     *metadata.Signer
	signerErr  error

	mu       sync.Mutex
	slots    map[string]*slot // repo\x00root\x00view
	analyses map[string]*analysis
	early    map[string]*analysis   // made at a switch, not asked for yet (SwitchScan)
	refs     map[string]*refSummary // a reference's generation read at its switch (refSink)

	builds    singleflight.Group
	analyses1 singleflight.Group
	bg        bg.Group

	elf *elfLayer // the ELF symbol layer (elf.go)
}

// New loads the rules and the persisted views. When the signing key
// differs from the one a persisted view was signed with, the view is
// re-signed before anything is served.
func New(ctx context.Context, opt Options, rules *metadata.RuleSet) (*Views, error) {
	v := &Views{opt: opt, baseCtx: ctx, slots: map[string]*slot{}, analyses: map[string]*analysis{}, early: map[string]*analysis{}, refs: map[string]*refSummary{}, elf: newELFLayer(opt)}
	v.rules.Store(rules)
	if err := v.load(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// Wait waits for background builds (after the base context ends).
func (v *Views) Wait() { v.bg.Close() }

// Signer loads (or, once, generates) the signing key on first use.
func (v *Views) Signer() (*metadata.Signer, error) {
	v.signerOnce.Do(func() {
		v.signer, v.signerErr = metadata.LoadOrCreateSigner(v.opt.KeyFile, v.opt.StorageDir)
		if v.signerErr == nil {
			v.opt.Log.Info("signing key ready", "fingerprint", v.signer.Fingerprint())
		}
	})
	return v.signer, v.signerErr
}

func slotKey(repo, root, view string) string { return repo + "\x00" + root + "\x00" + view }

func (v *Views) slot(repo, root, view string) *slot {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := slotKey(repo, root, view)
	s, ok := v.slots[k]
	if !ok {
		s = &slot{repo: repo, root: root, view: view}
		v.slots[k] = s
	}
	return s
}

func (v *Views) slotList() []*slot {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]*slot, 0, len(v.slots))
	for _, s := range v.slots {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		return slotKey(out[i].repo, out[i].root, out[i].view) < slotKey(out[j].repo, out[j].root, out[j].view)
	})
	return out
}

// load reads every persisted view record and re-signs views whose key
// changed.
func (v *Views) load(ctx context.Context) error {
	for name := range v.opt.Repos {
		prefix := keys.ViewRec + name + "/"
		var ks []string
		if err := v.opt.Store.List(ctx, prefix, func(i cache.Info) error {
			ks = append(ks, i.Key)
			return nil
		}); err != nil {
			return err
		}
		for _, k := range ks {
			root, view, ok := cutLast(strings.TrimPrefix(k, prefix), "@")
			if !ok {
				continue
			}
			rec, err := v.readRecord(ctx, k)
			if err != nil {
				v.opt.Log.Warn("ignoring unreadable view record", "key", k, "err", err)
				continue
			}
			s := v.slot(name, root, view)
			s.cur, s.retired = rec.Cur, rec.Retired
			if err := v.resign(ctx, s); err != nil {
				return fmt.Errorf("re-signing the %s view of %s/%s: %w", view, name, root, err)
			}
		}
	}
	return nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func (v *Views) readRecord(ctx context.Context, key string) (*record, error) {
	obj, err := v.opt.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	var rec record
	if err := json.NewDecoder(obj).Decode(&rec); err != nil {
		return nil, err
	}
	if rec.Cur == nil {
		return nil, errors.New("no current view")
	}
	return &rec, nil
}

// resign signs a slot's views again when the key is not the one they were
// signed with, and persists the record.
func (v *Views) resign(ctx context.Context, s *slot) error {
	gens := s.all()
	if len(gens) == 0 {
		return nil
	}
	signer, err := v.Signer()
	if err != nil {
		return err
	}
	fp := signer.Fingerprint()
	changed := false
	for _, g := range gens {
		if g.KeyFP == fp {
			continue
		}
		sig, err := signer.Sign(g.Repomd)
		if err != nil {
			return err
		}
		s.mu.Lock()
		g.Signature, g.KeyFP = sig, fp
		s.mu.Unlock()
		changed = true
	}
	if !changed {
		return nil
	}
	v.opt.Log.Info("view re-signed with the current signing key", "repo", s.repo, "root", s.root, "view", s.view, "fingerprint", fp)
	return v.persist(ctx, s)
}

func (v *Views) persist(ctx context.Context, s *slot) error {
	s.mu.Lock()
	rec := record{Cur: s.cur, Retired: slices.Clone(s.retired)}
	data, err := json.Marshal(rec)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return repo.PutSmall(ctx, v.opt.Store, keys.ViewRecKey(s.repo, s.root, s.view), data, "application/json")
}

// Rules returns the rule set in force.
func (v *Views) Rules() *metadata.RuleSet { return v.rules.Load() }

// SetRules puts a new rule set in force. Views are rebuilt in the
// background; clients keep the previous views until the new ones are done.
func (v *Views) SetRules(rs *metadata.RuleSet) {
	old := v.rules.Swap(rs)
	if old != nil && old.Version() == rs.Version() {
		return
	}
	for _, s := range v.slotList() {
		v.kick(s)
	}
}

// Switched is repo's OnSwitch: the views of the root, and the views of
// repos that use this repo as their reference or as a debuginfo repo, are
// rebuilt in the background.
func (v *Views) Switched(name, root string) {
	e, ok := v.opt.Repos[name]
	if !ok {
		return
	}
	if mode := string(e.Compat.Mode); mode == Annotate || mode == Filter {
		v.slot(name, root, mode) // the repo's own mode is always in use
	}
	for _, s := range v.slotList() {
		if s.root != root {
			continue
		}
		user := v.opt.Repos[s.repo]
		switch {
		case s.repo == name || user.Compat.Reference == name:
			v.kick(s)
		case v.givesDebuginfo(user, name):
			// A new generation of a debuginfo repo is a new analysis of
			// the repos that give it to abipkgdiff.
			v.elfRefresh(s)
		}
	}
}

// Get returns the view to serve for a root and the cache result of the
// underlying generation. A view whose inputs changed is served while its
// successor is built in the background; only a root without any view waits
// for a build. ErrNoView when none can be built.
func (v *Views) Get(ctx context.Context, name, root, view string) (*Gen, string, error) {
	e, ok := v.opt.Repos[name]
	if !ok {
		return nil, "", fmt.Errorf("no repo %q", name)
	}
	s := v.slot(name, root, view)
	g, result, err := e.Repo.Current(ctx, root)
	cur := s.current()
	if err != nil {
		if cur != nil {
			return cur, repo.ResultStale, nil
		}
		return nil, result, err
	}
	in, err := v.inputFor(ctx, e, root, g, view, cur != nil)
	if err != nil {
		if cur != nil {
			return cur, result, nil
		}
		return nil, result, fmt.Errorf("%w: %v", ErrNoView, err)
	}
	if cur != nil {
		if cur.Input != in.key {
			v.kick(s)
		}
		return cur, result, nil
	}
	vg, err := v.build(ctx, s, e, g, in)
	if err != nil {
		return nil, result, fmt.Errorf("%w: %v", ErrNoView, err)
	}
	return vg, result, nil
}

// kick rebuilds a slot's view in the background from the root's current
// generation, joining a build of the same input that already runs.
func (v *Views) kick(s *slot) { v.rebuildLater(s, "") }

// rebuildLater builds a slot's view in the background unless it is up to
// date (or its input failed less than failRetry ago). flight is added to
// the singleflight key: a caller that must not join a build started
// earlier (after an ELF pass) gives one of its own.
func (v *Views) rebuildLater(s *slot, flight string) {
	if v.baseCtx.Err() != nil {
		return
	}
	e, ok := v.opt.Repos[s.repo]
	if !ok {
		return
	}
	v.bg.Go(func() {
		ctx := v.baseCtx
		g, _ := e.Repo.Generations(s.root)
		if g == nil {
			return
		}
		in, err := v.inputFor(ctx, e, s.root, g, s.view, false)
		if err == nil {
			s.mu.Lock()
			skip := s.cur != nil && s.cur.Input == in.key ||
				s.failed == in.key && time.Since(s.errAt) < failRetry
			s.mu.Unlock()
			if skip {
				return
			}
			_, err = v.buildAs(ctx, s, e, g, in, in.key+flight)
		}
		if err != nil && ctx.Err() == nil {
			v.opt.Log.Warn("building view failed; the last good view stays in service",
				"repo", s.repo, "root", s.root, "view", s.view, "err", err)
		}
	})
}

// input is what a view is built from.
type input struct {
	key    string // hash of everything below and the view
	anKey  string // the analysis' part of it
	anHash string // anKey without the ELF layer's status
	elf    bool   // the ELF symbol layer runs for the repo
	base   string
	refGen *repo.Generation
	rules  *metadata.RuleSet
	view   string
}

// inputFor computes a view's input. The reference generation comes from
// what the reference repo holds; when it holds nothing yet and wait is
// false, it is fetched (a first build).
func (v *Views) inputFor(ctx context.Context, e Entry, root string, g *repo.Generation, view string, haveView bool) (input, error) {
	rs := v.Rules()
	c := e.Compat
	h := sha256.New()
	base := g.Sum()
	fmt.Fprintf(h, "%s|%s|%v|%v|%s", base, rs.Version(), c.Annotate, c.Filter, c.Reference)
	if len(c.VendorMarkers) > 0 {
		fmt.Fprintf(h, "|markers:%q", c.VendorMarkers)
	}
	in := input{base: base, rules: rs, view: view}
	if c.Reference != "" {
		ref, ok := v.opt.Repos[c.Reference]
		if !ok {
			return input{}, fmt.Errorf("reference repo %q is not configured", c.Reference)
		}
		rg, _ := ref.Repo.Generations(root)
		if rg == nil {
			if haveView {
				// Do not hold a client for the reference: fetch it in the
				// background; the view follows when it arrives.
				v.bg.Go(func() { ref.Repo.Current(v.baseCtx, root) })
				return input{}, errors.New("reference not fetched yet")
			}
			var err error
			if rg, _, err = ref.Repo.Current(ctx, root); err != nil {
				return input{}, fmt.Errorf("reference repo %s/%s: %w", c.Reference, root, err)
			}
		}
		in.refGen = rg
		fmt.Fprintf(h, "|%s", rg.Sum())
	}
	in.anHash = hex.EncodeToString(h.Sum(nil))
	in.anKey = in.anHash
	if in.refGen != nil && elfOn(e) {
		in.elf = true
		in.anKey += v.elfStatus(e, root, base, in.refGen.Sum())
	}
	in.key = in.anKey + "|" + view + "|" + format
	return in, nil
}

// withAnalysis is the input of a view built from an analysis whose input
// differs from the one asked (an analysis that left ELF comparisons to a
// background pass says so in its input).
func (in input) withAnalysis(an *analysis) input {
	if an.input != in.anKey {
		in.anKey = an.input
		in.key = in.anKey + "|" + in.view + "|" + format
	}
	return in
}

// build builds a view (once, however many callers ask) and installs it.
func (v *Views) build(ctx context.Context, s *slot, e Entry, g *repo.Generation, in input) (*Gen, error) {
	return v.buildAs(ctx, s, e, g, in, in.key)
}

// buildAs is build under a singleflight key of its own (a repair must not
// join a build that started before the files were lost).
func (v *Views) buildAs(ctx context.Context, s *slot, e Entry, g *repo.Generation, in input, flight string) (*Gen, error) {
	ch := v.builds.DoChan(slotKey(s.repo, s.root, s.view)+"\x00"+flight, func() (any, error) {
		if !v.bg.Enter() {
			return nil, context.Canceled // shutting down
		}
		defer v.bg.Leave()
		bctx, cancel := context.WithTimeout(v.baseCtx, 30*time.Minute)
		defer cancel()
		an, err := v.analysisFor(bctx, s.repo, e, s.root, g, in)
		if err == nil {
			var vg *Gen
			in := in.withAnalysis(an)
			if vg, err = v.buildView(bctx, s, e, g, an, in); err == nil {
				if v.superseded(bctx, s, e, vg) {
					// A build of a later input finished first (a slow
					// build of an older generation, rules or ELF
					// status): the slot keeps it.
					s.mu.Lock()
					s.pending = nil
					s.mu.Unlock()
					return vg, nil
				}
				v.install(bctx, s, vg)
				if v.opt.Built != nil {
					v.opt.Built(s.repo, s.view)
				}
				if an.elfPartial && !v.elfPending(s.repo, s.root, in.base, in.refGen.Sum()) {
					v.elfRefresh(s) // the pass ended while this view was built
				}
				return vg, nil
			}
		}
		s.mu.Lock()
		s.lastErr, s.errAt, s.failed = err.Error(), time.Now(), in.key
		s.pending = nil
		s.mu.Unlock()
		if v.opt.BuildFailed != nil {
			v.opt.BuildFailed(s.repo, s.view)
		}
		return nil, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Gen), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// superseded reports whether the slot already serves the view of the
// root's current input, so that installing vg, built from another input,
// would move it back.
func (v *Views) superseded(ctx context.Context, s *slot, e Entry, vg *Gen) bool {
	cur := s.current()
	if cur == nil || cur.Input == vg.Input {
		return false
	}
	g, _ := e.Repo.Generations(s.root)
	if g == nil {
		return false
	}
	in, err := v.inputFor(ctx, e, s.root, g, s.view, true)
	return err == nil && in.key == cur.Input
}

func (v *Views) install(ctx context.Context, s *slot, vg *Gen) {
	s.mu.Lock()
	if s.cur != nil && s.cur.Input != vg.Input {
		s.retired = append([]*Gen{s.cur}, s.retired...)
	}
	retired := slices.Clone(s.retired)
	s.mu.Unlock()
	kept := retired[:0]
	for i, g := range retired {
		if i < pinnedRetired || i < maxRetired && v.anyStored(ctx, g) {
			kept = append(kept, g)
		}
	}
	s.mu.Lock()
	s.retired = kept
	s.cur = vg
	s.pending = nil
	s.lastErr = ""
	s.mu.Unlock()
	if err := v.persist(ctx, s); err != nil {
		level := slog.LevelWarn
		if v.baseCtx.Err() != nil && errors.Is(err, context.Canceled) {
			// Shutting down: the record on disk stays the previous view's,
			// whose files are kept, and the next start rebuilds this one.
			level = slog.LevelDebug
		}
		v.opt.Log.Log(ctx, level, "saving view record failed", "repo", s.repo, "root", s.root, "view", s.view, "err", err)
	}
}

// anyStored reports whether the store still holds a rewritten file of g.
func (v *Views) anyStored(ctx context.Context, g *Gen) bool {
	for _, f := range g.Files {
		if f.Checksum != "" {
			continue // upstream's file, the generations' to keep
		}
		if _, err := v.opt.Store.Stat(ctx, f.Key); err == nil {
			return true
		}
	}
	return false
}

// BuildNow brings the views in use of a root up to date with its current
// generation and waits for them (an explicit refresh).
func (v *Views) BuildNow(ctx context.Context, name, root string) error {
	e, ok := v.opt.Repos[name]
	if !ok {
		return fmt.Errorf("no repo %q", name)
	}
	g, _ := e.Repo.Generations(root)
	if g == nil {
		return nil
	}
	var errs []error
	for _, s := range v.slotList() {
		if s.repo != name || s.root != root {
			continue
		}
		in, err := v.inputFor(ctx, e, root, g, s.view, false)
		if err == nil && (s.current() == nil || s.current().Input != in.key) {
			_, err = v.build(ctx, s, e, g, in)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s view: %w", s.view, err))
		}
	}
	return errors.Join(errs...)
}

// Lookup finds a listed file in a root's current or retired views, without
// touching upstream.
func (v *Views) Lookup(name, root, view, href string) (File, bool) {
	v.mu.Lock()
	s := v.slots[slotKey(name, root, view)]
	v.mu.Unlock()
	if s == nil {
		return File{}, false
	}
	for _, g := range s.all() {
		if f, ok := g.Files[href]; ok {
			return f, true
		}
	}
	return File{}, false
}

// Repair brings back a listed file that is missing from the store: an
// upstream file kept as is is fetched again (verified); a rewritten file
// is rebuilt from the same inputs (the rewriter's output is deterministic,
// so it lands under the same name and checksum). It returns the file's
// store key.
func (v *Views) Repair(ctx context.Context, name, root, view, href string) (string, error) {
	f, ok := v.Lookup(name, root, view, href)
	if !ok {
		return "", cache.ErrNotFound
	}
	e := v.opt.Repos[name]
	if f.Checksum != "" {
		typ, val, _ := strings.Cut(f.Checksum, ":")
		sum, err := metadata.NewChecksum(typ, val)
		if err != nil {
			return "", err
		}
		rec := metadata.Record{Href: href, Checksum: sum, Size: f.Size}
		if f.Size == 0 {
			rec.Size = -1
		}
		obj, err := e.Repo.OpenRecord(ctx, root, rec)
		if err != nil {
			return "", err
		}
		obj.Close()
		return f.Key, nil
	}
	s := v.slot(name, root, view)
	g, _ := e.Repo.Generations(root)
	if g == nil {
		return "", cache.ErrNotFound
	}
	in, err := v.inputFor(ctx, e, root, g, view, false)
	if err != nil {
		return "", err
	}
	v.opt.Log.Warn("a file the view lists is missing; rebuilding the view", "repo", name, "root", root, "view", view, "file", href)
	vg, err := v.rebuild(ctx, s, e, g, in)
	if err != nil {
		return "", err
	}
	nf, ok := vg.Files[href]
	if !ok {
		return "", fmt.Errorf("%w: %s is not in the rebuilt view", cache.ErrNotFound, href)
	}
	return nf.Key, nil
}

// rebuild builds a view even when its input did not change (its files
// were lost).
func (v *Views) rebuild(ctx context.Context, s *slot, e Entry, g *repo.Generation, in input) (*Gen, error) {
	return v.buildAs(ctx, s, e, g, in, in.key+"|repair@"+time.Now().Format(time.RFC3339Nano))
}

// Pins lists the store keys the views need: every view record and every
// file of the current and retired views, and what running builds wrote.
func (v *Views) Pins(add func(key string)) {
	for _, s := range v.slotList() {
		s.mu.Lock()
		if s.cur != nil {
			add(keys.ViewRecKey(s.repo, s.root, s.view))
			for _, g := range append([]*Gen{s.cur}, s.retired[:min(len(s.retired), pinnedRetired)]...) {
				for _, f := range g.Files {
					add(f.Key)
				}
			}
		}
		for k := range s.pending {
			add(k)
		}
		s.mu.Unlock()
	}
	v.elfPins(add)
}

// Forget drops the views and analyses of a repo's roots under prefix (a
// purge).
func (v *Views) Forget(name, prefix string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, s := range v.slots {
		if s.repo == name && strings.HasPrefix(s.root, prefix) {
			delete(v.slots, k)
		}
	}
	for k := range v.analyses {
		if r, rest, _ := strings.Cut(k, "\x00"); r == name && strings.HasPrefix(rest, prefix) {
			delete(v.analyses, k)
		}
	}
	for k := range v.early {
		if r, rest, _ := strings.Cut(k, "\x00"); r == name && strings.HasPrefix(rest, prefix) {
			delete(v.early, k)
		}
	}
	for k := range v.refs {
		if r, rest, _ := strings.Cut(k, "\x00"); r == name && strings.HasPrefix(rest, prefix) {
			delete(v.refs, k)
		}
	}
	v.elfForget(name, prefix)
}

// Status is what the admin API shows of a view.
type Status struct {
	Repo, Root, View string
	Created          time.Time
	// Input names what the current view was built from (the generations,
	// rules and analysis it rewrites with); empty before the first build.
	Input       string
	LastError   string
	LastErrorAt time.Time
}

// Statuses lists the views in use.
func (v *Views) Statuses() []Status {
	var out []Status
	for _, s := range v.slotList() {
		s.mu.Lock()
		st := Status{Repo: s.repo, Root: s.root, View: s.view, LastError: s.lastErr, LastErrorAt: s.errAt}
		if s.cur != nil {
			st.Created, st.Input = s.cur.Created, s.cur.Input
		}
		s.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// Divergent counts, per repo and class, the packages with findings in the
// current views of the repo's roots (one view per root), from the
// persisted records: right after a restart too.
func (v *Views) Divergent() map[string]map[string]int {
	out := map[string]map[string]int{}
	seen := map[string]bool{}
	for _, s := range v.slotList() {
		cur := s.current()
		if cur == nil || seen[s.repo+"\x00"+s.root] {
			continue
		}
		seen[s.repo+"\x00"+s.root] = true
		if out[s.repo] == nil {
			out[s.repo] = map[string]int{}
		}
		for class, n := range cur.Counts {
			out[s.repo][class] += n
		}
	}
	return out
}
