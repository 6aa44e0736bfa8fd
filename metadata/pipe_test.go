package metadata

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"testing/iotest"
)

// TestReadAheadPassesBytesAndErrors: the read-ahead goroutine delivers
// every byte in order, whatever the read sizes on either side, and ends
// with the source's own error: a truncated stream's io.ErrUnexpectedEOF
// must stay an error, not become a clean end.
func TestReadAheadPassesBytesAndErrors(t *testing.T) {
	data := make([]byte, 3*pipeBufSize+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		src  io.Reader
		want error
	}{
		{"whole", bytes.NewReader(data), nil},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(data)), nil},
		{"truncated", io.MultiReader(bytes.NewReader(data), iotest.ErrReader(io.ErrUnexpectedEOF)), io.ErrUnexpectedEOF},
		{"failing", io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra := newReadAhead(tc.src)
			got, err := io.ReadAll(iotest.HalfReader(ra))
			ra.Close()
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, want the %d written, in order", len(got), len(data))
			}
		})
	}
	// Closing early stops the goroutine without reading the rest.
	ra := newReadAhead(repeatReader('x'))
	if _, err := ra.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	ra.Close()
}

// TestScanPrimaryRefusesTruncatedGzip: a primary.xml.gz cut inside its
// trailer holds the whole document but fails the gzip check; the scan,
// with its decoder running ahead, must say so.
func TestScanPrimaryRefusesTruncatedGzip(t *testing.T) {
	xml, err := os.ReadFile("testdata/primary.xml")
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw, err := Compress(&gz, Gzip)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(xml)
	zw.Close()
	scan := func(b []byte) error {
		zr, err := Decompress(bytes.NewReader(b), Gzip, 1<<30)
		if err != nil {
			return err
		}
		defer zr.Close()
		return ScanPrimary(zr, func(Package) error { return nil })
	}
	if err := scan(gz.Bytes()); err != nil {
		t.Fatalf("whole file: %v", err)
	}
	if err := scan(gz.Bytes()[:gz.Len()-3]); err == nil {
		t.Fatal("a gzip file cut in its trailer was scanned without an error")
	}
}

// TestWriteBehindPassesBytesAndErrors: what is written arrives in order,
// and the writer's error comes back from Close.
func TestWriteBehindPassesBytesAndErrors(t *testing.T) {
	data := make([]byte, 2*pipeBufSize+999)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var out bytes.Buffer
	wb := newWriteBehind(&out)
	for p := data; len(p) > 0; {
		n := min(len(p), 1000)
		wb.Write(p[:n])
		p = p[n:]
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("got %d bytes, want the %d written, in order", out.Len(), len(data))
	}
	boom := errors.New("disk full")
	wb = newWriteBehind(failWriter{boom})
	wb.Write(data)
	if err := wb.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: %v, want the writer's error", err)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }
