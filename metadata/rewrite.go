package metadata

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file rewrites primary.xml, filelists.xml and other.xml as streams.
//
// A package is never decoded into a struct and encoded again: the scanner
// finds the byte extent of each <package> element and the few fields rules
// need, and the rewriter copies kept packages as their original bytes,
// drops filtered ones, and splices the annotation into the original bytes of
// annotated ones. Everything outside <package> elements is copied as it
// came, except the root element's packages="N" count. (encoding/xml is not
// used at all: its encoder turns <rpm:entry> into <entry xmlns=...>, which
// libsolv silently drops, and its decoder is several times slower than
// gzip, which would make a rewrite cost far more than a recompression.)

// FileKind names one of the package files of rpm-md: the ones that list
// packages by pkgid and that a plan rewrites together.
type FileKind string

// The package files, named as their repomd.xml record types.
// filelists-ext is createrepo_c's --filelists-ext: filelists with file
// checksums, one <package> per pkgid like filelists.
const (
	KindPrimary      FileKind = "primary"
	KindFilelists    FileKind = "filelists"
	KindOther        FileKind = "other"
	KindFilelistsExt FileKind = "filelists-ext"
)

// PackageKinds returns every FileKind, primary first: the records a view
// rewrites with one plan (a record the repo lacks is skipped).
func PackageKinds() []FileKind {
	return []FileKind{KindPrimary, KindFilelists, KindOther, KindFilelistsExt}
}

// rootName is the document element of each kind.
func (k FileKind) rootName() (string, error) {
	switch k {
	case KindPrimary:
		return "metadata", nil
	case KindFilelists:
		return "filelists", nil
	case KindOther:
		return "otherdata", nil
	case KindFilelistsExt:
		return "filelists-ext", nil
	}
	return "", fmt.Errorf("unknown package file kind %q", string(k))
}

// DecideFunc gives the verdict on one package of primary.xml: id as rules
// see it, pkgid the package's checksum (the key filelists and other use).
type DecideFunc func(id PackageID, pkgid string) Decision

// PlannedPackage is a package that a Plan does something to.
type PlannedPackage struct {
	ID       PackageID
	PkgID    string
	Decision Decision
}

// A Plan holds the decisions for one generation of a repository, keyed by
// pkgid. NewPlan asks the DecideFunc once per package of primary.xml;
// Rewrite then applies the same decisions to primary, filelists, other and
// filelists-ext, so that a package is dropped from all of them or from none.
//
// A pkgid names one file, so it gets one verdict: when primary.xml lists
// the same pkgid more than once (createrepo_c's repo_with_duplicate_packages
// shape, which dnf accepts), the verdict applies to every copy, and when the
// copies got different verdicts the strongest wins (filter, then annotate).
// The counts below count copies.
type Plan struct {
	Packages  int // packages upstream's primary.xml lists
	Kept      int // packages the rewritten primary.xml lists
	Annotated int
	Filtered  int

	byPkgID map[string]int // pkgid → index in decided
	decided []plannedEntry
}

type plannedEntry struct {
	PlannedPackage
	copies int // in primary.xml
}

// strength orders actions for merging the verdicts of one pkgid's copies.
func strength(a Action) int {
	switch a {
	case ActionFilter:
		return 2
	case ActionAnnotate:
		return 1
	}
	return 0
}

// checkDecision normalises d (an empty Action is ActionNone) and checks it.
func checkDecision(id PackageID, d Decision) (Decision, error) {
	switch d.Action {
	case "":
		d.Action = ActionNone
	case ActionNone, ActionFilter:
	case ActionAnnotate:
		if len(d.Findings) == 0 {
			return d, fmt.Errorf("decision for %s: annotate without findings", id.NEVRA())
		}
	default:
		return d, fmt.Errorf("decision for %s: unknown action %q", id.NEVRA(), d.Action)
	}
	d.Findings = slices.Clone(d.Findings)
	return d, nil
}

// add records one copy of a decided package; undecided copies seen before
// (none) are added to its copies.
func (p *Plan) add(pp PlannedPackage, before int) error {
	i, ok := p.byPkgID[pp.PkgID]
	if !ok {
		p.byPkgID[pp.PkgID] = len(p.decided)
		p.decided = append(p.decided, plannedEntry{PlannedPackage: pp, copies: 1 + before})
		return nil
	}
	e := &p.decided[i]
	if e.ID.Name != pp.ID.Name || e.ID.Arch != pp.ID.Arch {
		return fmt.Errorf("%w: primary.xml: pkgid %s names %s and %s", ErrMalformed, pp.PkgID, e.ID.NEVRA(), pp.ID.NEVRA())
	}
	e.copies++
	if strength(pp.Decision.Action) > strength(e.Decision.Action) {
		e.Decision = pp.Decision
	}
	return nil
}

// count sets the counts from the decided entries.
func (p *Plan) count() error {
	p.Kept, p.Annotated, p.Filtered = p.Packages, 0, 0
	for _, e := range p.decided {
		switch e.Decision.Action {
		case ActionFilter:
			p.Filtered += e.copies
			p.Kept -= e.copies
		case ActionAnnotate:
			p.Annotated += e.copies
		}
	}
	if p.Kept < 0 {
		return fmt.Errorf("%d packages filtered of %d", p.Filtered, p.Packages)
	}
	return nil
}

// NewPlan scans primary.xml (compressed with codec; at most limit bytes once
// decompressed) and calls decide for every package, in document order. A
// decision with an empty Action counts as ActionNone; ActionAnnotate needs
// at least one finding. The root element's packages="N" is not trusted:
// Packages counts what the file lists. Errors are ErrMalformed for bad XML
// or inconsistent metadata, ErrTooLarge over the limit.
func NewPlan(primary io.Reader, codec Codec, limit int64, decide DecideFunc) (*Plan, error) {
	rc, err := Decompress(primary, codec, limit)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	p := &Plan{byPkgID: map[string]int{}}
	// undecided counts the copies of each pkgid decided "none" so far, so
	// that a later copy's stronger verdict covers them too.
	undecided := map[string]int{}
	err = scanDocument(KindPrimary, rc, nil, func(it *docItem) error {
		if it.kind != itemPackage {
			return nil
		}
		p.Packages++
		id, pkgid := it.pkg.id, it.pkg.pkgid
		d, err := checkDecision(id, decide(id, pkgid))
		if err != nil {
			return err
		}
		if _, decided := p.byPkgID[pkgid]; d.Action == ActionNone && !decided {
			undecided[pkgid]++
			return nil
		}
		before := undecided[pkgid]
		delete(undecided, pkgid)
		return p.add(PlannedPackage{ID: id, PkgID: pkgid, Decision: d}, before)
	})
	if err != nil {
		return nil, err
	}
	if err := p.count(); err != nil {
		return nil, err
	}
	return p, nil
}

// PlanOf makes a plan from decisions taken elsewhere, typically while the
// caller scanned primary.xml for its rules, which saves NewPlan's pass over
// primary.xml. packages is the number of packages primary.xml lists;
// decided holds the packages to annotate or filter, one entry per copy
// when primary.xml lists a pkgid more than once (packages not listed are
// kept). Rewrite checks the files against the plan: counts, and the name
// and arch of every decided pkgid.
func PlanOf(packages int, decided []PlannedPackage) (*Plan, error) {
	p := &Plan{Packages: packages, byPkgID: map[string]int{}}
	for _, pp := range decided {
		d, err := checkDecision(pp.ID, pp.Decision)
		if err != nil {
			return nil, err
		}
		if d.Action == ActionNone {
			continue
		}
		if pp.PkgID == "" {
			return nil, fmt.Errorf("decision for %s: empty pkgid", pp.ID.NEVRA())
		}
		pp.Decision = d
		if err := p.add(pp, 0); err != nil {
			return nil, err
		}
	}
	if err := p.count(); err != nil {
		return nil, err
	}
	return p, nil
}

// Decided returns the packages the plan annotates or filters, in the order
// of primary.xml, one entry per copy, so that PlanOf(p.Packages,
// p.Decided()) is the same plan. The slice is the caller's.
func (p *Plan) Decided() []PlannedPackage {
	var out []PlannedPackage
	for _, e := range p.decided {
		for range e.copies {
			pp := e.PlannedPackage
			pp.Decision.Findings = slices.Clone(pp.Decision.Findings)
			out = append(out, pp)
		}
	}
	return out
}

// RewriteResult describes a rewritten file.
type RewriteResult struct {
	FileInfo      // of the output: codec, checksums and sizes
	Packages  int // packages written
	Annotated int // of those, annotated
	Filtered  int // packages dropped
}

// Rewrite reads a package file of the given kind (compressed with inCodec;
// at most limit bytes once decompressed) and writes the rewritten file to
// out, compressed with outCodec (None, Gzip, Xz or Zstd). It returns the
// checksums and sizes of what it wrote, computed in the same pass.
//
// Packages are streamed one at a time. Kept packages are written as their
// original bytes; filtered packages are dropped together with the white
// space that follows them; annotated packages (primary.xml only; the other
// kinds keep them unchanged) get the summary prefix, the description
// paragraph and the abi-divergence provides of DESIGN.md spliced into their
// original bytes. Every copy of a pkgid gets the same treatment. Outside
// <package> elements every byte is copied, except the value of the root's
// packages="N", which counts what is written.
//
// primary.xml must be the file the plan was made from (same packages, same
// verdicts): otherwise ErrMalformed. The other kinds are rewritten as they
// are: clients accept a filelists.xml that lists fewer packages than
// primary.xml (a stub with packages="0"), so Rewrite does too. When such a
// file's packages="N" differs from primary.xml's count, the count of what
// will be written is needed before the root element: when in is an
// io.ReadSeeker (a cache object) Rewrite counts in a first pass and seeks
// back, otherwise it holds the rewritten body in memory (at most limit
// bytes). A file whose count agrees with primary.xml but whose packages do
// not is ErrMalformed, as is a pkgid that names another name or arch than
// in primary.xml (the file belongs to another generation). On any error,
// what was written to out is garbage and must be discarded.
func (p *Plan) Rewrite(kind FileKind, in io.Reader, inCodec Codec, out io.Writer, outCodec Codec, limit int64) (RewriteResult, error) {
	return p.RewriteWithin(Limits{}, kind, in, inCodec, out, outCodec, limit)
}

// RewriteWithin is Rewrite with the decoders and the document scanner
// bounded by l (xz dictionary, zstd window, element size).
func (p *Plan) RewriteWithin(l Limits, kind FileKind, in io.Reader, inCodec Codec, out io.Writer, outCodec Codec, limit int64) (RewriteResult, error) {
	fw, err := NewFileWriter(out, outCodec)
	if err != nil {
		return RewriteResult{}, err
	}
	rs, seekable := in.(io.ReadSeeker)
	var start int64
	if seekable {
		if start, err = rs.Seek(0, io.SeekCurrent); err != nil {
			seekable = false
		}
	}
	// The encoder and the checksums run behind the rewrite, on another
	// goroutine.
	wb := newWriteBehind(fw)
	defer wb.Close()
	res, err := p.rewrite(l, kind, in, inCodec, wb, limit, -1, seekable)
	if err == errNeedCount {
		var n int
		if _, err = rs.Seek(start, io.SeekStart); err == nil {
			n, err = p.countKept(l, kind, rs, inCodec, limit)
		}
		if err == nil {
			_, err = rs.Seek(start, io.SeekStart)
		}
		if err == nil {
			res, err = p.rewrite(l, kind, rs, inCodec, wb, limit, n, false)
		}
	}
	if cerr := wb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	if err := fw.Close(); err != nil {
		return res, err
	}
	res.FileInfo = fw.Info()
	return res, nil
}

// errNeedCount stops a first pass that found a root count it cannot trust.
var errNeedCount = errors.New("the count of kept packages is needed first")

// countKept returns how many packages a rewrite of the file keeps.
func (p *Plan) countKept(l Limits, kind FileKind, in io.Reader, inCodec Codec, limit int64) (int, error) {
	rc, err := l.Decompress(in, inCodec, limit)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n := 0
	err = scanDocumentMax(kind, rc, nil, l.element(), func(it *docItem) error {
		if it.kind != itemPackage {
			return nil
		}
		if i, ok := p.byPkgID[it.pkg.pkgid]; ok && p.decided[i].Decision.Action == ActionFilter {
			return nil
		}
		n++
		return nil
	})
	return n, err
}

// rewrite is one pass of Rewrite into fw. known is the count to write at
// the root when a first pass counted it (-1: not known); with restart, a
// root count that needs counting ends the pass with errNeedCount before
// anything is written.
func (p *Plan) rewrite(l Limits, kind FileKind, in io.Reader, inCodec Codec, fw io.Writer, limit int64, known int, restart bool) (RewriteResult, error) {
	var res RewriteResult
	rc, err := l.Decompress(in, inCodec, limit)
	if err != nil {
		return res, err
	}
	defer rc.Close()
	var (
		scratch   []byte
		afterDrop bool // the previous item was a dropped package
		file      = string(kind) + ".xml"
		// The prolog is held until the root start tag says how to write.
		prolog  bytes.Buffer
		w       io.Writer = &prolog
		written           = -1 // the count written at the root, when known there
		// held is set when the root's count must wait for the end: the
		// root start tag and then everything after it.
		held      *bytes.Buffer
		rootTag   []byte
		countSpan [2]int
	)
	spotsFor := func(pkgid string) bool {
		i, ok := p.byPkgID[pkgid]
		return ok && p.decided[i].Decision.Action == ActionAnnotate
	}
	err = scanDocumentMax(kind, rc, spotsFor, l.element(), func(it *docItem) error {
		drop := afterDrop
		afterDrop = false
		switch it.kind {
		case itemText:
			if drop && isXMLSpace(it.raw) {
				return nil
			}
		case itemRoot:
			n := -1
			switch {
			case it.count < 0:
			case known >= 0:
				n = known
			case it.count == p.Packages:
				n = p.Kept
			case restart:
				return errNeedCount
			}
			if _, err := prolog.WriteTo(fw); err != nil {
				return err
			}
			w = fw
			if it.count >= 0 && n < 0 {
				rootTag, countSpan = slices.Clone(it.raw), [2]int{it.countStart, it.countEnd}
				held = &bytes.Buffer{}
				w = held
				return nil
			}
			if written = n; n >= 0 && n != it.count {
				scratch = append(scratch[:0], it.raw[:it.countStart]...)
				scratch = strconv.AppendInt(scratch, int64(n), 10)
				scratch = append(scratch, it.raw[it.countEnd:]...)
				_, err := w.Write(scratch)
				return err
			}
		case itemPackage:
			pk := it.pkg
			i, ok := p.byPkgID[pk.pkgid]
			if !ok {
				res.Packages++
				break
			}
			pp := &p.decided[i]
			if pp.ID.Name != pk.id.Name || pp.ID.Arch != pk.id.Arch {
				return fmt.Errorf("%w: %s: pkgid %s is %s.%s here but %s in primary.xml", ErrMalformed,
					file, pk.pkgid, pk.id.Name, pk.id.Arch, pp.ID.NEVRA())
			}
			switch pp.Decision.Action {
			case ActionFilter:
				res.Filtered++
				afterDrop = true
				return nil
			case ActionAnnotate:
				res.Packages++
				if kind != KindPrimary {
					break
				}
				res.Annotated++
				scratch = annotatePackage(scratch[:0], pk, pp.Decision.Findings)
				_, err := w.Write(scratch)
				return err
			}
		}
		_, err := w.Write(it.raw)
		return err
	})
	if err != nil {
		return res, err
	}
	if kind == KindPrimary {
		if res.Packages+res.Filtered != p.Packages || res.Filtered != p.Filtered || res.Annotated != p.Annotated {
			return res, fmt.Errorf("%w: primary.xml differs from the one the plan was made from: it lists %d packages (%d filtered, %d annotated), the plan %d (%d, %d)",
				ErrMalformed, res.Packages+res.Filtered, res.Filtered, res.Annotated, p.Packages, p.Filtered, p.Annotated)
		}
	}
	if written >= 0 && res.Packages != written {
		return res, fmt.Errorf("%w: %s: packages=\"%d\" was written at its root, but %d of the %d packages it lists are kept",
			ErrMalformed, file, written, res.Packages, res.Packages+res.Filtered)
	}
	if held != nil {
		scratch = append(scratch[:0], rootTag[:countSpan[0]]...)
		scratch = strconv.AppendInt(scratch, int64(res.Packages), 10)
		scratch = append(scratch, rootTag[countSpan[1]:]...)
		if _, err := fw.Write(scratch); err != nil {
			return res, err
		}
		if _, err := held.WriteTo(fw); err != nil {
			return res, err
		}
	}
	return res, nil
}

// ---- annotation -------------------------------------------------------------

// Annotation texts (DESIGN.md, "Annotation conventions").
const (
	summaryPrefixFmt   = "[RHEL-ABI: %s] "
	descriptionLineFmt = "RHEL ABI compatibility: %s — %s"
	provideAll         = "abi-divergence(rhel)"
	provideClassFmt    = "abi-divergence(rhel:%s)"
)

// findingClasses returns the distinct classes of fs in order of first
// appearance.
func findingClasses(fs []Finding) []string {
	var cs []string
	for _, f := range fs {
		if !slices.Contains(cs, f.Class) {
			cs = append(cs, f.Class)
		}
	}
	return cs
}

// annotatePackage appends to dst the bytes of package pk with the
// annotation of findings spliced in.
func annotatePackage(dst []byte, pk *pkgInfo, findings []Finding) []byte {
	raw, s := pk.raw, &pk.spots
	classes := findingClasses(findings)
	prefix := xmlEscapeText(nil, fmt.Sprintf(summaryPrefixFmt, strings.Join(classes, ",")))
	var lines []byte
	for i, f := range findings {
		if i > 0 {
			lines = append(lines, '\n')
		}
		line := fmt.Sprintf(descriptionLineFmt, f.Class, f.Reason)
		if f.Link != "" {
			line += " (" + f.Link + ")"
		}
		lines = xmlEscapeText(lines, line)
	}
	headIndent := orDefault(s.headIndent, "  ")
	var edits []byteSplice
	ins := func(at int, parts ...string) {
		edits = append(edits, byteSplice{at: at, end: at, text: []byte(strings.Join(parts, ""))})
	}
	// closeEmpty turns <x .../> into <x ...>text</x>.
	closeEmpty := func(e elemPos, name, text string) {
		edits = append(edits, byteSplice{at: e.end - 2, end: e.end, text: []byte(">" + text + "</" + name + ">")})
	}

	// Summary and description. A missing element is created after the
	// package's first fields; a missing summary goes before the description.
	headAt := s.headEnd
	if headAt < 0 {
		headAt = s.pkgTagEnd
	}
	switch {
	case s.summary.start < 0:
		ins(headAt, "\n", headIndent, "<summary>", string(prefix), "</summary>")
	case s.summary.empty:
		closeEmpty(s.summary, "summary", string(prefix))
	default:
		ins(s.summary.tagEnd, string(prefix))
	}
	switch d := s.description; {
	case d.start < 0:
		at := s.summary.end
		if s.summary.start < 0 {
			at = headAt
		}
		ins(at, "\n", headIndent, "<description>", string(lines), "</description>")
	case d.empty:
		closeEmpty(d, "description", string(lines))
	default:
		content := raw[d.tagEnd:d.contentEnd]
		sep := "\n\n"
		switch {
		case isXMLSpace(content):
			sep = ""
		case bytes.HasSuffix(content, []byte("\n\n")):
			sep = ""
		case bytes.HasSuffix(content, []byte("\n")):
			sep = "\n"
		}
		ins(d.contentEnd, sep, string(lines))
	}

	// Provides.
	fmtIndent := orDefault(s.fmtIndent, headIndent+"  ")
	entryIndent := orDefault(s.entryIndent, fmtIndent+"  ")
	ns := "rpm:"
	if s.provides.start >= 0 {
		ns = s.provPrefix
	}
	var entries strings.Builder
	for _, name := range append([]string{provideAll}, mapClasses(classes)...) {
		entries.WriteString("\n" + entryIndent + "<" + ns + "entry name=\"")
		entries.Write(xmlEscapeAttr(nil, name))
		entries.WriteString("\"/>")
	}
	provName := ns + "provides"
	newProvides := "\n" + fmtIndent + "<" + provName + ">" + entries.String() + "\n" + fmtIndent + "</" + provName + ">"
	switch {
	case s.provides.start >= 0 && s.provides.empty:
		closeEmpty(s.provides, provName, entries.String()+"\n"+fmtIndent)
	case s.provides.start >= 0:
		at := s.provLastChildEnd
		if at < 0 {
			at = s.provides.tagEnd
		}
		ins(at, entries.String())
	case s.format.start >= 0 && s.format.empty:
		closeEmpty(s.format, "format", newProvides+"\n"+headIndent)
	case s.format.start >= 0:
		at := s.preProvEnd
		if at < 0 {
			at = s.format.tagEnd
		}
		ins(at, newProvides)
	default: // no <format>: the indents and namespace above are the defaults
		ins(s.lastChildEnd, "\n", headIndent, "<format>", newProvides, "\n", headIndent, "</format>")
	}
	return applySplices(dst, raw, edits)
}

func mapClasses(classes []string) []string {
	out := make([]string, len(classes))
	for i, c := range classes {
		out[i] = fmt.Sprintf(provideClassFmt, c)
	}
	return out
}

func orDefault(b []byte, def string) string {
	if b == nil {
		return def
	}
	return string(b)
}

// xmlEscapeText appends s to dst escaped for XML character data. Characters
// XML 1.0 does not allow, and invalid UTF-8, become U+FFFD; a carriage return
// is written as a reference so that it survives parsing.
func xmlEscapeText(dst []byte, s string) []byte { return appendXMLEscaped(dst, s, false) }

// xmlEscapeAttr is xmlEscapeText for a double-quoted attribute value.
func xmlEscapeAttr(dst []byte, s string) []byte { return appendXMLEscaped(dst, s, true) }

func appendXMLEscaped(dst []byte, s string, attr bool) []byte {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			r = utf8.RuneError
		}
		i += n
		switch {
		case r == '&':
			dst = append(dst, "&amp;"...)
		case r == '<':
			dst = append(dst, "&lt;"...)
		case r == '>':
			dst = append(dst, "&gt;"...)
		case r == '"' && attr:
			dst = append(dst, "&quot;"...)
		case r == '\r', attr && (r == '\n' || r == '\t'):
			dst = append(dst, "&#"...)
			dst = strconv.AppendInt(dst, int64(r), 10)
			dst = append(dst, ';')
		case !isXMLChar(r):
			dst = utf8.AppendRune(dst, utf8.RuneError)
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// ---- document scanner -------------------------------------------------------

type itemKind uint8

const (
	itemText    itemKind = iota // character data at the top level
	itemMarkup                  // comment, processing instruction, CDATA, other element
	itemRoot                    // the root start tag
	itemPackage                 // a <package> element
	itemRootEnd                 // the root end tag
)

// docItem is one piece of a document. Every byte of the document belongs to
// exactly one item, in order, so writing every raw gives the input back.
type docItem struct {
	kind itemKind
	raw  []byte // valid until the callback returns

	// itemRoot: the packages="N" count, -1 when noElem, and the span of its
	// digits in raw.
	count                int
	countStart, countEnd int

	pkg *pkgInfo // itemPackage
}

// pkgInfo is what the scanner learns about one <package> element.
type pkgInfo struct {
	raw   []byte
	id    PackageID
	pkgid string
	spots annotSpots // primary.xml only
}

// annotSpots are byte offsets in pkgInfo.raw where an annotation goes. An
// offset is -1 when the element is noElem; indents are nil when unknown.
type annotSpots struct {
	pkgTagEnd    int    // end of the <package> start tag
	headEnd      int    // end of the last of name, arch, version, checksum
	headIndent   []byte // white space before a child of <package>
	lastChildEnd int    // end of the last child of <package>

	summary, description, format elemPos

	fmtIndent  []byte // white space before a child of <format>
	preProvEnd int    // end of the last child of <format> that precedes provides

	provides         elemPos
	provPrefix       string // namespace prefix of the provides element, "rpm:"
	entryIndent      []byte // white space before a provides entry
	provLastChildEnd int
}

// elemPos locates an element in pkgInfo.raw.
type elemPos struct {
	start      int  // -1: noElem
	tagEnd     int  // end of the start tag
	empty      bool // <x/>
	contentEnd int  // start of the end tag
	end        int
}

var noElem = elemPos{start: -1, tagEnd: -1, contentEnd: -1, end: -1}

// The children of <format> that createrepo_c writes before <rpm:provides>.
var preProvides = []string{"rpm:license", "rpm:vendor", "rpm:group", "rpm:buildhost", "rpm:sourcerpm", "rpm:header-range"}

// scanDocument reads a package file and calls fn for each item. No item
// may be bigger than DefaultMaxElement.
func scanDocument(kind FileKind, r io.Reader, spotsFor func(pkgid string) bool, fn func(*docItem) error) error {
	return scanDocumentMax(kind, r, spotsFor, DefaultMaxElement, fn)
}

// scanDocumentMax is scanDocument with the item size limit maxItem: an
// item that does not end within maxItem bytes is ErrTooLarge, so that the
// buffer never grows beyond about maxItem.
func scanDocumentMax(kind FileKind, r io.Reader, spotsFor func(pkgid string) bool, maxItem int64, fn func(*docItem) error) error {
	root, err := kind.rootName()
	if err != nil {
		return err
	}
	switch r.(type) {
	case *bytes.Reader, *bytes.Buffer, *strings.Reader: // in memory: nothing to overlap
	default:
		// The decoder runs ahead on another goroutine.
		ra := newReadAhead(r)
		defer ra.Close()
		r = ra
	}
	s := &docScanner{r: r, kind: kind, root: root, buf: make([]byte, 0, min(256<<10, maxItem+1)), spotsFor: spotsFor, maxItem: maxItem}
	s.buf = s.buf[:cap(s.buf)]
	var it docItem
	for {
		err := s.next(&it)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(&it); err != nil {
			return err
		}
	}
}

type scanState uint8

const (
	inProlog scanState = iota
	inBody
	inEpilog
)

type docScanner struct {
	r        io.Reader
	kind     FileKind
	root     string
	buf      []byte
	pos, end int   // unread bytes: buf[pos:end]
	off      int64 // stream offset of buf[0]
	eof      bool
	state    scanState
	pkg      pkgInfo
	stack    [][2]int
	searched int // bytes after pos known to hold no package end tag
	maxItem  int64

	// spotsFor reports whether a primary.xml package needs its annotation
	// spots; nil means none does. Packages that do not are lexed only
	// until their identity is known, and then skipped to their end.
	spotsFor func(pkgid string) bool
}

// more reads into the buffer, moving unread bytes to its front or growing
// it as needed. Offsets into buf are invalid afterwards; pos stays valid.
func (s *docScanner) more() error {
	if s.eof {
		return io.ErrUnexpectedEOF
	}
	if s.pos > 0 && (s.end == len(s.buf) || s.pos >= len(s.buf)/2) {
		copy(s.buf, s.buf[s.pos:s.end])
		s.off += int64(s.pos)
		s.end -= s.pos
		s.pos = 0
	}
	if s.end == len(s.buf) {
		if int64(s.end-s.pos) > s.maxItem {
			return fmt.Errorf("%w: %s.xml at byte %d: an element or text node over %d bytes (the limit)",
				ErrTooLarge, s.kind, s.off+int64(s.pos), s.maxItem)
		}
		grow := min(int64(len(s.buf)), s.maxItem+1-int64(len(s.buf)))
		s.buf = append(s.buf, make([]byte, grow)...)
		s.buf = s.buf[:cap(s.buf)]
	}
	for range 100 {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err == io.EOF {
			s.eof = true
			return nil
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

func (s *docScanner) malformed(at int, format string, args ...any) error {
	return fmt.Errorf("%w: %s.xml at byte %d: %s", ErrMalformed, s.kind, s.off+int64(at), fmt.Sprintf(format, args...))
}

// lexErr turns a lexer error into ErrMalformed with a position.
func (s *docScanner) lexErr(err error) error {
	var le *xmlLexError
	if errors.As(err, &le) {
		return s.malformed(le.at, "%s", le.msg)
	}
	return err
}

func (s *docScanner) next(it *docItem) error {
	for {
		if s.pos == s.end && s.eof && s.state == inEpilog {
			return io.EOF
		}
		if s.pos == s.end && s.eof {
			if s.state != inEpilog {
				return s.malformed(s.end, "unexpected end of document")
			}
			return io.EOF
		}
		t, err := lexXML(s.buf[:s.end], s.pos, s.eof)
		if err == errXMLShort {
			if err := s.more(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return s.lexErr(err)
		}
		*it = docItem{kind: itemMarkup, raw: s.buf[t.start:t.end], count: -1}
		name := s.buf[t.nameStart:t.nameEnd]
		switch t.kind {
		case tokText:
			it.kind = itemText
			if s.state != inBody {
				txt := it.raw
				if s.state == inProlog && s.off+int64(t.start) == 0 {
					txt = bytes.TrimPrefix(txt, []byte("\xef\xbb\xbf"))
				}
				if !isXMLSpace(txt) {
					return s.malformed(t.start, "text outside the root element")
				}
			}
		case tokDoctype:
			return s.malformed(t.start, "DOCTYPE declarations are not allowed")
		case tokCDATA:
			if s.state != inBody {
				return s.malformed(t.start, "CDATA outside the root element")
			}
		case tokStart, tokEmpty:
			switch s.state {
			case inProlog:
				if string(name) != s.root {
					return s.malformed(t.start, "root element is <%s>, want <%s>", name, s.root)
				}
				if err := s.rootItem(it, t); err != nil {
					return err
				}
				s.state = inBody
				if t.kind == tokEmpty {
					s.state = inEpilog
				}
			case inEpilog:
				return s.malformed(t.start, "content after the root element")
			default:
				isPkg := string(name) == "package"
				end, err := s.element(t, isPkg)
				if err == errXMLShort {
					continue // s.element read more; lex again from s.pos
				}
				if err != nil {
					return err
				}
				t.end = end
				it.raw = s.buf[t.start:end]
				if isPkg {
					it.kind = itemPackage
					it.pkg = &s.pkg
					s.pkg.raw = it.raw
				}
			}
		case tokEnd:
			if s.state != inBody || string(name) != s.root {
				return s.malformed(t.start, "unexpected </%s>", name)
			}
			it.kind = itemRootEnd
			s.state = inEpilog
		}
		s.pos = t.end
		s.searched = 0
		return nil
	}
}

func (s *docScanner) rootItem(it *docItem, t xtoken) error {
	it.kind = itemRoot
	return forXMLAttrs(s.buf, t, func(name []byte, vs, ve, _ int) error {
		if string(name) != "packages" {
			return nil
		}
		v := s.buf[vs:ve]
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 || len(v) == 0 || v[0] < '0' || v[0] > '9' {
			return s.malformed(vs, "bad packages count %q", v)
		}
		it.count, it.countStart, it.countEnd = n, vs-t.start, ve-t.start
		return nil
	})
}

// element finds the end of the element whose start tag t is at s.pos. For
// a package it also fills s.pkg. After reading more input it returns
// errXMLShort: offsets have moved and the caller lexes again from s.pos.
func (s *docScanner) element(t xtoken, isPkg bool) (int, error) {
	if isPkg && t.kind == tokStart && !s.eof {
		// Read until the buffer holds a package end tag before lexing, so
		// that a big package is lexed once, not again after each read.
		from := s.pos + s.searched
		if bytes.Index(s.buf[from:s.end], endPackageTag) < 0 {
			s.searched = max(s.end-len(endPackageTag), s.pos) - s.pos
			if err := s.more(); err != nil {
				return 0, err
			}
			return 0, errXMLShort
		}
	}
	end, err := s.lexElement(s.buf[:s.end], t.start, isPkg)
	if err == errXMLShort {
		if err := s.more(); err != nil {
			return 0, err
		}
		return 0, errXMLShort
	}
	if err != nil {
		return 0, s.lexErr(err)
	}
	if isPkg {
		if err := s.checkPackage(t.start); err != nil {
			return 0, err
		}
	}
	return end, nil
}

var endPackageTag = []byte("</package")

func (s *docScanner) checkPackage(at int) error {
	p := &s.pkg
	switch {
	case p.id.Name == "":
		return s.malformed(at, "package without a name")
	case p.id.Arch == "":
		return s.malformed(at, "package %s without an arch", p.id.Name)
	case p.id.Version == "":
		return s.malformed(at, "package %s.%s without a version", p.id.Name, p.id.Arch)
	case p.pkgid == "":
		return s.malformed(at, "package %s without a pkgid", p.id.NEVRA())
	}
	if p.id.Epoch == "" {
		p.id.Epoch = "0"
	}
	return nil
}

// lexElement lexes the element whose start tag begins at b[start] and
// returns the offset of its end. With isPkg it records the package's fields
// and annotation spots in s.pkg.
func (s *docScanner) lexElement(b []byte, start int, isPkg bool) (int, error) {
	primary := isPkg && s.kind == KindPrimary
	p := &s.pkg
	if isPkg {
		*p = pkgInfo{spots: annotSpots{
			headEnd: -1, lastChildEnd: -1, preProvEnd: -1, provLastChildEnd: -1,
			summary: noElem, description: noElem, format: noElem, provides: noElem,
		}}
	}
	sp := &p.spots
	stack := s.stack[:0]
	defer func() { s.stack = stack[:0] }()
	prevText := [2]int{-1, -1}
	var (
		field                 *string // text field being read (name, arch, pkgid)
		fieldStart            int
		inFormat, inProvides  bool
		isPkgidSum            bool
		open                  *elemPos
		nameFields, archField = &p.id.Name, &p.id.Arch
	)
	indent := func() []byte {
		if prevText[0] < 0 {
			return nil
		}
		txt := b[prevText[0]:prevText[1]]
		if !isXMLSpace(txt) {
			return nil
		}
		if i := bytes.LastIndexByte(txt, '\n'); i >= 0 {
			txt = txt[i+1:]
		}
		return txt
	}
	rel := func(i int) int { return i - start }
	// identified reports whether the rest of the package can be skipped.
	identified := func() bool {
		if p.pkgid == "" || p.id.Name == "" || p.id.Arch == "" || p.id.Version == "" || field != nil {
			return false
		}
		return !primary || s.spotsFor == nil || !s.spotsFor(p.pkgid)
	}
	for q := start; ; {
		t, err := lexXML(b, q, s.eof)
		if err != nil {
			if err == errXMLShort && s.eof {
				return 0, &xmlLexError{at: q, msg: "unexpected end of document"}
			}
			return 0, err
		}
		q = t.end
		depth := len(stack)
		switch t.kind {
		case tokText, tokCDATA:
			if t.kind == tokText {
				prevText = [2]int{t.start, t.end}
			}
			continue
		case tokDoctype:
			return 0, &xmlLexError{at: t.start, msg: "DOCTYPE declarations are not allowed"}
		case tokComment, tokPI:
			prevText = [2]int{-1, -1}
			continue
		case tokStart, tokEmpty:
			name := b[t.nameStart:t.nameEnd]
			if isPkg {
				switch {
				case depth == 0:
					sp.pkgTagEnd = rel(t.end)
					if !primary {
						err = forXMLAttrs(b, t, func(n []byte, vs, ve, _ int) error {
							var dst *string
							switch string(n) {
							case "pkgid":
								dst = &p.pkgid
							case "name":
								dst = &p.id.Name
							case "arch":
								dst = &p.id.Arch
							default:
								return nil
							}
							v, err := xmlUnescape(b[vs:ve], vs)
							*dst = v
							return err
						})
					}
				case depth == 1:
					if sp.headIndent == nil {
						sp.headIndent = indent()
					}
					var e *elemPos
					switch string(name) {
					case "version":
						err = forXMLAttrs(b, t, func(n []byte, vs, ve, _ int) error {
							var dst *string
							switch string(n) {
							case "epoch":
								dst = &p.id.Epoch
							case "ver":
								dst = &p.id.Version
							case "rel":
								dst = &p.id.Release
							default:
								return nil
							}
							v, err := xmlUnescape(b[vs:ve], vs)
							*dst = v
							return err
						})
						if primary {
							sp.headEnd = -2 // set at the element's end
						}
					case "name":
						if primary {
							field, sp.headEnd = nameFields, -2
						}
					case "arch":
						if primary {
							field, sp.headEnd = archField, -2
						}
					case "checksum":
						if primary {
							sp.headEnd = -2
							isPkgidSum = false
							err = forXMLAttrs(b, t, func(n []byte, vs, ve, _ int) error {
								if string(n) == "pkgid" {
									isPkgidSum = true
								}
								return nil
							})
							if isPkgidSum {
								field = &p.pkgid
							}
						}
					case "summary":
						if primary && sp.summary.start < 0 {
							e = &sp.summary
						}
					case "description":
						if primary && sp.description.start < 0 {
							e = &sp.description
						}
					case "format":
						if primary && sp.format.start < 0 {
							e = &sp.format
							inFormat = t.kind == tokStart
						}
					}
					if field != nil && t.kind == tokEmpty {
						field = nil
					}
					fieldStart = t.end
					if e != nil {
						*e = elemPos{start: rel(t.start), tagEnd: rel(t.end), empty: t.kind == tokEmpty, contentEnd: -1, end: rel(t.end)}
						if t.kind == tokStart {
							open = e
						}
					}
				case depth == 2 && inFormat:
					if sp.fmtIndent == nil {
						sp.fmtIndent = indent()
					}
					if slices.Contains(preProvides, string(name)) && t.kind == tokEmpty {
						sp.preProvEnd = rel(t.end)
					}
					if bytes.HasSuffix(name, []byte("provides")) && sp.provides.start < 0 &&
						(len(name) == len("provides") || name[len(name)-len("provides")-1] == ':') {
						sp.provides = elemPos{start: rel(t.start), tagEnd: rel(t.end), empty: t.kind == tokEmpty, contentEnd: -1, end: rel(t.end)}
						sp.provPrefix = string(name[:len(name)-len("provides")])
						inProvides = t.kind == tokStart
					}
				case depth == 3 && inProvides:
					if sp.entryIndent == nil {
						sp.entryIndent = indent()
					}
					if t.kind == tokEmpty {
						sp.provLastChildEnd = rel(t.end)
					}
				}
				if err != nil {
					return 0, err
				}
			}
			prevText = [2]int{-1, -1}
			if t.kind == tokEmpty {
				if depth == 0 {
					return t.end, nil
				}
				if isPkg && depth == 1 {
					sp.lastChildEnd = rel(t.end)
					if sp.headEnd == -2 {
						sp.headEnd = rel(t.end)
					}
					if identified() {
						return skipPackageRest(b, q, s.eof)
					}
				}
				continue
			}
			stack = append(stack, [2]int{t.nameStart, t.nameEnd})
		case tokEnd:
			prevText = [2]int{-1, -1}
			if depth == 0 {
				return 0, &xmlLexError{at: t.start, msg: "unexpected end tag"}
			}
			top := stack[depth-1]
			if !bytes.Equal(b[top[0]:top[1]], b[t.nameStart:t.nameEnd]) {
				return 0, &xmlLexError{at: t.start, msg: fmt.Sprintf("</%s> closes <%s>", b[t.nameStart:t.nameEnd], b[top[0]:top[1]])}
			}
			stack = stack[:depth-1]
			depth--
			if depth == 0 {
				return t.end, nil
			}
			if !isPkg {
				continue
			}
			switch depth {
			case 1:
				sp.lastChildEnd = rel(t.end)
				if sp.headEnd == -2 {
					sp.headEnd = rel(t.end)
				}
				if field != nil {
					v, err := xmlUnescape(b[fieldStart:t.start], fieldStart)
					if err != nil {
						return 0, err
					}
					*field = v
					field = nil
				}
				if open != nil {
					open.contentEnd, open.end = rel(t.start), rel(t.end)
					open = nil
				}
				inFormat = false
				if identified() {
					return skipPackageRest(b, q, s.eof)
				}
			case 2:
				if inFormat {
					n := string(b[t.nameStart:t.nameEnd])
					if slices.Contains(preProvides, n) {
						sp.preProvEnd = rel(t.end)
					}
					if inProvides {
						sp.provides.contentEnd, sp.provides.end = rel(t.start), rel(t.end)
						inProvides = false
					}
				}
			case 3:
				if inProvides {
					sp.provLastChildEnd = rel(t.end)
				}
			}
		}
	}
}

// skipPackageRest returns the end of a <package> element whose content
// continues at b[q], one level below the package. It only finds the
// structure that can hide an end tag (comments, CDATA, processing
// instructions, nested package elements); the rest is copied, not
// interpreted, so it is not checked either.
func skipPackageRest(b []byte, q int, atEOF bool) (int, error) {
	nest := 1
	for {
		i := bytes.IndexByte(b[q:], '<')
		if i < 0 {
			return 0, shortOrEOF(q, atEOF)
		}
		q += i
		rest := b[q:]
		if len(rest) < len("<![CDATA[") && !atEOF {
			return 0, errXMLShort
		}
		var closer string
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			closer = "-->"
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			closer = "]]>"
		case bytes.HasPrefix(rest, []byte("<?")):
			closer = "?>"
		case bytes.HasPrefix(rest, []byte("</package")) || bytes.HasPrefix(rest, []byte("<package")):
			t, err := lexXML(b, q, atEOF)
			if err != nil {
				return 0, err
			}
			if string(b[t.nameStart:t.nameEnd]) != "package" {
				q = t.end
				continue
			}
			switch t.kind {
			case tokEnd:
				nest--
			case tokStart:
				nest++
			}
			if nest == 0 {
				return t.end, nil
			}
			q = t.end
			continue
		default:
			q++
			continue
		}
		j := bytes.Index(rest, []byte(closer))
		if j < 0 {
			return 0, shortOrEOF(q, atEOF)
		}
		q += j + len(closer)
	}
}

func shortOrEOF(at int, atEOF bool) error {
	if atEOF {
		return &xmlLexError{at: at, msg: "unexpected end of document"}
	}
	return errXMLShort
}

// ---- lexer ------------------------------------------------------------------

type xtokKind uint8

const (
	tokText xtokKind = iota
	tokStart
	tokEmpty // <x/>
	tokEnd
	tokComment
	tokPI
	tokCDATA
	tokDoctype
)

type xtoken struct {
	kind               xtokKind
	start, end         int
	nameStart, nameEnd int // element name, for tags
}

// errXMLShort says the xtoken continues past the end of the buffer.
var errXMLShort = errors.New("need more input")

type xmlLexError struct {
	at  int
	msg string
}

func (e *xmlLexError) Error() string { return fmt.Sprintf("at %d: %s", e.at, e.msg) }

// lexXML lexes the xtoken at b[p:], p < len(b). Without atEOF, a xtoken
// that may continue past len(b) is errXMLShort.
func lexXML(b []byte, p int, atEOF bool) (xtoken, error) {
	short := func(at int) (xtoken, error) {
		if atEOF {
			return xtoken{}, &xmlLexError{at: at, msg: "unexpected end of document"}
		}
		return xtoken{}, errXMLShort
	}
	if p >= len(b) {
		return short(p)
	}
	if b[p] != '<' {
		i := bytes.IndexByte(b[p:], '<')
		if i < 0 {
			if !atEOF {
				return xtoken{}, errXMLShort
			}
			return xtoken{kind: tokText, start: p, end: len(b)}, nil
		}
		return xtoken{kind: tokText, start: p, end: p + i}, nil
	}
	if p+1 >= len(b) {
		return short(p)
	}
	switch b[p+1] {
	case '!':
		rest := b[p:]
		for _, m := range []struct {
			open, close string
			kind        xtokKind
		}{{"<!--", "-->", tokComment}, {"<![CDATA[", "]]>", tokCDATA}} {
			if bytes.HasPrefix(rest, []byte(m.open)) {
				i := bytes.Index(rest[len(m.open):], []byte(m.close))
				if i < 0 {
					return short(p)
				}
				return xtoken{kind: m.kind, start: p, end: p + len(m.open) + i + len(m.close)}, nil
			}
			if len(rest) < len(m.open) && bytes.HasPrefix([]byte(m.open), rest) {
				return short(p)
			}
		}
		if bytes.HasPrefix(rest, []byte("<!DOCTYPE")) {
			return xtoken{kind: tokDoctype, start: p, end: p + len("<!DOCTYPE")}, nil
		}
		if len(rest) < len("<!DOCTYPE") && bytes.HasPrefix([]byte("<!DOCTYPE"), rest) {
			return short(p)
		}
		return xtoken{}, &xmlLexError{at: p, msg: "bad markup declaration"}
	case '?':
		i := bytes.Index(b[p+2:], []byte("?>"))
		if i < 0 {
			return short(p)
		}
		if !isXMLNameStart(b[p+2]) {
			return xtoken{}, &xmlLexError{at: p, msg: "bad processing instruction"}
		}
		return xtoken{kind: tokPI, start: p, end: p + 2 + i + 2}, nil
	case '/':
		q, ok, err := lexXMLName(b, p+2)
		if err != nil || !ok {
			return short(p)
		}
		if q == p+2 {
			return xtoken{}, &xmlLexError{at: p, msg: "end tag without a name"}
		}
		r := skipXMLSpace(b, q)
		if r >= len(b) {
			return short(p)
		}
		if b[r] != '>' {
			return xtoken{}, &xmlLexError{at: r, msg: "bad end tag"}
		}
		return xtoken{kind: tokEnd, start: p, end: r + 1, nameStart: p + 2, nameEnd: q}, nil
	}
	q, ok, err := lexXMLName(b, p+1)
	if err != nil || !ok {
		return short(p)
	}
	if q == p+1 {
		return xtoken{}, &xmlLexError{at: p, msg: "'<' not followed by a name"}
	}
	t := xtoken{kind: tokStart, start: p, nameStart: p + 1, nameEnd: q}
	end, empty, err := lexXMLAttrs(b, q, nil)
	if err == errXMLShort {
		return short(p)
	}
	if err != nil {
		return xtoken{}, err
	}
	t.end = end
	if empty {
		t.kind = tokEmpty
	}
	return t, nil
}

// lexXMLName returns the end of the XML name starting at b[p]. ok is false
// when the name may continue past the buffer.
func lexXMLName(b []byte, p int) (end int, ok bool, err error) {
	if p >= len(b) {
		return p, false, nil
	}
	if !isXMLNameStart(b[p]) {
		return p, true, nil
	}
	for q := p + 1; q < len(b); q++ {
		if !isXMLNameChar(b[q]) {
			return q, true, nil
		}
	}
	return len(b), false, nil
}

// lexXMLAttrs lexes the attributes of a start tag from b[p] (just after the
// element name) to the closing '>' or '/>'. It calls fn, when not nil, with
// each attribute's name, value span and the offset where the attribute
// starts, counting the white space before it.
func lexXMLAttrs(b []byte, p int, fn func(name []byte, vs, ve, as int) error) (end int, empty bool, err error) {
	for {
		q := skipXMLSpace(b, p)
		if q >= len(b) {
			return 0, false, errXMLShort
		}
		switch b[q] {
		case '>':
			return q + 1, false, nil
		case '/':
			if q+1 >= len(b) {
				return 0, false, errXMLShort
			}
			if b[q+1] != '>' {
				return 0, false, &xmlLexError{at: q, msg: "bad empty-element tag"}
			}
			return q + 2, true, nil
		}
		if q == p {
			return 0, false, &xmlLexError{at: q, msg: "attributes must be separated by white space"}
		}
		ne, ok, _ := lexXMLName(b, q)
		if !ok {
			return 0, false, errXMLShort
		}
		if ne == q {
			return 0, false, &xmlLexError{at: q, msg: "bad attribute name"}
		}
		r := skipXMLSpace(b, ne)
		if r >= len(b) {
			return 0, false, errXMLShort
		}
		if b[r] != '=' {
			return 0, false, &xmlLexError{at: r, msg: "attribute without a value"}
		}
		r = skipXMLSpace(b, r+1)
		if r >= len(b) {
			return 0, false, errXMLShort
		}
		quote := b[r]
		if quote != '"' && quote != '\'' {
			return 0, false, &xmlLexError{at: r, msg: "unquoted attribute value"}
		}
		i := bytes.IndexByte(b[r+1:], quote)
		if i < 0 {
			return 0, false, errXMLShort
		}
		vs, ve := r+1, r+1+i
		if bytes.IndexByte(b[vs:ve], '<') >= 0 {
			return 0, false, &xmlLexError{at: vs, msg: "'<' in an attribute value"}
		}
		if fn != nil {
			if err := fn(b[q:ne], vs, ve, p); err != nil {
				return 0, false, err
			}
		}
		p = ve + 1
	}
}

// forXMLAttrs calls fn for each attribute of the start tag t.
func forXMLAttrs(b []byte, t xtoken, fn func(name []byte, vs, ve, as int) error) error {
	_, _, err := lexXMLAttrs(b[:t.end], t.nameEnd, fn)
	return err
}

func skipXMLSpace(b []byte, p int) int {
	for p < len(b) && (b[p] == ' ' || b[p] == '\n' || b[p] == '\t' || b[p] == '\r') {
		p++
	}
	return p
}

func isXMLSpace(b []byte) bool { return skipXMLSpace(b, 0) == len(b) }

func isXMLNameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == ':' || c >= 0x80
}

func isXMLNameChar(c byte) bool {
	return isXMLNameStart(c) || '0' <= c && c <= '9' || c == '-' || c == '.'
}

// xmlUnescape decodes character data or an attribute value: entity and
// character references, CDATA sections; comments are skipped. at is the
// offset of raw, for errors.
func xmlUnescape(raw []byte, at int) (string, error) {
	if bytes.IndexByte(raw, '&') < 0 && bytes.IndexByte(raw, '<') < 0 {
		return string(raw), nil
	}
	var out []byte
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case '&':
			j := bytes.IndexByte(raw[i:], ';')
			if j < 0 {
				return "", &xmlLexError{at: at + i, msg: "unterminated reference"}
			}
			ref := string(raw[i+1 : i+j])
			i += j + 1
			switch ref {
			case "lt":
				out = append(out, '<')
			case "gt":
				out = append(out, '>')
			case "amp":
				out = append(out, '&')
			case "quot":
				out = append(out, '"')
			case "apos":
				out = append(out, '\'')
			default:
				var n uint64
				var err error
				switch {
				case strings.HasPrefix(ref, "#x"):
					n, err = strconv.ParseUint(ref[2:], 16, 32)
				case strings.HasPrefix(ref, "#"):
					n, err = strconv.ParseUint(ref[1:], 10, 32)
				default:
					err = errors.New("unknown entity")
				}
				if err != nil || !isXMLChar(rune(n)) || strings.HasPrefix(ref, "#+") || strings.HasPrefix(ref, "#x+") {
					return "", &xmlLexError{at: at + i, msg: fmt.Sprintf("bad reference &%s;", ref)}
				}
				out = utf8.AppendRune(out, rune(n))
			}
		case '<':
			t, err := lexXML(raw, i, true)
			if err != nil {
				return "", &xmlLexError{at: at + i, msg: "bad markup in text"}
			}
			switch t.kind {
			case tokCDATA:
				out = append(out, raw[t.start+len("<![CDATA["):t.end-len("]]>")]...)
			case tokComment, tokPI:
			default:
				return "", &xmlLexError{at: at + i, msg: "element inside a text field"}
			}
			i = t.end
		default:
			out = append(out, c)
			i++
		}
	}
	return string(out), nil
}
