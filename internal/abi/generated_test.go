package abi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

var (
	corpusOnce sync.Once
	corpusDir  string
	corpusErr  error
)

// generatedCorpus builds testdata/abi (once per test binary) and returns
// the directory holding <id>.rpm for every line of packages.txt.
func generatedCorpus(t testing.TB) string {
	t.Helper()
	for _, tool := range []string{"gcc", "g++", "rpmbuild"} {
		testenv.RequireTool(t, tool)
	}
	corpusOnce.Do(func() {
		corpusDir, corpusErr = os.MkdirTemp("", "dnfproxy-abi-corpus-")
		if corpusErr != nil {
			return
		}
		out, err := exec.Command(filepath.Join(testenv.TestdataDir(), "abi", "build.sh"), corpusDir).CombinedOutput()
		if err != nil {
			corpusErr = errors.New("testdata/abi/build.sh: " + err.Error() + "\n" + string(out))
		}
	})
	if corpusErr != nil {
		t.Fatal(corpusErr)
	}
	return corpusDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if corpusDir != "" {
		os.RemoveAll(corpusDir)
	}
	os.Exit(code)
}

// TestGeneratedCorpus compares each rebuild of the generated corpus with
// its reference build through the Analyzer.
func TestGeneratedCorpus(t *testing.T) {
	dir := generatedCorpus(t)
	rpm := func(id string) PackageRef { return fileRef(filepath.Join(dir, id+".rpm")) }
	for _, tc := range []struct {
		name, ref, new string
		want           string   // strongest class, or "none"
		in             []string // reason fragments
	}{
		{"symbol removed under the same NEVRA", "ref-abt", "abt-removed", "abi-changed", []string{"libabt.so.1 no longer exports 1 symbol: abt_b@ABT_1.0"}},
		{"version node renamed", "ref-abt", "abt-renamed", "abi-changed", []string{"libabt.so.1 drops the version node ABT_1.0", "abt_a@ABT_1.0", "adds the version node ABT_1.0.1"}},
		{"symbol moved to a new node", "ref-abt", "abt-moved", "abi-changed", []string{"no longer exports 1 symbol: abt_c@ABT_1.0", "exports 1 new symbol: abt_c@ABT_1.1"}},
		{"symbol added to an existing node", "ref-abt", "abt-added", "abi-extended", []string{"libabt.so.1 exports 1 new symbol: abt_d@ABT_1.0"}},
		{"soname bump", "ref-abt", "abt-bump", "abi-changed", []string{"libabt.so.1 (/usr/lib64/libabt.so.1) is no longer shipped", "adds the library libabt.so.2"}},
		{"soname bump, i686", "ref-t32", "t32-bump", "abi-changed", []string{"libt32.so.1 (/usr/lib/libt32.so.1) is no longer shipped"}},
		{"one of two libraries dropped", "ref-two", "two-dropped", "abi-changed", []string{"libtwo_b.so.1 (/usr/lib64/libtwo_b.so.1) is no longer shipped"}},
		{"exported variable removed", "ref-abt", "abt-novar", "abi-changed", []string{"no longer exports 1 symbol: abt_table@ABT_1.0"}},
		{"exported struct grown", "ref-abt", "abt-grown", "abi-changed", []string{"changes the size of 1 object: abt_config@ABT_1.0 8 -> 12 bytes"}},
		{"C++ signature change", "ref-cxx", "cxx-changed", "abi-changed", []string{"no longer exports 1 symbol: _ZN5abcxx5scaleEi", "_ZN5abcxx5scaleEl"}},
		{"identical rebuild with .alma.1", "ref-abt", "abt-alma", "none", nil},
		{"debrand with a changed README", "ref-abt", "abt-debrand", "none", nil},
		{"Oracle-style .0.1", "ref-abt", "abt-oracle", "none", nil},
		{"bzip2 payload, same library", "ref-abt", "abt-bzip2", "none", nil},
		{"no ELF at all", "ref-kernel", "kernel-crc", "none", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAnalyzer(Options{})
			fs, err := a.ComparePair(t.Context(), rpm(tc.ref), rpm(tc.new), openFile)
			if err != nil {
				t.Fatal(err)
			}
			if got := verdict(fs); got != tc.want {
				t.Fatalf("verdict %s, want %s: %+v", got, tc.want, fs)
			}
			var all []string
			for _, f := range fs {
				if !strings.Contains(f.Reason, "compared with ") {
					t.Errorf("reason %q does not name the reference build", f.Reason)
				}
				all = append(all, f.Reason)
			}
			for _, frag := range tc.in {
				if !strings.Contains(strings.Join(all, "\n"), frag) {
					t.Errorf("reasons lack %q:\n%s", frag, strings.Join(all, "\n"))
				}
			}
		})
	}
}

// TestPayloadCompressors reads the same library from xz, zstd, gzip and
// bzip2 payloads (ScanRPM agrees with itself) and checks what it reads
// against readelf.
func TestPayloadCompressors(t *testing.T) {
	dir := generatedCorpus(t)
	var first *PackageABI
	for _, id := range []string{"ref-abt", "abt-alma", "abt-oracle", "abt-bzip2"} {
		f, err := os.Open(filepath.Join(dir, id+".rpm"))
		if err != nil {
			t.Fatal(err)
		}
		p, err := ScanRPM(t.Context(), f, Limits{})
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if len(p.Libraries) != 1 || p.Libraries[0].SONAME != "libabt.so.1" || len(p.Libraries[0].Symbols) != 5 {
			t.Fatalf("%s: libraries %+v", id, p.Libraries)
		}
		if first == nil {
			first = p
			requireTruthTools(t)
			libs, err := truthLibraries(filepath.Join(dir, id+".rpm"))
			if err != nil {
				t.Fatal(err)
			}
			truth := libs["libabt.so.1"]
			for _, s := range p.Libraries[0].Symbols {
				size, ok := truth.symbols[s.ID()]
				if !ok || (size >= 0 && uint64(size) != s.Size) {
					t.Errorf("%s: %+v: readelf has size %d (present %v)", id, s, size, ok)
				}
			}
			continue
		}
		if d := Diff(first, p); len(d) != 0 {
			t.Errorf("%s differs from ref-abt: %+v", id, d)
		}
	}
}

// countingOpener opens RPM files and counts the opens.
type countingOpener struct{ n atomic.Int64 }

func (c *countingOpener) open(ctx context.Context, ref PackageRef) (io.ReadCloser, error) {
	c.n.Add(1)
	return openFile(ctx, ref)
}

// memKV is a KV in memory, shared between Analyzers to model a restart.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (k *memKV) Get(key []byte) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[string(key)]
	return bytes.Clone(v), ok, nil
}

func (k *memKV) Put(key, value []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[string(key)] = bytes.Clone(value)
	return nil
}

// TestAnalyzerReusesResults: a second generation with one changed package
// analyses only that pair, and a restarted Analyzer on the same KV
// analyses nothing; a new analyser version analyses again.
func TestAnalyzerReusesResults(t *testing.T) {
	dir := generatedCorpus(t)
	rpm := func(id string) PackageRef { return fileRef(filepath.Join(dir, id+".rpm")) }
	kv := &memKV{m: map[string][]byte{}}
	gen1 := []Pair{{rpm("ref-abt"), rpm("abt-alma")}, {rpm("ref-two"), rpm("two-dropped")}, {rpm("ref-cxx"), rpm("cxx-changed")}}
	gen2 := []Pair{{rpm("ref-abt"), rpm("abt-removed")}, gen1[1], gen1[2]} // libabt changed upstream
	run := func(a *Analyzer, pairs []Pair) map[string]string {
		out := map[string]string{}
		var mu sync.Mutex
		op := &countingOpener{}
		if err := a.CompareAll(t.Context(), pairs, op.open, func(p Pair, fs []metadata.Finding, err error) {
			if err != nil {
				t.Errorf("%s: %v", p.New.Href, err)
			}
			mu.Lock()
			out[filepath.Base(p.New.Href)] = verdict(fs)
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a := NewAnalyzer(Options{Concurrency: 2, Results: kv})
	v1 := run(a, gen1)
	if s := a.Stats(); s.Analysed != 3 || s.PackagesRead != 6 || s.Reused != 0 {
		t.Fatalf("first generation: %+v", s)
	}
	v2 := run(a, gen2)
	// One new pair; its reference side (ref-abt) was read in the first
	// generation, so only the new package is read.
	if s := a.Stats(); s.Analysed != 4 || s.PackagesRead != 7 || s.PackagesReused != 1 || s.Reused != 2 {
		t.Fatalf("second generation should analyse only the changed pair: %+v", s)
	}
	if v2["abt-removed.rpm"] != "abi-changed" || v2["two-dropped.rpm"] != v1["two-dropped.rpm"] || v1["abt-alma.rpm"] != "none" {
		t.Fatalf("verdicts: gen1 %v gen2 %v", v1, v2)
	}
	restarted := NewAnalyzer(Options{Concurrency: 2, Results: kv})
	v3 := run(restarted, gen2)
	if s := restarted.Stats(); s.Analysed != 0 || s.PackagesRead != 0 || s.Reused != 3 {
		t.Fatalf("after a restart nothing should be analysed again: %+v", s)
	}
	for k, v := range v2 {
		if v3[k] != v {
			t.Fatalf("restarted verdict of %s: %s, was %s", k, v3[k], v)
		}
	}
	bumped := NewAnalyzer(Options{Results: kv, Version: Version + "-next"})
	run(bumped, gen2[:1])
	if s := bumped.Stats(); s.Analysed != 1 || s.PackagesRead != 2 {
		t.Fatalf("a new analyser version must not reuse old results: %+v", s)
	}
}

// TestAnalyzerSharesConcurrentWork: many callers asking for one pair at
// once cause one analysis.
func TestAnalyzerSharesConcurrentWork(t *testing.T) {
	dir := generatedCorpus(t)
	old, nw := fileRef(filepath.Join(dir, "ref-abt.rpm")), fileRef(filepath.Join(dir, "abt-grown.rpm"))
	a := NewAnalyzer(Options{Concurrency: 1})
	op := &countingOpener{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if fs, err := a.ComparePair(context.Background(), old, nw, op.open); err != nil || verdict(fs) != "abi-changed" {
				t.Errorf("ComparePair: %v %+v", err, fs)
			}
		}()
	}
	wg.Wait()
	if s := a.Stats(); s.Analysed != 1 || op.n.Load() != 2 {
		t.Fatalf("8 concurrent callers: %+v, %d opens", s, op.n.Load())
	}
}
