package metadata_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// The rewrite benchmarks run on a synthetic repo of benchPackages packages
// written by bench/genrepo (about 185 MB of XML, 27 MB gzip-compressed). It
// is generated once into the user cache directory and reused: genrepo's
// output is a function of -n. Run:
//
//	go test -run '^$' -bench 'Rewrite|Recompress' -benchtime 3x ./metadata/
//
// The target is BenchmarkRewrite ≤ 1.5 × BenchmarkRecompressBaseline.
// `go run ./bench/genrepo -measure DIR` prints the same comparison with the
// peak RSS of the process.
const benchPackages = 30000

var (
	benchRepoOnce sync.Once
	benchRepoDir  string
	benchRepoErr  error
)

func benchRepo(b *testing.B) (dir string, md *metadata.Repomd) {
	b.Helper()
	benchRepoOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		benchRepoDir = filepath.Join(cache, "dnfproxy-bench", "genrepo-"+strconv.Itoa(benchPackages))
		if _, err := os.Stat(filepath.Join(benchRepoDir, "repodata", "repomd.xml")); err == nil {
			return
		}
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		cmd := exec.Command(gobin, "run", "../bench/genrepo", "-n", strconv.Itoa(benchPackages), benchRepoDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			benchRepoErr = err
			b.Logf("%s", out)
		}
	})
	if benchRepoErr != nil {
		b.Fatalf("bench/genrepo: %v", benchRepoErr)
	}
	md, err := metadata.ParseRepomd(readFile(b, filepath.Join(benchRepoDir, "repodata", "repomd.xml")))
	if err != nil {
		b.Fatal(err)
	}
	return benchRepoDir, md
}

// benchFiles returns the compressed primary, filelists and other of the
// bench repo, in memory so that disk speed does not count, and their
// uncompressed size.
func benchFiles(b *testing.B) (files map[metadata.FileKind][]byte, codec metadata.Codec, openSize int64) {
	dir, md := benchRepo(b)
	files = map[metadata.FileKind][]byte{}
	for _, kind := range packageKinds {
		rec, ok := md.Record(string(kind))
		if !ok {
			b.Fatalf("no %s record", kind)
		}
		files[kind] = readFile(b, filepath.Join(dir, rec.Href))
		codec = metadata.CodecOf(rec.Href)
		openSize += rec.OpenSize
	}
	return files, codec, openSize
}

// benchDecide annotates every 20th package (5%).
func benchDecide() metadata.DecideFunc {
	n := 0
	return func(metadata.PackageID, string) metadata.Decision {
		n++
		if n%20 == 0 {
			return metadata.Decision{Action: metadata.ActionAnnotate, Findings: []metadata.Finding{
				{Class: metadata.ClassABIChanged, Reason: "soname version node removed", Link: "https://example.invalid/abi"}}}
		}
		return metadata.Decision{}
	}
}

// BenchmarkRewrite: rewrite all three files, gz in and gz out, 5% of
// packages annotated, with the decisions taken beforehand (the proxy takes
// them while it scans primary.xml for its rules, and builds the plan with
// PlanOf).
func BenchmarkRewrite(b *testing.B) {
	files, codec, openSize := benchFiles(b)
	plan0, err := metadata.NewPlan(bytesReader(files[metadata.KindPrimary]), codec, 1<<32, benchDecide())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(openSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		plan, err := metadata.PlanOf(plan0.Packages, plan0.Decided())
		if err != nil {
			b.Fatal(err)
		}
		rewriteAll(b, plan, files, codec)
	}
}

// BenchmarkRewriteWithPlan is BenchmarkRewrite with NewPlan's own pass over
// primary.xml included.
func BenchmarkRewriteWithPlan(b *testing.B) {
	files, codec, openSize := benchFiles(b)
	b.SetBytes(openSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		plan, err := metadata.NewPlan(bytesReader(files[metadata.KindPrimary]), codec, 1<<32, benchDecide())
		if err != nil {
			b.Fatal(err)
		}
		rewriteAll(b, plan, files, codec)
	}
}

func rewriteAll(b *testing.B, plan *metadata.Plan, files map[metadata.FileKind][]byte, codec metadata.Codec) {
	for _, kind := range packageKinds {
		res, err := plan.Rewrite(kind, bytesReader(files[kind]), codec, io.Discard, metadata.Gzip, 1<<32)
		if err != nil {
			b.Fatal(err)
		}
		if kind == metadata.KindPrimary && res.Annotated != benchPackages/20 {
			b.Fatalf("annotated %d", res.Annotated)
		}
	}
}

// BenchmarkRecompressBaseline: only decompress and recompress the same
// files with the same libraries and levels.
func BenchmarkRecompressBaseline(b *testing.B) {
	files, codec, openSize := benchFiles(b)
	b.SetBytes(openSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, kind := range packageKinds {
			rc, err := metadata.Decompress(bytesReader(files[kind]), codec, 1<<32)
			if err != nil {
				b.Fatal(err)
			}
			zw, err := metadata.Compress(io.Discard, metadata.Gzip)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(zw, rc); err != nil {
				b.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
