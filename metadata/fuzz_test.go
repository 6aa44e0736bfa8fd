package metadata_test

import (
	"bytes"
	"errors"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/metadata"
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
