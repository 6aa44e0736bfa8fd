package metadata

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// This file filters comps.xml, the package groups of `dnf group`, for the
// filter view: a group that names a package the view dropped makes
// `dnf group install` fail ("nothing provides ..."), so the names go from
// the groups too. Like the package files, comps is never decoded and
// encoded again: every byte outside the dropped <packagereq> elements is
// copied as it came, DOCTYPE and all.

// CompsGroup is a group of comps.xml that a filter took packages from.
type CompsGroup struct {
	ID      string   `json:"id"`
	Removed []string `json:"removed"` // package names dropped from its packagelist, in document order
	Empty   bool     `json:"empty"`   // no <packagereq> is left; the group itself stays
}

// CompsResult describes a filtered comps file.
type CompsResult struct {
	FileInfo              // of the output
	Groups   []CompsGroup // the groups that lost packages, in document order
	Removed  int          // <packagereq> elements dropped
}

// IsCompsRecord reports whether a repomd.xml record type holds comps.xml:
// "group" (plain) and its compressed copies "group_gz", "group_xz", ...
// A view that filters comps rewrites all of them; "group_zck" is a zchunk
// copy, which RewriteRepomd drops once "group" is replaced.
func IsCompsRecord(typ string) bool {
	return typ == "group" || strings.HasPrefix(typ, "group_") && !DropDerived(typ)
}

// FilterComps reads comps.xml (compressed with inCodec; at most limit bytes
// once decompressed) and writes it to out compressed with outCodec, without
// the <packagereq> elements of groups whose package name drop reports. The
// white space before a dropped element goes with it; a group left with an
// empty packagelist stays. Categories, environments and langpacks name
// groups or patterns, not packages, and are copied unchanged.
//
// drop gets the package name as comps gives it, entities and CDATA
// decoded and nothing trimmed, as libcomps (dnf's comps parser) reads it:
// " bear " names no package for dnf either. The caller passes the names no
// kept package has: a name of which the view keeps any build must stay.
//
// The output is a function of the input and drop. The result lists the
// groups that lost packages. Errors: ErrMalformed for input that is not a
// well-formed comps document (an internal DTD subset included, as it could
// define entities), ErrTooLarge over the limit; what was written to out is
// then garbage.
func FilterComps(in io.Reader, inCodec Codec, out io.Writer, outCodec Codec, limit int64, drop func(name string) bool) (CompsResult, error) {
	var res CompsResult
	fw, err := NewFileWriter(out, outCodec)
	if err != nil {
		return res, err
	}
	rc, err := Decompress(in, inCodec, limit)
	if err != nil {
		return res, err
	}
	defer rc.Close()
	f := &compsFilter{r: rc, w: fw, drop: drop, buf: make([]byte, 64<<10)}
	if err := f.run(); err != nil {
		return res, err
	}
	if err := fw.Close(); err != nil {
		return res, err
	}
	res.FileInfo = fw.Info()
	for _, g := range f.groups {
		if len(g.Removed) > 0 {
			res.Groups = append(res.Groups, g)
			res.Removed += len(g.Removed)
		}
	}
	return res, nil
}

type compsFilter struct {
	r    io.Reader
	w    io.Writer
	drop func(string) bool

	buf      []byte
	pos, end int   // unread bytes: buf[pos:end]
	off      int64 // stream offset of buf[0]
	eof      bool

	stack   []string
	rootEnd bool // the root element has ended

	pendingWS []byte // white space not yet written: it goes with a dropped packagereq

	groups []CompsGroup // every group so far
	group  *CompsGroup  // the group being read
	left   int          // packagereqs kept in the current group
	inID   bool         // in the current group's <id>
	idText []byte

	req     []byte // a packagereq being read: its white space and raw bytes
	reqText []byte // its content
	inReq   bool
}

func (f *compsFilter) malformed(at int, format string, args ...any) error {
	return fmt.Errorf("%w: comps.xml at byte %d: %s", ErrMalformed, f.off+int64(at), fmt.Sprintf(format, args...))
}

// more reads into the buffer, keeping the unread bytes.
func (f *compsFilter) more() error {
	if f.eof {
		return io.ErrUnexpectedEOF
	}
	if f.pos > 0 {
		copy(f.buf, f.buf[f.pos:f.end])
		f.off += int64(f.pos)
		f.end -= f.pos
		f.pos = 0
	}
	if f.end == len(f.buf) {
		f.buf = append(f.buf, make([]byte, len(f.buf))...)
	}
	for range 100 {
		n, err := f.r.Read(f.buf[f.end:])
		f.end += n
		if err == io.EOF {
			f.eof = true
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

// emit writes raw, after the white space held before it.
func (f *compsFilter) emit(raw []byte) error {
	if f.inReq {
		f.req = append(f.req, raw...)
		return nil
	}
	if len(f.pendingWS) > 0 {
		if _, err := f.w.Write(f.pendingWS); err != nil {
			return err
		}
		f.pendingWS = f.pendingWS[:0]
	}
	_, err := f.w.Write(raw)
	return err
}

func (f *compsFilter) run() error {
	for {
		if f.pos == f.end {
			if !f.eof {
				if err := f.more(); err != nil {
					return err
				}
				continue
			}
			if !f.rootEnd {
				return f.malformed(f.end, "unexpected end of document")
			}
			return f.emit(nil)
		}
		t, err := lexXML(f.buf[:f.end], f.pos, f.eof)
		if err == nil && t.kind == tokDoctype {
			t.end, err = doctypeEnd(f.buf[:f.end], t.start, f.eof)
		}
		if err == errXMLShort {
			if err := f.more(); err != nil {
				return err
			}
			continue
		}
		var le *xmlLexError
		if errors.As(err, &le) {
			return f.malformed(le.at, "%s", le.msg)
		}
		if err != nil {
			return err
		}
		if err := f.token(t); err != nil {
			return err
		}
		f.pos = t.end
	}
}

func (f *compsFilter) token(t xtoken) error {
	b := f.buf
	raw := b[t.start:t.end]
	depth := len(f.stack)
	switch t.kind {
	case tokText:
		if depth == 0 {
			txt := raw
			if f.off+int64(t.start) == 0 {
				txt = bytes.TrimPrefix(txt, []byte("\xef\xbb\xbf"))
			}
			if !isXMLSpace(txt) {
				return f.malformed(t.start, "text outside the root element")
			}
		}
		switch {
		case f.inReq:
			f.reqText = append(f.reqText, raw...)
		case f.inID:
			f.idText = append(f.idText, raw...)
		}
		if !f.inReq && isXMLSpace(raw) {
			f.pendingWS = append(f.pendingWS, raw...)
			return nil
		}
	case tokCDATA:
		if depth == 0 {
			return f.malformed(t.start, "CDATA outside the root element")
		}
		switch {
		case f.inReq:
			f.reqText = append(f.reqText, raw...)
		case f.inID:
			f.idText = append(f.idText, raw...)
		}
	case tokDoctype:
		if depth > 0 || f.rootEnd {
			return f.malformed(t.start, "misplaced DOCTYPE")
		}
	case tokComment, tokPI:
	case tokStart, tokEmpty:
		name := string(b[t.nameStart:t.nameEnd])
		if depth == 0 {
			if f.rootEnd || name != "comps" {
				return f.malformed(t.start, "unexpected <%s> (want one <comps> root element)", name)
			}
		}
		if f.inReq || f.inID {
			return f.malformed(t.start, "<%s> inside a text element", name)
		}
		switch {
		case depth == 1 && name == "group":
			f.groups = append(f.groups, CompsGroup{})
			f.group, f.left = &f.groups[len(f.groups)-1], 0
		case depth == 2 && f.group != nil && name == "id" && f.group.ID == "" && t.kind == tokStart:
			f.inID, f.idText = true, f.idText[:0]
		case depth == 3 && f.group != nil && name == "packagereq" && f.stack[2] == "packagelist":
			if t.kind == tokEmpty {
				f.left++
				break
			}
			// Hold the element, with the white space before it, until
			// its name is known.
			f.inReq = true
			f.req = append(f.req[:0], f.pendingWS...)
			f.pendingWS = f.pendingWS[:0]
			f.reqText = f.reqText[:0]
		}
		if t.kind == tokStart {
			f.stack = append(f.stack, name)
		} else if depth == 0 {
			f.rootEnd = true
		}
	case tokEnd:
		name := string(b[t.nameStart:t.nameEnd])
		if depth == 0 || f.stack[depth-1] != name {
			return f.malformed(t.start, "unexpected </%s>", name)
		}
		f.stack = f.stack[:depth-1]
		switch {
		case depth == 1:
			f.rootEnd = true
		case depth == 2 && f.group != nil:
			f.group.Empty = len(f.group.Removed) > 0 && f.left == 0
			f.group = nil
		case f.inID && depth == 3:
			id, err := xmlUnescape(f.idText, t.start)
			if err != nil {
				return f.malformed(t.start, "group id: %v", err)
			}
			f.group.ID, f.inID = strings.TrimSpace(id), false
		case f.inReq && depth == 4:
			f.inReq = false
			f.req = append(f.req, raw...)
			n, err := xmlUnescape(f.reqText, t.start)
			if err != nil {
				return f.malformed(t.start, "packagereq: %v", err)
			}
			if n != "" && f.drop(n) {
				f.group.Removed = append(f.group.Removed, n)
				return nil
			}
			f.left++
			return f.emit(f.req)
		}
	}
	return f.emit(raw)
}

// doctypeEnd returns the end of the DOCTYPE declaration at b[p]: the '>'
// after its quoted public and system identifiers. An internal subset is
// refused: it could declare entities, which this package does not expand.
func doctypeEnd(b []byte, p int, atEOF bool) (int, error) {
	var quote byte
	for q := p + len("<!DOCTYPE"); q < len(b); q++ {
		c := b[q]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[':
			return 0, &xmlLexError{at: q, msg: "DOCTYPE with an internal subset"}
		case c == '>':
			return q + 1, nil
		case c == '<':
			return 0, &xmlLexError{at: q, msg: "bad DOCTYPE"}
		}
	}
	return 0, shortOrEOF(p, atEOF)
}
