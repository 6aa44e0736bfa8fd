package abi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// Version is the analyser's version, part of every result key: bump it
// when a change to this package changes verdicts, so old results are not
// reused.
const Version = "elf-1"

// ErrNoChecksum is returned for a package without a checksum: results are
// keyed by checksums.
var ErrNoChecksum = errors.New("package has no checksum")

// KV stores analysis results; the lead backs it with badger. Get returns
// ok=false for a missing key. Both may be called concurrently.
type KV interface {
	Get(key []byte) (value []byte, ok bool, err error)
	Put(key, value []byte) error
}

// PackageRef names one RPM of a repo.
type PackageRef struct {
	metadata.PackageID
	Checksum metadata.Checksum
	Href     string // location relative to its repo root
}

// Opener returns the bytes of an RPM (through the cache, verified).
type Opener func(ctx context.Context, ref PackageRef) (io.ReadCloser, error)

// Options configure an Analyzer.
type Options struct {
	Concurrency int // package pairs analysed at once; default 2
	// Results is where pair results ("abi/<version>/<old>/<new>") and
	// package interfaces ("abipkg/<version>/<checksum>") persist; nil keeps
	// pair results in memory only.
	Results KV
	Version string // analyser version in result keys; default Version
	Limits  Limits
	Logger  *slog.Logger // default slog.Default()
}

// Stats count the work an Analyzer did.
type Stats struct {
	Analysed     int64 // pairs compared by reading their RPMs
	Reused       int64 // pairs answered from stored results
	PackagesRead int64 // RPMs scanned
	// PackagesReused counts package interfaces taken from the KV instead
	// of reading the RPM again (only with Options.Results).
	PackagesReused int64
	PayloadBytes   int64 // uncompressed payload bytes scanned
}

// Analyzer compares package pairs with bounded concurrency and remembers
// the results. Its methods may be called concurrently.
type Analyzer struct {
	opts      Options
	sem       chan struct{}
	flight    singleflight.Group
	mu        sync.Mutex
	mem       map[string][]byte // results when Options.Results is nil
	analyse   atomic.Int64
	reused    atomic.Int64
	read      atomic.Int64
	pkgReused atomic.Int64
	bytes     atomic.Int64
}

// NewAnalyzer returns an Analyzer.
func NewAnalyzer(opts Options) *Analyzer {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	if opts.Version == "" {
		opts.Version = Version
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Analyzer{opts: opts, sem: make(chan struct{}, opts.Concurrency), mem: map[string][]byte{}}
}

// Stats returns the work done so far.
func (a *Analyzer) Stats() Stats {
	return Stats{Analysed: a.analyse.Load(), Reused: a.reused.Load(), PackagesRead: a.read.Load(), PackagesReused: a.pkgReused.Load(), PayloadBytes: a.bytes.Load()}
}

// resultKey is "abi/<version>/<old checksum>/<new checksum>".
func (a *Analyzer) resultKey(old, nw PackageRef) []byte {
	return []byte("abi/" + a.opts.Version + "/" + old.Checksum.String() + "/" + nw.Checksum.String())
}

// storedResult is what the KV holds for a pair.
type storedResult struct {
	Old      string             `json:"old"`
	New      string             `json:"new"`
	Findings []metadata.Finding `json:"findings"`
}

// ComparePair compares the exported ELF interface of nw with old (the
// reference build) and returns the findings (nil when the interfaces
// agree). A pair analysed before, by this Analyzer or one sharing its KV
// and version, is answered from the stored result without opening either
// package. Concurrent calls for the same pair share one analysis; at most
// Options.Concurrency analyses run at once.
func (a *Analyzer) ComparePair(ctx context.Context, old, nw PackageRef, open Opener) ([]metadata.Finding, error) {
	if old.Checksum.Value == "" || nw.Checksum.Value == "" {
		return nil, fmt.Errorf("%w: %s or %s", ErrNoChecksum, old.NEVRA(), nw.NEVRA())
	}
	if old.Checksum == nw.Checksum {
		return nil, nil // the same file
	}
	key := a.resultKey(old, nw)
	if fs, ok, err := a.load(key); err != nil || ok {
		if ok {
			a.reused.Add(1)
		}
		return fs, err
	}
	v, err, _ := a.flight.Do(string(key), func() (any, error) {
		if fs, ok, err := a.load(key); err != nil || ok {
			if ok {
				a.reused.Add(1)
			}
			return fs, err
		}
		select {
		case a.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-a.sem }()
		fs, err := a.analysePair(ctx, old, nw, open)
		if err != nil {
			return nil, err
		}
		a.analyse.Add(1)
		b, err := json.Marshal(storedResult{Old: old.NEVRA(), New: nw.NEVRA(), Findings: fs})
		if err != nil {
			return nil, err
		}
		if err := a.store(key, b); err != nil {
			return nil, fmt.Errorf("storing the result of %s: %w", nw.NEVRA(), err)
		}
		return fs, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]metadata.Finding), nil
}

func (a *Analyzer) load(key []byte) ([]metadata.Finding, bool, error) {
	var b []byte
	if a.opts.Results != nil {
		v, ok, err := a.opts.Results.Get(key)
		if err != nil || !ok {
			return nil, false, err
		}
		b = v
	} else {
		a.mu.Lock()
		v, ok := a.mem[string(key)]
		a.mu.Unlock()
		if !ok {
			return nil, false, nil
		}
		b = v
	}
	var r storedResult
	if err := json.Unmarshal(b, &r); err != nil {
		// A damaged record is analysed again, not trusted.
		a.opts.Logger.Warn("abi: unreadable stored result; analysing again", "key", string(key), "err", err)
		return nil, false, nil
	}
	return r.Findings, true, nil
}

func (a *Analyzer) store(key, value []byte) error {
	if a.opts.Results != nil {
		return a.opts.Results.Put(key, value)
	}
	a.mu.Lock()
	a.mem[string(key)] = value
	a.mu.Unlock()
	return nil
}

func (a *Analyzer) analysePair(ctx context.Context, old, nw PackageRef, open Opener) ([]metadata.Finding, error) {
	ref, err := a.scan(ctx, old, open)
	if err != nil {
		return nil, err
	}
	cur, err := a.scan(ctx, nw, open)
	if err != nil {
		return nil, err
	}
	fs := Diff(ref, cur)
	a.opts.Logger.Debug("abi: pair analysed", "old", old.NEVRA(), "new", nw.NEVRA(), "findings", len(fs))
	return fs, nil
}

// scan returns a package's interface: from the KV when this analyser
// version read the same file before (a reference build is paired with every
// new build of its name.arch), else by reading it, and then stores it.
func (a *Analyzer) scan(ctx context.Context, ref PackageRef, open Opener) (*PackageABI, error) {
	var key []byte
	if a.opts.Results != nil {
		key = []byte("abipkg/" + a.opts.Version + "/" + ref.Checksum.String())
		if b, ok, err := a.opts.Results.Get(key); err != nil {
			return nil, err
		} else if ok {
			var p PackageABI
			if err := json.Unmarshal(b, &p); err == nil {
				a.pkgReused.Add(1)
				return &p, nil
			}
			a.opts.Logger.Warn("abi: unreadable stored package interface; reading the package again", "key", string(key))
		}
	}
	rc, err := open(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", ref.NEVRA(), err)
	}
	defer rc.Close()
	p, err := ScanRPM(ctx, rc, a.opts.Limits)
	a.read.Add(1)
	if p != nil {
		a.bytes.Add(p.PayloadBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref.NEVRA(), err)
	}
	if err := a.putSource(ref, p.SourceRPM); err != nil {
		return nil, err
	}
	if key != nil {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		if err := a.opts.Results.Put(key, b); err != nil {
			return nil, fmt.Errorf("storing the interface of %s: %w", ref.NEVRA(), err)
		}
	}
	return p, nil
}

// Pair is two builds of one name.arch: Old from the reference repo and New
// from the repo checked against it.
type Pair struct {
	Old, New PackageRef
}

// CompareAll runs ComparePair for every pair, Options.Concurrency at a
// time, and calls fn with each result (from several goroutines at once). It
// stops early only when ctx is cancelled.
func (a *Analyzer) CompareAll(ctx context.Context, pairs []Pair, open Opener, fn func(Pair, []metadata.Finding, error)) error {
	var g errgroup.Group
	g.SetLimit(a.opts.Concurrency)
	for _, p := range pairs {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			fs, err := a.ComparePair(ctx, p.Old, p.New, open)
			fn(p, fs, err)
			return nil
		})
	}
	g.Wait()
	return ctx.Err()
}

// Pairs returns the package pairs worth an ELF comparison: for every
// package of cur whose name.arch is in ref, the reference build it is
// compared with (the one of the same EVR once vendor markers are stripped,
// else the newest, as metadata.CompareWith picks it), when either side
// provides a shared-library soname and the two files differ. markers nil
// means the built-in ones. The result is sorted by the new package's NEVRA.
func Pairs(ref, cur []metadata.PackageDeps, markers *metadata.VendorMarkers) []Pair {
	if markers == nil {
		markers = metadata.DefaultVendorMarkers()
	}
	// Keyed by the pair, not "name.arch": name "a.b" arch "c" is not name
	// "a" arch "b.c" (metadata.Reference keys the same way).
	type nameArch struct{ name, arch string }
	byKey := map[nameArch][]metadata.PackageDeps{}
	for _, p := range ref {
		k := nameArch{p.Name, p.Arch}
		byKey[k] = append(byKey[k], p)
	}
	for _, list := range byKey {
		sort.SliceStable(list, func(i, j int) bool {
			return metadata.CompareEVR(list[i].ID().EVR(), list[j].ID().EVR()) > 0
		})
	}
	var out []Pair
	for _, p := range cur {
		builds := byKey[nameArch{p.Name, p.Arch}]
		if len(builds) == 0 {
			continue
		}
		ids := make([]metadata.ABIPackage, len(builds))
		for i, b := range builds {
			ids[i] = metadata.ABIPackage{PackageID: b.ID()}
		}
		// The reference build is chosen by metadata's rule, so the ELF
		// layer compares with the build the metadata comparison used.
		m, _ := metadata.MatchReference(p.ID(), ids, markers)
		base := builds[slices.IndexFunc(ids, func(b metadata.ABIPackage) bool { return b.PackageID == m.PackageID })]
		if base.Checksum == p.Checksum || !(providesSoname(base) || providesSoname(p)) {
			continue
		}
		out = append(out, Pair{Old: refOf(base), New: refOf(p)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].New.NEVRA() < out[j].New.NEVRA() })
	return out
}

func providesSoname(p metadata.PackageDeps) bool {
	for _, pr := range p.ABIProvides {
		if strings.Contains(pr.Name, ".so") {
			return true
		}
	}
	return false
}

func refOf(p metadata.PackageDeps) PackageRef {
	return PackageRef{PackageID: p.ID(), Checksum: p.Checksum, Href: p.Href}
}
