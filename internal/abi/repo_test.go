package abi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// repoPackages makes an rpm-md repo of the given corpus RPMs with
// createrepo_c and reads its primary.xml back.
func repoPackages(t *testing.T, corpus string, ids ...string) []metadata.PackageDeps {
	t.Helper()
	dir := t.TempDir()
	var rpms []string
	for _, id := range ids {
		rpms = append(rpms, filepath.Join(corpus, id+".rpm"))
	}
	testenv.MakeRepo(t, dir, rpms)
	b, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.ParseRepomd(b)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := md.Record("primary")
	if !ok {
		t.Fatal("no primary record")
	}
	f, err := os.Open(filepath.Join(dir, rec.Href))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := metadata.Decompress(f, metadata.CodecOf(rec.Href), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []metadata.PackageDeps
	if err := metadata.ScanPrimaryDeps(r, func(p metadata.PackageDeps) error {
		p.Href = filepath.Join(dir, p.Href) // an absolute path openFile can use
		out = append(out, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReposPairsAndKernelABI takes the generated corpus through real
// createrepo_c metadata: Pairs chooses the builds to compare (the i686
// soname pair included, the Oracle build matched with the reference build
// of its stripped EVR), and metadata.CompareWith with the stablelist read
// from kernel-abi-stablelists names the kABI breaks.
func TestReposPairsAndKernelABI(t *testing.T) {
	corpus := generatedCorpus(t)
	testenv.RequireTool(t, "createrepo_c")
	ref := repoPackages(t, corpus, "ref-abt", "abt-added", "ref-t32", "ref-u32", "ref-kernel", "ref-kabi")
	cur := repoPackages(t, corpus, "abt-oracle", "t32-bump", "u32-bump", "kernel-same", "kernel-crc", "kernel-added", "kernel-gone")

	pairs := Pairs(ref, cur, nil)
	got := map[string]string{}
	for _, p := range pairs {
		got[p.New.NEVRA()] = p.Old.NEVRA()
	}
	want := map[string]string{
		"libabt-1.0-1.0.1.el9.x86_64": "libabt-1.0-1.el9.x86_64", // not the newer 1.0-4.el9
		"libt32-2.0-1.el9.i686":       "libt32-1.0-1.el9.i686",
		"libu32-2.0-1.el9.i686":       "libu32-1.0-1.el9.i686", // unversioned: only a bare soname provide
	}
	if len(got) != len(want) {
		t.Fatalf("pairs %v, want %v", got, want)
	}
	for n, o := range want {
		if got[n] != o {
			t.Errorf("pair of %s: %q, want %q", n, got[n], o)
		}
	}
	a := NewAnalyzer(Options{})
	for _, p := range pairs {
		fs, err := a.ComparePair(t.Context(), p.Old, p.New, openFile)
		if err != nil {
			t.Fatal(err)
		}
		wantV := map[string]string{"libabt": "none", "libt32": "abi-changed", "libu32": "abi-changed"}[p.New.Name]
		if verdict(fs) != wantV {
			t.Errorf("%s: %s, want %s (%+v)", p.New.NEVRA(), verdict(fs), wantV, fs)
		}
	}

	// The metadata layer alone sees the i686 soname bump of an unversioned
	// library by its provides "libu32.so.1" -> "libu32.so.2".
	abiOf := func(ps []metadata.PackageDeps, name string) metadata.ABIPackage {
		for _, p := range ps {
			if p.Name == name {
				return metadata.ABIPackage{PackageID: p.ID(), Provides: p.ABIProvides}
			}
		}
		t.Fatalf("no %s", name)
		return metadata.ABIPackage{}
	}
	u32 := metadata.Compare(abiOf(cur, "libu32"), metadata.NewReference([]metadata.ABIPackage{abiOf(ref, "libu32")}))
	if len(u32) != 2 || u32[1].Class != metadata.ClassABIChanged || !strings.Contains(u32[1].Reason, "removes libu32.so.1") {
		t.Errorf("metadata comparison of the i686 soname bump: %+v", u32)
	}

	// The kernel: provides only, compared in metadata with the stablelist.
	var stablelists *Stablelist
	var abiRef []metadata.ABIPackage
	for _, p := range ref {
		abiRef = append(abiRef, metadata.ABIPackage{PackageID: p.ID(), Provides: p.ABIProvides})
		if p.Name == "kernel-abi-stablelists" {
			f, err := os.Open(p.Href)
			if err != nil {
				t.Fatal(err)
			}
			stablelists, err = ReadStablelist(t.Context(), f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if stablelists == nil || stablelists.Len("x86_64") != 2 || !stablelists.Contains("x86_64", "printk") {
		t.Fatalf("stablelist from kernel-abi-stablelists: %+v", stablelists)
	}
	reference := metadata.NewReference(abiRef)
	breaksTotal := 0
	for _, p := range cur {
		if p.Name != "kernel-core" {
			continue
		}
		c := metadata.CompareWith(metadata.ABIPackage{PackageID: p.ID(), Provides: p.ABIProvides}, reference,
			metadata.CompareOptions{Stablelist: stablelists.ForArch(p.Arch)})
		var classes, reasons []string
		for _, f := range c.Findings {
			classes = append(classes, f.Class)
			reasons = append(reasons, f.Reason)
		}
		breaksTotal += len(c.StablelistBreaks)
		want := map[string]struct{ classes, breaks, in string }{
			"5.14.0-427.el9.alma.1": {"patched", "", ""},
			"5.14.0-427.1.el9":      {"version-differs,abi-changed,abi-changed", "printk", "kernel(printk) CRC 0x1111 -> 0x9999"},
			"5.14.0-427.2.el9":      {"version-differs,abi-extended", "", "adds kernel(newsym)"},
			"5.14.0-427.3.el9":      {"version-differs,abi-changed,abi-changed", "vfree", "kernel(vfree) removed (reference CRC 0x3333)"},
		}[p.Version+"-"+p.Release]
		if strings.Join(classes, ",") != want.classes || strings.Join(c.StablelistBreaks, ",") != want.breaks ||
			!strings.Contains(strings.Join(reasons, "|"), want.in) {
			t.Errorf("%s: classes %v breaks %v reasons %q; want %+v", p.NEVRA(), classes, c.StablelistBreaks, reasons, want)
		}
		if p.Release == "427.1.el9" && !strings.Contains(strings.Join(reasons, "|"), "kernel(kmalloc) = 0x7777 (reference 0x2222) [not on the kABI stablelist]") {
			t.Errorf("kmalloc's CRC change should say it is off the stablelist: %q", reasons)
		}
	}
	if breaksTotal != 2 {
		t.Errorf("stablelist breaks counted: %d, want 2", breaksTotal)
	}
}
