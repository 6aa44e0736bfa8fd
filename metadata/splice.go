package metadata

import (
	"bytes"
	"io"
)

// splicer copies a stream to an output while an xml.Decoder reads the same
// stream, so that chosen byte ranges (whole elements, found by the
// decoder's InputOffset) can be dropped or replaced and everything else is
// written byte for byte. It keeps only the bytes not yet written.
type splicer struct {
	src  io.Reader
	out  io.Writer
	buf  bytes.Buffer // bytes from offset base on, read but not yet written
	base int64
}

func (s *splicer) Read(p []byte) (int, error) {
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
