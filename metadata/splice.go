package metadata

import (
	"bytes"
	"fmt"
	"io"
	"slices"
)

// splicer copies a stream to an output while an xml.Decoder reads the same
// stream, so that chosen byte ranges (whole elements, found by the
// decoder's InputOffset) can be dropped or replaced and everything else is
// written byte for byte. It keeps only the bytes not yet written: with max
// set, more than max of them (one token, or an element being skipped, that
// is too large) is ErrTooLarge, kept in err and returned by Read, so the
// decoder never holds more either.
type splicer struct {
	src  io.Reader
	out  io.Writer
	buf  bytes.Buffer // bytes from offset base on, read but not yet written
	base int64
	max  int64  // 0: no limit
	what string // the file, for errors
	err  error
}

func (s *splicer) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	// What is held beyond max before this read is one token too many (the
	// decoder reads ahead by at most one buffer, which is not counted).
	if s.max > 0 && int64(s.buf.Len()) > s.max {
		s.err = fmt.Errorf("%w: %s at byte %d: an element or text node over %d bytes (the limit)", ErrTooLarge, s.what, s.base, s.max)
		return 0, s.err
	}
	n, err := s.src.Read(p)
	s.buf.Write(p[:n])
	return n, err
}

// copyTo writes the input up to offset off.
func (s *splicer) copyTo(off int64) error {
	n := off - s.base
	if n <= 0 {
		return nil
	}
	if _, err := s.out.Write(s.buf.Next(int(n))); err != nil {
		return err
	}
	s.base = off
	return nil
}

// skipTo drops the input up to offset off.
func (s *splicer) skipTo(off int64) {
	if n := off - s.base; n > 0 {
		s.buf.Next(int(n))
		s.base = off
	}
}

// finish writes what remains (the decoder has reached EOF).
func (s *splicer) finish() error {
	_, err := io.Copy(s.out, &s.buf)
	return err
}

// byteSplice replaces raw[at:end] with text.
type byteSplice struct {
	at, end int
	text    []byte
}

// applySplices appends raw to dst with the edits applied in position
// order. An edit inside a range another edit already replaced is skipped
// (an xml:base inside a repomd record that is replaced or dropped).
func applySplices(dst, raw []byte, edits []byteSplice) []byte {
	slices.SortStableFunc(edits, func(a, b byteSplice) int { return a.at - b.at })
	last := 0
	for _, e := range edits {
		if e.at < last {
			continue
		}
		dst = append(dst, raw[last:e.at]...)
		dst = append(dst, e.text...)
		last = e.end
	}
	return append(dst, raw[last:]...)
}
