package metadata_test

import (
	"bytes"
	"io"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// BenchmarkScanPrimary compares the primary.xml scanner with the old
// encoding/xml one (oldscan_test.go) on the 30,000-package synthetic repo
// of bench/genrepo and on the real CentOS Stream 9 AppStream primary.xml,
// from uncompressed bytes in memory:
//
//	go test -run '^$' -bench ScanPrimary -benchtime 3x ./metadata/
//
// index: the fields of the package index (ScanPrimary; the old scanner
// decoded the same struct without the dependency lists); all: index,
// pkgid, provides, requires, files and ABI provides (ScanPrimaryAll; the
// old ScanPrimaryDeps).
func BenchmarkScanPrimary(b *testing.B) {
	inputs := []struct {
		name string
		data func(b *testing.B) []byte
	}{
		{"genrepo30000", func(b *testing.B) []byte {
			dir, md := benchRepo(b)
			return uncompressed(b, dir, md)
		}},
		{"appstream", func(b *testing.B) []byte {
			return readRepoPrimary(b, corpus(b, "osbuild/test/data/testrepos/appstream"))
		}},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			data := in.data(b)
			for _, sc := range []struct {
				name string
				scan func(r io.Reader) (int, error)
			}{
				{"index/old", func(r io.Reader) (n int, err error) {
					err = refScanPrimaryDeps(r, false, func(metadata.PackageDeps) error { n++; return nil })
					return
				}},
				{"index/new", func(r io.Reader) (n int, err error) {
					err = metadata.ScanPrimary(r, func(metadata.Package) error { n++; return nil })
					return
				}},
				{"all/old", func(r io.Reader) (n int, err error) {
					err = refScanPrimaryDeps(r, true, func(metadata.PackageDeps) error { n++; return nil })
					return
				}},
				{"all/new", func(r io.Reader) (n int, err error) {
					err = metadata.ScanPrimaryAll(r, func(*metadata.PackageDeps) error { n++; return nil })
					return
				}},
			} {
				b.Run(sc.name, func(b *testing.B) {
					b.SetBytes(int64(len(data)))
					b.ReportAllocs()
					cpu := cpuTime()
					for b.Loop() {
						n, err := sc.scan(bytes.NewReader(data))
						if err != nil || n == 0 {
							b.Fatalf("%d packages, %v", n, err)
						}
					}
					// CPU time (the process's, GC included) is what a
					// shared machine's load disturbs least.
					b.ReportMetric(float64(cpuTime()-cpu)/1e6/float64(b.N), "cpu-ms/op")
				})
			}
		})
	}
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// uncompressed returns the primary.xml of a repository in memory.
func uncompressed(b *testing.B, dir string, md *metadata.Repomd) []byte {
	b.Helper()
	rec, _ := md.Record("primary")
	zr, err := metadata.Decompress(bytes.NewReader(readFile(b, filepath.Join(dir, filepath.FromSlash(rec.Href)))), metadata.CodecOf(rec.Href), 1<<30)
	if err != nil {
		b.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	return data
}
