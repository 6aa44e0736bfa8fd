package metadata_test

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"runtime"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestCodecOf(t *testing.T) {
	for href, want := range map[string]metadata.Codec{
		"repodata/abc-primary.xml.gz":             metadata.Gzip,
		"repodata/abc-primary.xml.xz":             metadata.Xz,
		"repodata/abc-primary.xml.zst":            metadata.Zstd,
		"repodata/abc-primary.xml.bz2":            metadata.Bzip2,
		"repodata/abc-primary.xml.zck":            metadata.Zck,
		"repodata/abc-primary.sqlite.bz2":         metadata.Bzip2,
		"repodata/abc-primary.xml":                metadata.None,
		"repodata/abc-comps.xml":                  metadata.None,
		"repodata/repomd.xml":                     metadata.None,
		"repodata/abc-modules.yaml.gz":            metadata.Gzip,
		"repodata/x.gz.xml":                       metadata.None,
		"repodata/x.zstd":                         metadata.None, // libsolv knows .zst only
		"repodata/x.GZ":                           metadata.None, // suffixes are case-sensitive
		"repodata/gz":                             metadata.None,
		"":                                        metadata.None,
		"Packages/dnfpt-lib-1.0-1.el9.noarch.rpm": metadata.None,
	} {
		if got := metadata.CodecOf(href); got != want {
			t.Errorf("CodecOf(%q) = %q, want %q", href, got, want)
		}
	}
}

// compressor compresses data for one codec, in process or with the
// reference command-line tool.
type compressor struct {
	codec metadata.Codec
	fn    func(t *testing.T, r io.Reader) []byte
}

func compressors() []compressor {
	return []compressor{
		{metadata.Gzip, func(t *testing.T, r io.Reader) []byte {
			var buf bytes.Buffer
			w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			if _, err := io.Copy(w, r); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}},
		{metadata.Zstd, func(t *testing.T, r io.Reader) []byte {
			var buf bytes.Buffer
			w, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, r); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}},
		{metadata.Xz, toolCompressor("xz", "-c", "-6")},
		{metadata.Bzip2, toolCompressor("bzip2", "-c", "-9")},
	}
}

// toolCompressor runs a compression tool as a filter.
func toolCompressor(tool string, args ...string) func(t *testing.T, r io.Reader) []byte {
	return func(t *testing.T, r io.Reader) []byte {
		bin := testenv.RequireTool(t, tool)
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Stdin = r
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v: %s", cmd, err, stderr.Bytes())
		}
		return out
	}
}

// zeros reads n zero bytes without holding them in memory.
func zeros(n int64) io.Reader { return io.LimitReader(zeroReader{}, n) }

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestDecompressBomb feeds each codec 100 MiB of compressed zeros with a
// 1 MiB limit: Decompress must stop with ErrTooLarge soon after the limit
// and must not allocate anything near the full size.
func TestDecompressBomb(t *testing.T) {
	const (
		size  = 100 << 20
		limit = 1 << 20
	)
	bombs := map[string][]byte{}
	for _, c := range compressors() {
		bombs[string(c.codec)] = c.fn(t, zeros(size))
	}
	// zstd with the whole size declared up front in the frame header, as
	// EncodeAll writes it.
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	bombs[".zst-single-frame"] = enc.EncodeAll(make([]byte, size), nil)
	enc.Close()
	runtime.GC()

	for name, bomb := range bombs {
		codec := metadata.Codec(name)
		if name == ".zst-single-frame" {
			codec = metadata.Zstd
		}
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			zr, err := metadata.Decompress(bytes.NewReader(bomb), codec, limit)
			var n int64
			if err == nil {
				n, err = io.Copy(io.Discard, zr)
				zr.Close()
			}
			runtime.ReadMemStats(&after)
			if !errors.Is(err, metadata.ErrTooLarge) {
				t.Errorf("Decompress(%d compressed bytes of %d zeros, limit %d) read %d bytes, error %v; want ErrTooLarge",
					len(bomb), size, limit, n, err)
			}
			if n > limit+1 {
				t.Errorf("read %d bytes past a %d-byte limit", n, limit)
			}
			// The decoders' windows and buffers are allowed for; the
			// 100 MiB are not.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
				t.Errorf("decompressing allocated %d MiB", alloc>>20)
			}
		})
	}
}

// TestDecompressReferenceTools decompresses files made by the reference tool
// of each codec (createrepo_c 0.17 cannot write zstd, so this is where the
// zstd codec meets real zstd output).
func TestDecompressReferenceTools(t *testing.T) {
	want := readFile(t, "testdata/primary.xml")
	for _, tc := range []struct {
		codec metadata.Codec
		tool  string
		args  []string
	}{
		{metadata.Gzip, "gzip", []string{"-c", "-9"}},
		{metadata.Xz, "xz", []string{"-c"}},
		{metadata.Xz, "xz", []string{"-c", "--check=sha256", "-e"}},
		{metadata.Zstd, "zstd", []string{"-c", "-q", "-19"}},
		{metadata.Zstd, "zstd", []string{"-c", "-q", "-3", "--no-check"}},
		{metadata.Bzip2, "bzip2", []string{"-c", "-1"}},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			data := toolCompressor(tc.tool, tc.args...)(t, bytes.NewReader(want))
			zr, err := metadata.Decompress(bytes.NewReader(data), tc.codec, int64(len(want)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("%s %q: %v", tc.tool, tc.args, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s %q: decompressed %d bytes that differ from the %d original", tc.tool, tc.args, len(got), len(want))
			}
		})
	}
}

func TestDecompressTruncated(t *testing.T) {
	data := readFile(t, "testdata/primary.xml")
	for _, c := range compressors() {
		full := c.fn(t, bytes.NewReader(data))
		for _, cut := range []int{0, 1, len(full) / 2, len(full) - 4, len(full) - 1} {
			t.Run(string(c.codec), func(t *testing.T) {
				zr, err := metadata.Decompress(bytes.NewReader(full[:cut]), c.codec, 1<<20)
				if err != nil {
					return // a header too short to start with is an error too
				}
				got, err := io.ReadAll(zr)
				if err == nil {
					t.Errorf("%s cut to %d of %d bytes: decompressed %d bytes without an error", c.codec, cut, len(full), len(got))
				}
			})
		}
	}
}

func TestDecompressGarbage(t *testing.T) {
	garbage := bytes.Repeat([]byte("not compressed "), 100)
	for _, codec := range []metadata.Codec{metadata.Gzip, metadata.Xz, metadata.Zstd, metadata.Bzip2} {
		zr, err := metadata.Decompress(bytes.NewReader(garbage), codec, 1<<20)
		if err == nil {
			_, err = io.ReadAll(zr)
		}
		if err == nil {
			t.Errorf("Decompress(garbage, %q) did not fail", codec)
		}
	}
	for _, codec := range []metadata.Codec{metadata.Zck, ".lz4", ".7z"} {
		if _, err := metadata.Decompress(bytes.NewReader(garbage), codec, 1<<20); !errors.Is(err, metadata.ErrMalformed) {
			t.Errorf("Decompress(%q) error = %v, want ErrMalformed", codec, err)
		}
	}
	// None passes bytes through, still under the limit.
	zr, err := metadata.Decompress(bytes.NewReader(garbage), metadata.None, int64(len(garbage)))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, garbage) {
		t.Errorf("Decompress(None) = %d bytes, %v", len(got), err)
	}
	zr, _ = metadata.Decompress(bytes.NewReader(garbage), metadata.None, int64(len(garbage))-1)
	if _, err := io.ReadAll(zr); !errors.Is(err, metadata.ErrTooLarge) {
		t.Errorf("Decompress(None) over the limit: %v, want ErrTooLarge", err)
	}
}

// TestDecompressZstdHugeWindow: a frame may announce a window of up to 2 GiB,
// which the decoder would allocate before producing a byte. Beyond the limit
// that is ErrTooLarge, not an allocation.
func TestDecompressZstdHugeWindow(t *testing.T) {
	data := toolCompressor("zstd", "-c", "-q", "--long=30")(t, bytes.NewReader(readFile(t, "testdata/primary.xml")))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	zr, err := metadata.Decompress(bytes.NewReader(data), metadata.Zstd, 1<<20)
	if err == nil {
		_, err = io.Copy(io.Discard, zr)
		zr.Close()
	}
	runtime.ReadMemStats(&after)
	if !errors.Is(err, metadata.ErrTooLarge) {
		t.Errorf("Decompress(1 GiB window, limit 1 MiB) error = %v, want ErrTooLarge", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("decompressing allocated %d MiB", alloc>>20)
	}
}
