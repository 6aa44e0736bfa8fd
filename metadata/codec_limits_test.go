package metadata_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/dnfproxy/dnfproxy/metadata"
	"github.com/dnfproxy/dnfproxy/metadata/bombs"
)

// allocDuring returns what fn allocated on the heap, in bytes. TotalAlloc
// counts every allocation, freed or not, so a decoder that allocates a big
// window and drops it is caught even if a GC ran meanwhile.
func allocDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// decompressAll decompresses data and returns how many bytes came out.
func decompressAll(lim metadata.Limits, data []byte, c metadata.Codec, limit int64) (int64, error) {
	zr, err := lim.Decompress(bytes.NewReader(data), c, limit)
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	return io.Copy(io.Discard, zr)
}

func TestBombFiles(t *testing.T) {
	for name, want := range map[string][]byte{
		"testdata/bombs/xz-dict-3g.xz":        bombs.XzDictBomb(),
		"testdata/bombs/zstd-window-512m.zst": bombs.ZstdWindowBomb(),
	} {
		if got := readFile(t, name); !bytes.Equal(got, want) {
			t.Errorf("%s differs from its generator's output: regenerate it (see testdata/bombs/README)", name)
		}
	}
	if n := len(bombs.XzDictBomb()); n != 88 {
		t.Errorf("XzDictBomb is %d bytes, want 88", n)
	}
	if n := len(bombs.ZstdWindowBomb()); n != 25 {
		t.Errorf("ZstdWindowBomb is %d bytes, want 25", n)
	}
}

// TestDecompressMemoryBounds feeds each decoder a file that asks for far
// more memory than its size, with the proxy's 1 GiB output limit: the
// memory limits, not the output limit, must stop it, before it allocates.
func TestDecompressMemoryBounds(t *testing.T) {
	var zeros bytes.Buffer
	if err := bombs.GzipZeros(&zeros, 3<<30); err != nil {
		t.Fatal(err)
	}
	const outLimit = 1 << 30
	for _, tc := range []struct {
		name     string
		data     []byte
		codec    metadata.Codec
		lim      metadata.Limits
		limit    int64
		maxAlloc uint64
	}{
		{"xz 3 GiB dictionary", readFile(t, "testdata/bombs/xz-dict-3g.xz"), metadata.Xz, metadata.Limits{}, outLimit, 1 << 20},
		{"xz 4 GiB dictionary", bombs.XzDict(40), metadata.Xz, metadata.Limits{}, outLimit, 1 << 20},
		{"xz 8 MiB dictionary, 4 MiB limit", bombs.XzDict(22), metadata.Xz, metadata.Limits{MaxXzDict: 4 << 20}, outLimit, 1 << 20},
		{"zstd 512 MiB window", readFile(t, "testdata/bombs/zstd-window-512m.zst"), metadata.Zstd, metadata.Limits{}, outLimit, 1 << 20},
		{"zstd 16 MiB window", bombs.ZstdWindow(24), metadata.Zstd, metadata.Limits{}, outLimit, 1 << 20},
		{"zstd 8 MiB window, 4 MiB limit", bombs.ZstdWindow(23), metadata.Zstd, metadata.Limits{MaxZstdWindow: 4 << 20}, outLimit, 1 << 20},
		// These two stop at the output limit; their memory is bounded by
		// the format.
		{"bzip2 of 1 GiB of zeros", readFile(t, "testdata/bombs/zeros-1g.bz2"), metadata.Bzip2, metadata.Limits{}, 32 << 20, 16 << 20},
		{"gzip of 3 GiB of zeros", zeros.Bytes(), metadata.Gzip, metadata.Limits{}, 32 << 20, 4 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n int64
			var err error
			alloc := allocDuring(func() { n, err = decompressAll(tc.lim, tc.data, tc.codec, tc.limit) })
			if !errors.Is(err, metadata.ErrTooLarge) {
				t.Errorf("decompressing %d bytes gave %d bytes, error %v; want ErrTooLarge", len(tc.data), n, err)
			}
			if alloc > tc.maxAlloc {
				t.Errorf("decompressing %d bytes allocated %d KiB, want at most %d KiB", len(tc.data), alloc>>10, tc.maxAlloc>>10)
			}
		})
	}
}

// TestDecompressWithinLimits: what the limits let through decodes, byte
// for byte, and the same files fail when the limits are set lower.
func TestDecompressWithinLimits(t *testing.T) {
	content := []byte(`<metadata packages="0"/>` + "           \n")
	for _, tc := range []struct {
		name  string
		data  []byte
		codec metadata.Codec
		want  []byte
	}{
		{"xz 8 MiB dictionary", bombs.XzDict(22), metadata.Xz, content},
		{"xz 64 MiB dictionary", bombs.XzDict(26), metadata.Xz, content},
		{"zstd 8 MiB window", bombs.ZstdWindow(23), metadata.Zstd, []byte("<metadata/>\n    ")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zr, err := metadata.Decompress(bytes.NewReader(tc.data), tc.codec, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("decompressed %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestDecompressZstdLevels decompresses what the zstd tool writes at the
// levels that matter, on input bigger than their windows: createrepo_c 1.x
// writes level 10 (4 MiB window), -19 is the highest ordinary level
// (8 MiB). A 16 MiB window is over the default limit and passes when the
// limit is raised.
func TestDecompressZstdLevels(t *testing.T) {
	want := bytes.Repeat(readFile(t, "testdata/primary.xml"), 1)
	for len(want) < 9<<20 {
		want = append(want, want...)
	}
	want = want[:9<<20+123]
	for _, tc := range []struct {
		args []string
		lim  metadata.Limits
		ok   bool
	}{
		{[]string{"-10"}, metadata.Limits{}, true},
		{[]string{"-19"}, metadata.Limits{}, true},
		{[]string{"-3", "--zstd=wlog=24"}, metadata.Limits{}, false},
		{[]string{"-3", "--zstd=wlog=24"}, metadata.Limits{MaxZstdWindow: 16 << 20}, true},
	} {
		data := toolCompressor("zstd", append([]string{"-c", "-q"}, tc.args...)...)(t, bytes.NewReader(want))
		zr, err := tc.lim.Decompress(bytes.NewReader(data), metadata.Zstd, 1<<30)
		var got []byte
		if err == nil {
			got, err = io.ReadAll(zr)
		}
		switch {
		case tc.ok && (err != nil || !bytes.Equal(got, want)):
			t.Errorf("zstd %q, limits %+v: %d bytes, %v; want the %d original bytes", tc.args, tc.lim, len(got), err, len(want))
		case !tc.ok && !errors.Is(err, metadata.ErrTooLarge):
			t.Errorf("zstd %q, limits %+v: %v, want ErrTooLarge", tc.args, tc.lim, err)
		}
	}
}

// TestDecompressXzTool checks the xz guard against what the xz tool
// writes: several blocks (multi-threaded xz), concatenated streams with
// padding, the check types. (The decoder library knows no filter but
// LZMA2, so BCJ and delta files are malformed for it, with or without the
// guard.)
func TestDecompressXzTool(t *testing.T) {
	want := readFile(t, "testdata/primary.xml")
	big := bytes.Repeat(want, 200)
	for _, tc := range []struct {
		name  string
		input []byte
		args  []string
	}{
		{"blocks", big, []string{"--block-size=64KiB"}},
		{"threads", big, []string{"-T2", "--block-size=100KiB"}},
		{"check none", want, []string{"--check=none"}},
		{"check crc32", want, []string{"--check=crc32"}},
		{"check sha256", want, []string{"--check=sha256"}},
		{"preset 9", want, []string{"-9"}},
		{"lzma2 dict 64 MiB", want, []string{"--lzma2=dict=64MiB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := toolCompressor("xz", append([]string{"-c"}, tc.args...)...)(t, bytes.NewReader(tc.input))
			zr, err := metadata.Decompress(bytes.NewReader(data), metadata.Xz, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(got, tc.input) {
				t.Errorf("xz %q: %d bytes, %v; want the %d original bytes", tc.args, len(got), err, len(tc.input))
			}
		})
	}
	t.Run("concatenated", func(t *testing.T) {
		a := toolCompressor("xz", "-c")(t, bytes.NewReader(want))
		b := toolCompressor("xz", "-c", "--check=sha256")(t, bytes.NewReader(big))
		data := append(append(append([]byte{}, a...), 0, 0, 0, 0, 0, 0, 0, 0), b...)
		data = append(data, bombs.XzDict(22)...)
		zr, err := metadata.Decompress(bytes.NewReader(data), metadata.Xz, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || len(got) != len(want)+len(big)+36 {
			t.Errorf("three streams: %d bytes, %v; want %d", len(got), err, len(want)+len(big)+36)
		}
		// A bomb as the second stream is caught too.
		data = append(append([]byte{}, a...), bombs.XzDictBomb()...)
		n, err := decompressAll(metadata.Limits{}, data, metadata.Xz, 1<<30)
		if !errors.Is(err, metadata.ErrTooLarge) {
			t.Errorf("bomb after a good stream: %d bytes, %v; want ErrTooLarge", n, err)
		}
	})
}
