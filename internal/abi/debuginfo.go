package abi

// Debuginfo packages for the deep layer. abipkgdiff sees type-level
// changes (a struct that grows, a parameter added) only with the DWARF of
// both sides, which Fedora and EL ship apart: one "<source>-debuginfo" per
// build (EL7 and older: all of it; since rpm 4.14's debuginfo subpackages,
// the main package's files and the dwz multifile), plus one
// "<subpackage>-debuginfo" per binary subpackage. Each has the EVR and
// arch of the binaries. "<source>-debugsource" holds only sources, which
// abipkgdiff does not read.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// debuginfoSuffix ends the name of every debuginfo package.
const debuginfoSuffix = "-debuginfo"

// SourceName returns the name of a source package file name
// ("spice-0.12.4-19.el7.src.rpm" → "spice"), or "" when it is not one.
func SourceName(sourceRPM string) string {
	s, ok := strings.CutSuffix(sourceRPM, ".src.rpm")
	if !ok {
		if s, ok = strings.CutSuffix(sourceRPM, ".nosrc.rpm"); !ok {
			return ""
		}
	}
	for range 2 { // drop -release, then -version
		i := strings.LastIndexByte(s, '-')
		if i <= 0 {
			return ""
		}
		s = s[:i]
	}
	return s
}

// DebugRef is a debuginfo package and the repo that lists it.
type DebugRef struct {
	Repo string
	PackageRef
}

// DebugIndex finds the debuginfo packages of a build in a list of repos
// (in the configured order). Build it with Add, then only read it: its
// methods may then be called concurrently.
type DebugIndex struct {
	repos []string
	// byNEVRA: "name-[epoch:]version-release.arch" of a debuginfo
	// package → its copies, one per repo listing it, in repo order.
	byNEVRA map[string][]DebugRef
}

// NewDebugIndex returns an empty index over repos, in the order their
// packages are preferred.
func NewDebugIndex(repos []string) *DebugIndex {
	return &DebugIndex{repos: slices.Clone(repos), byNEVRA: map[string][]DebugRef{}}
}

// IsDebuginfo says whether a package is a debuginfo package.
func IsDebuginfo(name string) bool { return strings.HasSuffix(name, debuginfoSuffix) }

// Add records a package of a repo; packages other than debuginfo ones are
// ignored. Repos must be added in the index's order.
func (x *DebugIndex) Add(repo string, p metadata.Package) {
	if !IsDebuginfo(p.Name) {
		return
	}
	k := p.NEVRA()
	x.byNEVRA[k] = append(x.byNEVRA[k], DebugRef{Repo: repo, PackageRef: PackageRef{PackageID: p.ID(), Checksum: p.Checksum, Href: p.Href}})
}

// Len is the number of debuginfo packages indexed (copies counted once).
func (x *DebugIndex) Len() int { return len(x.byNEVRA) }

// Repos returns the repos searched, in order.
func (x *DebugIndex) Repos() []string { return slices.Clone(x.repos) }

// Find returns the debuginfo packages of one side's build: the package's
// own "<name>-debuginfo" and its source's "<source>-debuginfo" (one of
// them when the names agree), of the package's EVR and arch, and the NEVRAs
// looked for and not found. When several repos list the same NEVRA, the
// reference side (newSide false) takes the first repo's copy and the other
// side the last one's, so "rhel-debug, alma-debug" gives each side its
// own.
func (x *DebugIndex) Find(pkg metadata.PackageID, source string, newSide bool) (found []DebugRef, missing []string) {
	names := []string{pkg.Name + debuginfoSuffix}
	if source != "" && source != pkg.Name {
		names = append(names, source+debuginfoSuffix)
	}
	for _, n := range names {
		id := pkg
		id.Name = n
		k := id.NEVRA()
		copies := x.byNEVRA[k]
		if len(copies) == 0 {
			missing = append(missing, k)
			continue
		}
		c := copies[0]
		if newSide {
			c = copies[len(copies)-1]
		}
		found = append(found, c)
	}
	return found, missing
}

// DeepRequest is one abipkgdiff comparison: a pair and the debuginfo
// packages of each side (none when not found).
type DeepRequest struct {
	Old, New           PackageRef
	OldDebug, NewDebug []PackageRef
}

// DeepKey is the KV key of a request's result: the pair's key when no
// debuginfo is given, else one that also names every debuginfo package's
// checksum, so a result computed without debuginfo is not reused once
// the debuginfo packages are found.
func (a *Analyzer) DeepKey(r DeepRequest) string {
	var key strings.Builder
	key.WriteString(a.DeepResultKey(r.Old, r.New))
	for _, d := range r.OldDebug {
		key.WriteString("/d1=" + d.Checksum.String())
	}
	for _, d := range r.NewDebug {
		key.WriteString("/d2=" + d.Checksum.String())
	}
	return key.String()
}

// StoredDeepRequest is StoredDeep for a request with debuginfo packages.
func (a *Analyzer) StoredDeepRequest(r DeepRequest) (findings []metadata.Finding, ok bool, err error) {
	if r.Old.Checksum.Value == "" || r.New.Checksum.Value == "" {
		return nil, false, fmt.Errorf("%w: %s or %s", ErrNoChecksum, r.Old.NEVRA(), r.New.NEVRA())
	}
	return a.load([]byte(a.DeepKey(r)))
}

// sourceKey is where a package's source RPM name is kept: a file with a
// checksum always has the same header, so the key has no version.
func sourceKey(ref PackageRef) []byte { return []byte("abisrc/" + ref.Checksum.String()) }

// SourceKey is the KV key of a package's source RPM record (for callers
// that pin what they use).
func (a *Analyzer) SourceKey(ref PackageRef) string { return string(sourceKey(ref)) }

type storedSource struct {
	SourceRPM string `json:"source_rpm"`
}

func (a *Analyzer) putSource(ref PackageRef, sourceRPM string) error {
	if ref.Checksum.Value == "" {
		return nil
	}
	b, err := json.Marshal(storedSource{SourceRPM: sourceRPM})
	if err != nil {
		return err
	}
	if err := a.store(sourceKey(ref), b); err != nil {
		return fmt.Errorf("storing the source package of %s: %w", ref.NEVRA(), err)
	}
	return nil
}

// StoredSourceRPM returns a package's source RPM ("foo-1.0-1.el9.src.rpm")
// when this analyser (or one sharing its KV) read the package's header
// before; ok=false otherwise.
func (a *Analyzer) StoredSourceRPM(ref PackageRef) (sourceRPM string, ok bool, err error) {
	var b []byte
	k := sourceKey(ref)
	if a.opts.Results != nil {
		if b, ok, err = a.opts.Results.Get(k); err != nil || !ok {
			return "", false, err
		}
	} else {
		a.mu.Lock()
		b, ok = a.mem[string(k)]
		a.mu.Unlock()
		if !ok {
			return "", false, nil
		}
	}
	var s storedSource
	if err := json.Unmarshal(b, &s); err != nil {
		a.opts.Logger.Warn("abi: unreadable stored source package; reading the header again", "key", string(k), "err", err)
		return "", false, nil
	}
	return s.SourceRPM, true, nil
}

// SourceRPM returns a package's source RPM: stored, or read from the
// package's header (the payload is not decompressed) and stored.
func (a *Analyzer) SourceRPM(ctx context.Context, ref PackageRef, open Opener) (string, error) {
	if s, ok, err := a.StoredSourceRPM(ref); err != nil || ok {
		return s, err
	}
	rc, err := open(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", ref.NEVRA(), err)
	}
	h, _, err := walkRPM(ctx, rc, func(*rpmHeader) bool { return false }, nil)
	rc.Close()
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", ref.NEVRA(), err)
	}
	return h.SourceRPM, a.putSource(ref, h.SourceRPM)
}

// RepoOf returns the repo a debuginfo package of the index comes from.
func (x *DebugIndex) RepoOf(ref PackageRef) (string, bool) {
	for _, c := range x.byNEVRA[ref.NEVRA()] {
		if c.Checksum == ref.Checksum {
			return c.Repo, true
		}
	}
	return "", false
}

// MissingDebuginfo says which side of a request has no debuginfo package
// and what was looked for.
type MissingDebuginfo struct {
	Old, New []string // NEVRAs looked for, when none was found for the side
	Repos    []string
}

// Request returns the abipkgdiff request of a pair with the debuginfo
// packages Find gives each side (sources are the pair's source RPMs, as
// SourceRPM returns them), and what is missing.
func (x *DebugIndex) Request(p Pair, oldSourceRPM, newSourceRPM string) (DeepRequest, MissingDebuginfo) {
	req := DeepRequest{Old: p.Old, New: p.New}
	miss := MissingDebuginfo{Repos: x.Repos()}
	side := func(ref PackageRef, src string, newSide bool) ([]PackageRef, []string) {
		found, missing := x.Find(ref.PackageID, SourceName(src), newSide)
		if len(found) == 0 {
			return nil, missing
		}
		out := make([]PackageRef, len(found))
		for i, f := range found {
			out[i] = f.PackageRef
		}
		return out, nil
	}
	req.OldDebug, miss.Old = side(p.Old, oldSourceRPM, false)
	req.NewDebug, miss.New = side(p.New, newSourceRPM, true)
	return req, miss
}

// Note is the line a deep finding gets when a side ran without debuginfo
// ("" when both sides had some).
func (m MissingDebuginfo) Note() string {
	var parts []string
	if len(m.Old) > 0 {
		parts = append(parts, "the reference side (no "+strings.Join(m.Old, " or ")+")")
	}
	if len(m.New) > 0 {
		parts = append(parts, "this side (no "+strings.Join(m.New, " or ")+")")
	}
	if len(parts) == 0 {
		return ""
	}
	return "abipkgdiff ran without debuginfo for " + strings.Join(parts, " and ") +
		" in " + strings.Join(m.Repos, ", ") + ": type-level changes are not visible there"
}

// Annotate returns deep findings with Note as their second line (the
// first is what dnf shows); fs is not modified.
func (m MissingDebuginfo) Annotate(fs []metadata.Finding) []metadata.Finding {
	note := m.Note()
	if note == "" || len(fs) == 0 {
		return fs
	}
	out := make([]metadata.Finding, len(fs))
	for i, f := range fs {
		head, rest, _ := strings.Cut(f.Reason, "\n")
		f.Reason = head + "\n" + note
		if rest != "" {
			f.Reason += "\n" + rest
		}
		out[i] = f
	}
	return out
}
