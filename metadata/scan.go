package metadata

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// This file is the one reader of primary.xml: the package index, the
// analysis (ABI provides with their versions), the dependency data and the
// rewrite's plan all come from it. It is built on the rewriter's document
// scanner (scanDocument in rewrite.go), which cuts the document into items
// and hands over each <package> element as its bytes, within the element
// size limit; each package's bytes are then lexed once, with the same
// lexer, for the fields asked for.
//
// What it accepts and yields is what encoding/xml did with the structs
// this package used before (TestScanEquivalence* hold the two side by side
// on real repositories and hand-made cases, FuzzScanPrimaryEquivalence on
// anything both accept): element and attribute names match by local name,
// whatever their namespace prefix; a field's text is its direct character
// data and CDATA, with references decoded and line ends normalised; when an
// element comes twice the last one wins; invalid UTF-8, characters XML
// forbids and unknown entities are errors anywhere in a package; an XML
// declaration must say version 1.0 and UTF-8. It is stricter where the
// rewriter's document scanner, which reads each package's identity, always
// was: the document element is <metadata>, packages are its children and
// nothing follows it; a package has a checksum with a pkgid attribute; its
// name, arch and checksum are unprefixed elements of plain text; DOCTYPE
// declarations are refused. A location's xml:base is given as
// Package.LocationBase (the old scanners refused it).

// ScanPrimary streams the uncompressed primary.xml in r and calls fn for
// every package, in document order, within the default Limits. It validates
// what the proxy relies on: a safe href, a checksum of a known type, a size.
func ScanPrimary(r io.Reader, fn func(Package) error) error {
	return Limits{}.ScanPrimary(r, fn)
}

// ScanPrimaryDeps is ScanPrimaryAll within the default Limits, with the
// package passed by value.
func ScanPrimaryDeps(r io.Reader, fn func(PackageDeps) error) error {
	return Limits{}.ScanPrimaryAll(r, func(p *PackageDeps) error { return fn(*p) })
}

// ScanPrimaryAll streams primary.xml within the default Limits; see
// Limits.ScanPrimaryAll.
func ScanPrimaryAll(r io.Reader, fn func(*PackageDeps) error) error {
	return Limits{}.ScanPrimaryAll(r, fn)
}

// ScanPrimary is the package-level ScanPrimary within l.
func (l Limits) ScanPrimary(r io.Reader, fn func(Package) error) error {
	return l.scanPrimary(r, 0, func(p *PackageDeps) error { return fn(p.Package) })
}

// ScanFields says what a scan reads of each package's dependency data; the
// rest of PackageDeps is always read.
type ScanFields uint8

const (
	ScanProvides ScanFields = 1 << iota // Provides and ABIProvides
	ScanRequires                        // Requires and Files
	ScanAll      = ScanProvides | ScanRequires
)

// ScanPrimaryFields is ScanPrimaryAll reading only the dependency data f
// asks for: what it does not ask for is validated and left empty.
func (l Limits) ScanPrimaryFields(r io.Reader, f ScanFields, fn func(*PackageDeps) error) error {
	return l.scanPrimary(r, f, fn)
}

// ScanPrimaryAll streams the uncompressed primary.xml in r and calls fn
// for every package, in document order, with everything the proxy reads
// from primary.xml: the package (validated as by ScanPrimary), its pkgid,
// and its dependency data (see PackageDeps), so that one pass serves the
// package index, the analysis and the dependency checks. fn owns p and its
// slices. An element over l.MaxElement bytes is ErrTooLarge; bad XML or a
// package without what ScanPrimary validates is ErrMalformed; fn's error
// stops the scan and is returned as it is.
func (l Limits) ScanPrimaryAll(r io.Reader, fn func(*PackageDeps) error) error {
	return l.scanPrimary(r, ScanAll, fn)
}

func (l Limits) scanPrimary(r io.Reader, fields ScanFields, fn func(*PackageDeps) error) error {
	var (
		pp     = primaryParser{fields: fields}
		n      int
		inBody bool
	)
	err := scanDocumentMax(KindPrimary, r, nil, l.element(), func(it *docItem) error {
		switch it.kind {
		case itemRoot:
			inBody = true
			if err := checkXMLText(it.raw, 0); err != nil {
				return err
			}
			t, err := lexXML(it.raw, 0, true)
			if err == nil {
				err = forXMLAttrs(it.raw, t, func(_ []byte, vs, ve, _ int) error { return checkRefs(it.raw[vs:ve], vs) })
			}
			if err != nil {
				return fmt.Errorf("%w: primary.xml root element: %v", ErrMalformed, lexMessage(err))
			}
			return nil
		case itemRootEnd:
			return nil
		case itemText, itemMarkup:
			if !inBody && bytes.HasPrefix(it.raw, []byte("<?xml")) && len(it.raw) > 5 && isSpaceByte(it.raw[5]) {
				if err := checkXMLDecl(it.raw); err != nil {
					return err
				}
			}
			if it.kind == itemText {
				if err := checkRefs(it.raw, 0); err != nil {
					return fmt.Errorf("%w: primary.xml: %v", ErrMalformed, err)
				}
			}
			return checkXMLText(it.raw, 0)
		}
		n++
		p := &PackageDeps{PkgID: it.pkg.pkgid}
		if err := pp.parse(it.pkg.raw, p); err != nil {
			return fmt.Errorf("%w: primary.xml package %d: %v", ErrMalformed, n, err)
		}
		if err := fn(p); err != nil {
			if errors.Is(err, ErrMalformed) {
				return fmt.Errorf("primary.xml package %d (%s): %w", n, p.Name, err)
			}
			return err
		}
		return nil
	})
	return err
}

// checkXMLDecl refuses what encoding/xml refuses in an XML declaration: a
// version other than 1.0, an encoding other than UTF-8.
func checkXMLDecl(pi []byte) error {
	decl := string(pi)
	if v := declValue(decl, "version"); v != "" && v != "1.0" {
		return fmt.Errorf("%w: primary.xml: XML version %q", ErrMalformed, v)
	}
	if e := declValue(decl, "encoding"); e != "" && !strings.EqualFold(e, "utf-8") {
		return fmt.Errorf("%w: primary.xml: encoding %q (only UTF-8 is read)", ErrMalformed, e)
	}
	return nil
}

// declValue returns the value of the pseudo-attribute name in an XML
// declaration.
func declValue(decl, name string) string {
	i := strings.Index(decl, name)
	for i > 0 && !isSpaceByte(decl[i-1]) {
		j := strings.Index(decl[i+1:], name)
		if j < 0 {
			return ""
		}
		i += 1 + j
	}
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(decl[i+len(name):], " \t\r\n")
	if !strings.HasPrefix(rest, "=") {
		return ""
	}
	rest = strings.TrimLeft(rest[1:], " \t\r\n")
	if rest == "" || rest[0] != '"' && rest[0] != '\'' {
		return ""
	}
	end := strings.IndexByte(rest[1:], rest[0])
	if end < 0 {
		return ""
	}
	return rest[1 : 1+end]
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// xmlCharClass classifies bytes for checkXMLText: 0 fine, 1 a control
// character XML forbids, 2 the start of a multi-byte sequence.
var xmlCharClass = func() (t [256]byte) {
	for c := range 0x20 {
		if c != '\t' && c != '\n' && c != '\r' {
			t[c] = 1
		}
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] = 2
	}
	return t
}()

// checkXMLText reports invalid UTF-8 and characters XML 1.0 does not
// allow. at is the offset of b, for errors.
func checkXMLText(b []byte, at int) error {
	for i := 0; i < len(b); i++ {
		// Eight bytes at a time while they are printable ASCII: no high
		// bit set, and none below 0x20 (the test is exact without high
		// bits).
		for i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			if w&0x8080808080808080|(w-0x2020202020202020)&^w&0x8080808080808080 != 0 {
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		switch xmlCharClass[b[i]] {
		case 0:
			continue
		case 1:
			return fmt.Errorf("%w: primary.xml: character %#02x at byte %d of an item", ErrMalformed, b[i], at+i)
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 || !isXMLChar(r) {
			return fmt.Errorf("%w: primary.xml: invalid UTF-8 or character at byte %d of an item", ErrMalformed, at+i)
		}
		i += size - 1
	}
	return nil
}

// primaryParser reads the fields of one <package> element, given as its
// complete bytes.
type primaryParser struct {
	fields ScanFields
	stack  [][]byte // names of the open elements
	x      xmlPackage

	// Scratch lists, reused from package to package.
	provides, requires []xmlDepEntry
	files              []string
}

// pkgField names the element whose text is being collected.
type pkgField uint8

const (
	fieldNone pkgField = iota
	fieldName
	fieldArch
	fieldChecksum
	fieldFile
)

func (pp *primaryParser) parse(raw []byte, d *PackageDeps) error {
	if err := checkXMLText(raw, 0); err != nil {
		return err
	}
	pp.x = xmlPackage{}
	x := &pp.x
	stack := pp.stack[:0]
	defer func() { pp.stack = stack[:0] }()
	var (
		field      pkgField
		fieldDepth int    // depth of the field's element
		text       string // its text so far
		inFormat   bool   // within a <format> child of the package
		depList    *[]xmlDepEntry
		provides   = pp.provides[:0]
		requires   = pp.requires[:0]
		files      = pp.files[:0]
		err        error
	)
	defer func() { pp.provides, pp.requires, pp.files = provides[:0], requires[:0], files[:0] }()
	for q := 0; q < len(raw); {
		var (
			t       xtoken
			lerr    error
			entry   xmlDepEntry
			isEntry bool // t is an entry's start tag, its attributes in entry
		)
		if depList != nil && len(stack) == 3 {
			t, isEntry, lerr = lexEntryTag(raw, q, depList == &provides, &entry)
		} else {
			t, lerr = lexXML(raw, q, true)
		}
		if lerr != nil {
			return lexMessage(lerr)
		}
		q = t.end
		depth := len(stack)
		switch t.kind {
		case tokText, tokCDATA:
			if field == fieldNone || depth != fieldDepth+1 {
				if t.kind == tokText {
					if err := checkRefs(raw[t.start:t.end], t.start); err != nil {
						return err // a reference nobody reads is still checked
					}
				}
				continue
			}
			var s string
			if t.kind == tokCDATA {
				s = normalizeNewlines(string(raw[t.start+len("<![CDATA[") : t.end-len("]]>")]))
			} else if s, err = decodeXMLText(raw[t.start:t.end], t.start); err != nil {
				return err
			}
			text += s
		case tokDoctype:
			return errors.New("DOCTYPE declarations are not allowed")
		case tokComment, tokPI:
			continue
		case tokStart, tokEmpty:
			name := localName(raw[t.nameStart:t.nameEnd])
			checked := false // attribute values decoded
			switch {
			case depth == 1:
				switch string(name) {
				case "name":
					field = fieldName
				case "arch":
					field = fieldArch
				case "checksum":
					field = fieldChecksum
					checked, err = true, pp.attrs(raw, t, func(n []byte, v string) {
						if string(n) == "type" {
							x.Checksum.Type = v
						}
					})
				case "version":
					checked, err = true, pp.attrs(raw, t, func(n []byte, v string) {
						switch string(n) {
						case "epoch":
							x.Version.Epoch = v
						case "ver":
							x.Version.Ver = v
						case "rel":
							x.Version.Rel = v
						}
					})
				case "size":
					checked, err = true, pp.attrs(raw, t, func(n []byte, v string) {
						if string(n) == "package" {
							x.Size.Package = v
						}
					})
				case "location":
					checked, err = true, pp.attrs(raw, t, func(n []byte, v string) {
						switch string(n) {
						case "href":
							x.Location.Href = v
						case "base":
							x.Location.Base = v
						}
					})
				case "format":
					inFormat = pp.fields != 0
				}
				if field != fieldNone {
					fieldDepth, text = depth, ""
				}
			case depth == 2 && inFormat:
				switch string(name) {
				case "provides":
					if pp.fields&ScanProvides != 0 {
						depList = &provides
					}
				case "requires":
					if pp.fields&ScanRequires != 0 {
						depList = &requires
					}
				case "file":
					if pp.fields&ScanRequires != 0 {
						field, fieldDepth, text = fieldFile, depth, ""
					}
				}
			case isEntry:
				checked = true
				*depList = append(*depList, entry)
			}
			if err == nil && !checked && bytes.IndexByte(raw[t.nameEnd:t.end], '&') >= 0 {
				err = forXMLAttrs(raw, t, func(_ []byte, vs, ve, _ int) error { return checkRefs(raw[vs:ve], vs) })
			}
			if err != nil {
				return err
			}
			if t.kind == tokStart {
				stack = append(stack, raw[t.nameStart:t.nameEnd])
				continue
			}
			// An empty element closes at once.
			depth++
			fallthrough
		case tokEnd:
			if t.kind == tokEnd {
				if depth == 0 {
					return errors.New("unexpected end tag")
				}
				if !bytes.Equal(stack[depth-1], raw[t.nameStart:t.nameEnd]) {
					return fmt.Errorf("</%s> closes <%s>", raw[t.nameStart:t.nameEnd], stack[depth-1])
				}
				stack = stack[:depth-1]
			}
			depth--
			if field != fieldNone && depth == fieldDepth {
				switch field {
				case fieldName:
					x.Name = text
				case fieldArch:
					x.Arch = text
				case fieldChecksum:
					x.Checksum.Value = text
				case fieldFile:
					files = append(files, text)
				}
				field = fieldNone
			}
			switch depth {
			case 0:
				if q != len(raw) {
					return errors.New("bytes after the package element")
				}
			case 1:
				inFormat = false
			case 2:
				depList = nil
			}
		}
	}
	if len(stack) != 0 {
		return errors.New("unclosed package element")
	}
	p, err := x.toPackage()
	if err != nil {
		return err
	}
	d.Package = p
	if pp.fields == 0 {
		return nil
	}
	for _, e := range provides {
		if name := strings.TrimSpace(e.Name); name != "" {
			d.Provides = append(d.Provides, name)
			if IsABIProvide(name) {
				d.ABIProvides = append(d.ABIProvides, Provide{Name: name, Version: e.Ver})
			}
		}
	}
	for _, e := range requires {
		name := strings.TrimSpace(e.Name)
		if name == "" || strings.HasPrefix(name, "rpmlib(") {
			continue
		}
		d.Requires = append(d.Requires, name)
	}
	for _, f := range files {
		if f = strings.TrimSpace(f); f != "" {
			d.Files = append(d.Files, f)
		}
	}
	return nil
}

// attrs calls fn with the local name and decoded value of each attribute
// of the start tag t, in order (so a repeated one's last value wins).
func (pp *primaryParser) attrs(raw []byte, t xtoken, fn func(name []byte, value string)) error {
	return forXMLAttrs(raw, t, func(n []byte, vs, ve, _ int) error {
		v, err := decodeXMLText(raw[vs:ve], vs)
		if err != nil {
			return err
		}
		fn(localName(n), v)
		return nil
	})
}

// lexEntryTag lexes the token at raw[q] inside a provides or requires
// list. An <entry> start tag is lexed once, its attributes decoded on the
// way: the name, and a provide's version; the others' references are
// checked. Any other token is lexXML's.
func lexEntryTag(raw []byte, q int, isProvide bool, e *xmlDepEntry) (xtoken, bool, error) {
	if q+1 >= len(raw) || raw[q] != '<' || !isXMLNameStart(raw[q+1]) {
		t, err := lexXML(raw, q, true)
		return t, false, err
	}
	ne, ok, _ := lexXMLName(raw, q+1)
	if !ok || string(localName(raw[q+1:ne])) != "entry" {
		t, err := lexXML(raw, q, true)
		return t, false, err
	}
	end, empty, err := lexXMLAttrs(raw, ne, func(n []byte, vs, ve, _ int) error {
		var dst *string
		switch string(localName(n)) {
		case "name":
			dst = &e.Name
		case "ver":
			if !isProvide {
				return checkRefs(raw[vs:ve], vs)
			}
			dst = &e.Ver
		default:
			return checkRefs(raw[vs:ve], vs)
		}
		v, err := decodeXMLText(raw[vs:ve], vs)
		*dst = v
		return err
	})
	if err == errXMLShort {
		return xtoken{}, false, &xmlLexError{at: q, msg: "unexpected end of document"}
	}
	if err != nil {
		return xtoken{}, false, err
	}
	t := xtoken{kind: tokStart, start: q, end: end, nameStart: q + 1, nameEnd: ne}
	if empty {
		t.kind = tokEmpty
	}
	return t, true, nil
}

// checkRefs checks the references of a text or attribute value that is
// not decoded.
func checkRefs(b []byte, at int) error {
	for i := bytes.IndexByte(b, '&'); i >= 0; {
		j := bytes.IndexByte(b[i:], ';')
		if j < 0 {
			return errors.New("unterminated reference")
		}
		switch string(b[i+1 : i+j]) {
		case "lt", "gt", "amp", "quot", "apos":
		default: // a character reference, or an unknown entity
			if _, err := xmlUnescape(b[i:i+j+1], at+i); err != nil {
				return lexMessage(err)
			}
		}
		i += j + 1
		k := bytes.IndexByte(b[i:], '&')
		if k < 0 {
			break
		}
		i += k
	}
	return nil
}

// localName strips a namespace prefix as encoding/xml does: "rpm:entry"
// is "entry"; a name with an empty side of its colon is kept whole.
func localName(name []byte) []byte {
	i := bytes.IndexByte(name, ':')
	if i <= 0 || i == len(name)-1 {
		return name
	}
	return name[i+1:]
}

// decodeXMLText decodes character data or an attribute value without
// markup: references are replaced, and line ends normalised to "\n" as XML
// parsers do.
func decodeXMLText(b []byte, at int) (string, error) {
	if bytes.IndexByte(b, '&') < 0 && bytes.IndexByte(b, '\r') < 0 {
		return string(b), nil
	}
	if bytes.IndexByte(b, '\r') >= 0 { // before decoding: a &#13; stays
		b = []byte(normalizeNewlines(string(b)))
	}
	s, err := xmlUnescape(b, at)
	if err != nil {
		return "", lexMessage(err)
	}
	return s, nil
}

func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// lexMessage turns a lexer error into a plain one (the caller adds the
// package's position).
func lexMessage(err error) error {
	var le *xmlLexError
	if errors.As(err, &le) {
		return errors.New(le.msg)
	}
	return err
}
