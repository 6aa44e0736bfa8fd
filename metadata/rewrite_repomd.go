package metadata

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// ExtraRecord is a file that a rewrite adds to repomd.xml, such as the
// abi-divergence report.
type ExtraRecord struct {
	Type      string   // record type, e.g. "abi-divergence"
	Ext       string   // file name extension before the codec suffix, e.g. ".json"
	Info      FileInfo // of the file as served
	Timestamp int64    // 0: the newest timestamp among upstream's records
}

// Href is where the record's file must be served, relative to the repo root.
func (e ExtraRecord) Href() string { return e.Info.Href(e.Type, e.Ext) }

// DropDerived reports whether a record type is a copy of another record in
// a different form: sqlite databases (*_db) and zchunk files (*_zck). Once
// primary.xml is rewritten they describe the upstream packages, and a
// zchunk-capable client would even prefer a stale primary_zck.
func DropDerived(typ string) bool {
	return strings.HasSuffix(typ, "_db") || strings.HasSuffix(typ, "_zck")
}

// RewrittenHref is the href RewriteRepomd gives a replaced record whose
// upstream href was origHref: the unique-name form of FileInfo.Href, keeping
// the upstream file name's extension (".xml", ".yaml") and taking the codec
// suffix of info.
func RewrittenHref(typ, origHref string, info FileInfo) string {
	base := path.Base(origHref)
	base = strings.TrimSuffix(base, string(CodecOf(base)))
	return info.Href(typ, path.Ext(base))
}

// RewriteRepomd rewrites upstream's repomd.xml for rewritten metadata:
//
//   - each record whose type is a key of replaced gets the checksum,
//     open-checksum, size, open-size of the new file and the href
//     RewrittenHref gives; it keeps upstream's timestamp (the content is
//     derived from the file of that time);
//   - records for which drop reports true are removed (nil means
//     DropDerived), and so are always the *_db and *_zck records of a
//     replaced type;
//   - the extra records are added after the last record, in order, replacing
//     an upstream record of the same type;
//   - xml:base attributes are removed everywhere;
//   - every other byte (revision, tags, other records) is kept as it is.
//
// The result is a function of its arguments: same upstream, same files,
// same bytes. It is checked with ParseRepomd before it is returned.
func RewriteRepomd(orig []byte, replaced map[string]FileInfo, extra []ExtraRecord, drop func(typ string) bool) ([]byte, error) {
	if drop == nil {
		drop = DropDerived
	}
	doc, err := scanRepomd(orig)
	if err != nil {
		return nil, err
	}
	extraTypes := map[string]bool{}
	for _, e := range extra {
		if e.Type == "" || extraTypes[e.Type] || replaced[e.Type] != (FileInfo{}) {
			return nil, fmt.Errorf("extra record %q: empty, repeated or also replaced", e.Type)
		}
		if e.Info.Checksum.Type != "sha256" {
			return nil, fmt.Errorf("extra record %q: no sha256 checksum", e.Type)
		}
		extraTypes[e.Type] = true
	}
	for typ, info := range replaced {
		if !slices.ContainsFunc(doc.records, func(r repomdRecord) bool { return r.typ == typ }) {
			return nil, fmt.Errorf("%w: repomd.xml has no %q record to replace", ErrMalformed, typ)
		}
		if info.Checksum.Type != "sha256" {
			return nil, fmt.Errorf("replaced record %q: no sha256 checksum", typ)
		}
	}
	isDerivedOfReplaced := func(typ string) bool {
		for _, suf := range []string{"_db", "_zck"} {
			if base, ok := strings.CutSuffix(typ, suf); ok && replaced[base] != (FileInfo{}) {
				return true
			}
		}
		return false
	}

	var newest int64
	for _, r := range doc.records {
		newest = max(newest, r.timestamp)
	}
	var edits []byteSplice
	for _, r := range doc.records {
		info, isReplaced := replaced[r.typ]
		switch {
		case isReplaced:
			ts := r.timestamp
			if ts < 0 {
				ts = newest
			}
			rec := doc.formatRecord(r.typ, RewrittenHref(r.typ, r.href, info), info, ts)
			edits = append(edits, byteSplice{at: r.start, end: r.end, text: rec})
		case extraTypes[r.typ] || drop(r.typ) || isDerivedOfReplaced(r.typ):
			edits = append(edits, byteSplice{at: r.wsStart, end: r.end})
		}
	}
	var add []byte
	for _, e := range extra {
		ts := e.Timestamp
		if ts == 0 {
			ts = newest
		}
		add = append(add, '\n')
		add = append(add, doc.dataIndent...)
		add = append(add, doc.formatRecord(e.Type, e.Href(), e.Info, ts)...)
	}
	if len(add) > 0 {
		edits = append(edits, byteSplice{at: doc.lastRecordEnd, end: doc.lastRecordEnd, text: add})
	}
	edits = append(edits, doc.xmlBase...)
	rewritten := applySplices(nil, orig, edits)
	md, err := ParseRepomd(rewritten)
	if err != nil {
		return nil, fmt.Errorf("rewritten repomd.xml does not parse: %w", err)
	}
	for typ, info := range replaced {
		if r, ok := md.Record(typ); !ok || r.Checksum != info.Checksum {
			return nil, fmt.Errorf("rewritten repomd.xml lost the %s record", typ)
		}
	}
	for _, e := range extra {
		if r, ok := md.Record(e.Type); !ok || r.Checksum != e.Info.Checksum {
			return nil, fmt.Errorf("rewritten repomd.xml lost the %s record", e.Type)
		}
	}
	return rewritten, nil
}

type repomdRecord struct {
	typ        string
	href       string
	timestamp  int64 // -1 when absent
	wsStart    int   // start of the white space before the record
	start, end int
}

type repomdDoc struct {
	records       []repomdRecord
	lastRecordEnd int
	dataIndent    []byte // white space before a <data> on its line
	childIndent   []byte // the same for a child of <data>
	xmlBase       []byteSplice
}

// scanRepomd finds the <data> records of a repomd.xml and every xml:base
// attribute.
func scanRepomd(b []byte) (*repomdDoc, error) {
	bad := func(at int, format string, args ...any) error {
		return fmt.Errorf("%w: repomd.xml at byte %d: %s", ErrMalformed, at, fmt.Sprintf(format, args...))
	}
	doc := &repomdDoc{lastRecordEnd: -1}
	var (
		stack    []string
		prevText = [2]int{-1, -1}
		cur      *repomdRecord
		inTS     = -1 // content start of the current <timestamp>
		rootDone bool
	)
	indentOf := func() ([]byte, int) {
		if prevText[0] < 0 || !isXMLSpace(b[prevText[0]:prevText[1]]) {
			return nil, -1
		}
		txt := b[prevText[0]:prevText[1]]
		if i := bytes.LastIndexByte(txt, '\n'); i >= 0 {
			return txt[i+1:], prevText[0] + i
		}
		return txt, prevText[0]
	}
	for p := 0; p < len(b); {
		t, err := lexXML(b, p, true)
		if err != nil {
			if le, ok := err.(*xmlLexError); ok {
				return nil, bad(le.at, "%s", le.msg)
			}
			return nil, err
		}
		p = t.end
		depth := len(stack)
		switch t.kind {
		case tokText:
			if depth == 0 && !isXMLSpace(bytes.TrimPrefix(b[t.start:t.end], []byte("\xef\xbb\xbf"))) {
				return nil, bad(t.start, "text outside the root element")
			}
			prevText = [2]int{t.start, t.end}
			continue
		case tokDoctype:
			return nil, bad(t.start, "DOCTYPE declarations are not allowed")
		case tokCDATA:
			if depth == 0 {
				return nil, bad(t.start, "CDATA outside the root element")
			}
		case tokStart, tokEmpty:
			name := string(b[t.nameStart:t.nameEnd])
			if depth == 0 {
				if rootDone || name != "repomd" {
					return nil, bad(t.start, "unexpected <%s>", name)
				}
				rootDone = true
			}
			if depth == 1 && name == "data" {
				ind, ws := indentOf()
				if doc.dataIndent == nil {
					doc.dataIndent = ind
				}
				if ws < 0 {
					ws = t.start
				}
				doc.records = append(doc.records, repomdRecord{timestamp: -1, wsStart: ws, start: t.start, end: t.end})
				cur = &doc.records[len(doc.records)-1]
			}
			err := forXMLAttrs(b, t, func(n []byte, vs, ve, as int) error {
				if string(n) == "xml:base" {
					doc.xmlBase = append(doc.xmlBase, byteSplice{at: as, end: ve + 1})
				}
				var dst *string
				switch {
				case depth == 1 && name == "data" && string(n) == "type":
					dst = &cur.typ
				case depth == 2 && cur != nil && name == "location" && string(n) == "href":
					dst = &cur.href
				default:
					return nil
				}
				v, err := xmlUnescape(b[vs:ve], vs)
				*dst = v
				return err
			})
			if err != nil {
				if le, ok := err.(*xmlLexError); ok {
					return nil, bad(le.at, "%s", le.msg)
				}
				return nil, err
			}
			if depth == 2 && cur != nil {
				if doc.childIndent == nil && len(doc.records) == 1 {
					doc.childIndent, _ = indentOf()
				}
				if name == "timestamp" && t.kind == tokStart {
					inTS = t.end
				}
			}
			if t.kind == tokStart {
				stack = append(stack, name)
			} else if depth == 1 && cur != nil {
				doc.lastRecordEnd, cur = t.end, nil
			}
		case tokEnd:
			name := string(b[t.nameStart:t.nameEnd])
			if depth == 0 || stack[depth-1] != name {
				return nil, bad(t.start, "unexpected </%s>", name)
			}
			stack = stack[:depth-1]
			if depth == 3 && inTS >= 0 {
				v, err := xmlUnescape(b[inTS:t.start], inTS)
				if err != nil {
					return nil, bad(inTS, "bad timestamp")
				}
				if n, ok := ParseTimestamp(v); ok {
					cur.timestamp = n
				}
				inTS = -1
			}
			if depth == 2 && cur != nil {
				cur.end = t.end
				doc.lastRecordEnd, cur = t.end, nil
			}
		}
		prevText = [2]int{-1, -1}
	}
	if !rootDone || len(stack) != 0 {
		return nil, bad(len(b), "unexpected end of document")
	}
	if len(doc.records) == 0 {
		return nil, fmt.Errorf("%w: repomd.xml lists no data", ErrMalformed)
	}
	if doc.dataIndent == nil {
		doc.dataIndent = []byte("  ")
	}
	if doc.childIndent == nil {
		doc.childIndent = append(slices.Clone(doc.dataIndent), "  "...)
	}
	return doc, nil
}

// formatRecord renders a <data> element in createrepo_c's layout, indented
// like upstream's records. An uncompressed file has no open-checksum or
// open-size, as createrepo_c writes it.
func (doc *repomdDoc) formatRecord(typ, href string, info FileInfo, timestamp int64) []byte {
	ci := string(doc.childIndent)
	var b []byte
	b = append(b, `<data type="`...)
	b = xmlEscapeAttr(b, typ)
	b = append(b, "\">\n"...)
	b = append(b, ci+`<checksum type="sha256">`+info.Checksum.Value+"</checksum>\n"...)
	if info.Codec != None {
		b = append(b, ci+`<open-checksum type="sha256">`+info.OpenChecksum.Value+"</open-checksum>\n"...)
	}
	b = append(b, ci+`<location href="`...)
	b = xmlEscapeAttr(b, href)
	b = append(b, "\"/>\n"...)
	b = append(b, ci+"<timestamp>"+strconv.FormatInt(timestamp, 10)+"</timestamp>\n"...)
	b = append(b, ci+"<size>"+strconv.FormatInt(info.Size, 10)+"</size>\n"...)
	if info.Codec != None {
		b = append(b, ci+"<open-size>"+strconv.FormatInt(info.OpenSize, 10)+"</open-size>\n"...)
	}
	b = append(b, doc.dataIndent...)
	return append(b, "</data>"...)
}
