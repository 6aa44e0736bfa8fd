package metadata_test

import (
	"bytes"
	"errors"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/metadata"
	"github.com/dnfproxy/dnfproxy/metadata/bombs"
)

// addSeeds adds the files matching pattern under testdata/ to f's corpus.
func addSeeds(f *testing.F, pattern string) {
	names, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(names) == 0 {
		f.Fatalf("no seed files testdata/%s (%v)", pattern, err)
	}
	for _, name := range names {
		f.Add(readFile(f, name))
	}
}

// checkSafeHref asserts what every consumer of an href relies on: it names
// a file below the repository root, the same on every platform and in a URL.
func checkSafeHref(t *testing.T, href string) {
	t.Helper()
	if got, err := metadata.CleanHref(href); err != nil || got != href {
		t.Fatalf("accepted href %q fails CleanHref: %q, %v", href, got, err)
	}
	if path.Clean(href) != href || strings.HasPrefix(href, "/") || !filepath.IsLocal(href) {
		t.Fatalf("accepted href %q is not a clean local path", href)
	}
	for _, seg := range strings.Split(href, "/") {
		if seg == "" || seg == "." || seg == ".." {
			t.Fatalf("accepted href %q has segment %q", href, seg)
		}
	}
	if strings.ContainsAny(href, "\\?#") || strings.Contains(href, "://") {
		t.Fatalf("accepted href %q is not a plain path", href)
	}
	if j := path.Join("/root", href); !strings.HasPrefix(j, "/root/") {
		t.Fatalf("accepted href %q escapes the root: %q", href, j)
	}
}

// checkChecksum asserts that c is a normalised checksum NewChecksum accepts.
func checkChecksum(t *testing.T, what string, c metadata.Checksum) {
	t.Helper()
	if got, err := metadata.NewChecksum(c.Type, c.Value); err != nil || got != c {
		t.Fatalf("%s %v is not a valid checksum: %v, %v", what, c, got, err)
	}
	if c.Value != strings.ToLower(c.Value) || strings.TrimSpace(c.Type) != c.Type {
		t.Fatalf("%s %v is not normalised", what, c)
	}
}

func FuzzParseRepomd(f *testing.F) {
	addSeeds(f, "repomd-*.xml")
	f.Add([]byte(goodRepomd))
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := metadata.ParseRepomd(data)
		if err != nil {
			if md != nil || !errors.Is(err, metadata.ErrMalformed) {
				t.Fatalf("ParseRepomd = %v, %v; want nil and ErrMalformed", md, err)
			}
			return
		}
		if len(md.Records) == 0 {
			t.Fatal("accepted a repomd.xml without records")
		}
		types := map[string]bool{}
		for _, rec := range md.Records {
			if rec.Type == "" || types[rec.Type] {
				t.Fatalf("record type %q empty or repeated", rec.Type)
			}
			types[rec.Type] = true
			checkSafeHref(t, rec.Href)
			checkChecksum(t, "checksum", rec.Checksum)
			if !rec.OpenChecksum.IsZero() {
				checkChecksum(t, "open-checksum", rec.OpenChecksum)
			}
			if rec.Size < -1 || rec.OpenSize < -1 || rec.Timestamp < 0 {
				t.Fatalf("record %s has sizes %d/%d, timestamp %d", rec.Type, rec.Size, rec.OpenSize, rec.Timestamp)
			}
			if got, ok := md.Record(rec.Type); !ok || got != rec {
				t.Fatalf("Record(%q) = %+v, %v", rec.Type, got, ok)
			}
		}
		// Parsing is a function of the bytes.
		again, err := metadata.ParseRepomd(data)
		if err != nil || len(again.Records) != len(md.Records) || again.Revision != md.Revision {
			t.Fatalf("second parse differs: %+v, %v", again, err)
		}
	})
}

func FuzzScanPrimary(f *testing.F) {
	addSeeds(f, "primary.xml")
	f.Add([]byte(goodPrimary))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		err := metadata.ScanPrimary(bytes.NewReader(data), func(p metadata.Package) error {
			n++
			if p.Name == "" || p.Arch == "" || p.Version == "" {
				t.Fatalf("package without name, arch or version: %+v", p)
			}
			checkSafeHref(t, p.Href)
			checkChecksum(t, "package checksum", p.Checksum)
			if p.Size < 0 {
				t.Fatalf("package %s has size %d", p.Href, p.Size)
			}
			return nil
		})
		if err != nil && !errors.Is(err, metadata.ErrMalformed) {
			t.Fatalf("ScanPrimary = %v; want nil or ErrMalformed", err)
		}
		// The callback's error stops the scan at once and is returned.
		stop := errors.New("stop")
		calls := 0
		err2 := metadata.ScanPrimary(bytes.NewReader(data), func(metadata.Package) error {
			calls++
			return stop
		})
		switch {
		case n == 0 && calls != 0, n > 0 && (calls != 1 || err2 != stop):
			t.Fatalf("with a failing callback: %d calls, %v (%d packages)", calls, err2, n)
		}
	})
}

func FuzzCleanHref(f *testing.F) {
	for _, s := range []string{
		"repodata/repomd.xml", "Packages/d/dnfpt-lib-1.0-1.el9.noarch.rpm",
		"../x", "a/./b", "a//b", "/a", `a\b`, "a\x00b", "http://x/y", "a?b", "a#b",
		"..a/b..", "a/..", "%2e%2e/x", "ü/\u2028/x", "a/\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, href string) {
		got, err := metadata.CleanHref(href)
		if err != nil {
			if got != "" {
				t.Fatalf("CleanHref(%q) = %q with error %v", href, got, err)
			}
			return
		}
		if got != href {
			t.Fatalf("CleanHref(%q) = %q; want it unchanged", href, got)
		}
		checkSafeHref(t, href)
		for _, r := range href {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("CleanHref(%q) accepted a control character", href)
			}
		}
	})
}

// FuzzScanPrimaryEquivalence: whatever both the scanner and the old
// encoding/xml one accept, they read the same way. (Each refuses some
// inputs the other takes: see the comment at the top of scan.go.)
func FuzzScanPrimaryEquivalence(f *testing.F) {
	addSeeds(f, "primary.xml")
	f.Add([]byte(goodPrimary))
	f.Add([]byte(strings.Replace(goodPrimary, "<name>dnfpt-app</name>", "<name><![CDATA[x]]>&amp;y</name>", 1)))
	f.Add([]byte(strings.Replace(goodPrimary, "rpm:", "r:", -1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, want, gotErr, wantErr := scanBoth(data, true)
		if gotErr == nil && wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("both accept, and read differently:\n got %+v\nwant %+v", got, want)
		}
		if gotErr != nil && !errors.Is(gotErr, metadata.ErrMalformed) && !errors.Is(gotErr, metadata.ErrTooLarge) {
			t.Fatalf("error %v is neither ErrMalformed nor ErrTooLarge", gotErr)
		}
	})
}

// FuzzScanPrimaryLimits scans with a tiny element limit: the scan stays
// within it (allocations included), and what it accepts it also accepts
// with the default limit, the same way.
func FuzzScanPrimaryLimits(f *testing.F) {
	addSeeds(f, "primary.xml")
	f.Add([]byte(goodPrimary))
	ws, wsEnd := bombs.WhitespacePrimary()
	f.Add(append(append(slices.Clone(ws), bytes.Repeat([]byte(" "), 5000)...), wsEnd...))
	huge, hugeEnd := bombs.HugePackagePrimary()
	f.Add(append(append(slices.Clone(huge), bytes.Repeat([]byte("x"), 5000)...), hugeEnd...))
	f.Add(make([]byte, 5000))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := metadata.Limits{MaxElement: 2048}
		var small []metadata.PackageDeps
		var err error
		alloc := allocDuring(func() {
			err = lim.ScanPrimaryAll(bytes.NewReader(data), func(p *metadata.PackageDeps) error {
				small = append(small, *p)
				return nil
			})
		})
		if max := uint64(64<<10 + 64*len(data)); alloc > max {
			t.Fatalf("scanning %d bytes with a 2 KiB element limit allocated %d bytes", len(data), alloc)
		}
		if err != nil {
			if !errors.Is(err, metadata.ErrMalformed) && !errors.Is(err, metadata.ErrTooLarge) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrTooLarge", err)
			}
			return
		}
		var full []metadata.PackageDeps
		if err := metadata.ScanPrimaryAll(bytes.NewReader(data), func(p *metadata.PackageDeps) error {
			full = append(full, *p)
			return nil
		}); err != nil || !reflect.DeepEqual(small, full) {
			t.Fatalf("accepted within 2 KiB elements, but with the default limit: %v, %d packages vs %d", err, len(full), len(small))
		}
	})
}

// FuzzDecompress decodes arbitrary input as each codec, with small limits:
// no panic, output within the limit, memory within the decoder limits, and
// errors of the documented kinds or the decoder's own.
func FuzzDecompress(f *testing.F) {
	for _, name := range []string{"testdata/bombs/xz-dict-3g.xz", "testdata/bombs/zstd-window-512m.zst", "testdata/bombs/zeros-1g.bz2"} {
		f.Add(readFile(f, name), byte(0))
	}
	f.Add(bombs.XzDict(22), byte(0))
	f.Add(bombs.ZstdWindow(20), byte(1))
	var z bytes.Buffer
	bombs.GzipZeros(&z, 64<<20)
	f.Add(z.Bytes(), byte(2))
	codecs := []metadata.Codec{metadata.Xz, metadata.Zstd, metadata.Gzip, metadata.Bzip2, metadata.None}
	f.Fuzz(func(t *testing.T, data []byte, which byte) {
		// Seeds name their codec by their magic; the fuzzer tries others.
		c := codecs[int(which)%len(codecs)]
		switch {
		case bytes.HasPrefix(data, []byte("\xfd7zXZ")):
			c = metadata.Xz
		case bytes.HasPrefix(data, []byte("\x28\xb5\x2f\xfd")):
			c = metadata.Zstd
		case bytes.HasPrefix(data, []byte("BZh")):
			c = metadata.Bzip2
		}
		if which >= 128 {
			c = codecs[int(which)%len(codecs)]
		}
		lim := metadata.Limits{MaxXzDict: 1 << 20, MaxZstdWindow: 1 << 20}
		const limit = 1 << 20
		var n int64
		var err error
		alloc := allocDuring(func() { n, err = decompressAll(lim, data, c, limit) })
		if n > limit+1 {
			t.Fatalf("%s: %d bytes out, over the %d limit", c, n, limit)
		}
		if alloc > 24<<20 {
			t.Fatalf("%s: decompressing %d bytes allocated %d MiB", c, len(data), alloc>>20)
		}
		_ = err // any error is fine here; TestDecompress* check the kinds
	})
}
