package repo

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

func sha256Of(i int) string {
	return fmt.Sprintf("%064x", uint64(i)*0x9e3779b97f4a7c15)
}

// TestPkgTable: what the index gives back is what primary.xml said, for
// every digest form, the later entry of a path wins, and a path it does
// not have is not found.
func TestPkgTable(t *testing.T) {
	sum := func(typ, v string) metadata.Checksum { return metadata.Checksum{Type: typ, Value: v} }
	type entry struct {
		rel string
		ref PkgRef
	}
	for _, tc := range []struct {
		name    string
		add     []entry
		lookup  string
		want    PkgRef
		found   bool
		entries int
	}{
		{name: "empty", lookup: "Packages/a.rpm"},
		{
			name:   "sha256",
			add:    []entry{{"Packages/a.rpm", PkgRef{sum("sha256", sha256Of(1)), 1234}}},
			lookup: "Packages/a.rpm", want: PkgRef{sum("sha256", sha256Of(1)), 1234}, found: true, entries: 1,
		},
		{
			name:   "sha1 and md5",
			add:    []entry{{"a.rpm", PkgRef{sum("sha1", strings.Repeat("ab", 20)), 1}}, {"b.rpm", PkgRef{sum("md5", strings.Repeat("0f", 16)), 2}}},
			lookup: "b.rpm", want: PkgRef{sum("md5", strings.Repeat("0f", 16)), 2}, found: true, entries: 2,
		},
		{
			name:   "uppercase hex is kept as written",
			add:    []entry{{"a.rpm", PkgRef{sum("sha256", strings.ToUpper(sha256Of(2))), 5}}},
			lookup: "a.rpm", want: PkgRef{sum("sha256", strings.ToUpper(sha256Of(2))), 5}, found: true, entries: 1,
		},
		{
			name:   "odd-length hex is kept as written",
			add:    []entry{{"a.rpm", PkgRef{sum("sha256", "abc"), 5}}},
			lookup: "a.rpm", want: PkgRef{sum("sha256", "abc"), 5}, found: true, entries: 1,
		},
		{
			name:   "unknown type",
			add:    []entry{{"a.rpm", PkgRef{sum("blake3", "0011"), 7}}},
			lookup: "a.rpm", want: PkgRef{sum("blake3", "0011"), 7}, found: true, entries: 1,
		},
		{
			name:   "empty path",
			add:    []entry{{"", PkgRef{sum("sha256", sha256Of(3)), 0}}},
			lookup: "", want: PkgRef{sum("sha256", sha256Of(3)), 0}, found: true, entries: 1,
		},
		{
			name:   "a later entry of a path wins",
			add:    []entry{{"a.rpm", PkgRef{sum("sha256", sha256Of(4)), 1}}, {"b.rpm", PkgRef{sum("sha256", sha256Of(5)), 2}}, {"a.rpm", PkgRef{sum("sha256", sha256Of(6)), 3}}},
			lookup: "a.rpm", want: PkgRef{sum("sha256", sha256Of(6)), 3}, found: true, entries: 2,
		},
		{
			name: "a path longer than a block, between two short ones",
			add: []entry{{"a.rpm", PkgRef{sum("sha256", sha256Of(8)), 1}}, {strings.Repeat("p/", blockSize) + "b.rpm", PkgRef{sum("sha256", sha256Of(9)), 2}},
				{"c.rpm", PkgRef{sum("sha256", sha256Of(10)), 3}}},
			lookup: strings.Repeat("p/", blockSize) + "b.rpm", want: PkgRef{sum("sha256", sha256Of(9)), 2}, found: true, entries: 3,
		},
		{
			name:    "a prefix of a path is another path",
			add:     []entry{{"Packages/a.rpm", PkgRef{sum("sha256", sha256Of(7)), 1}}},
			lookup:  "Packages/a.rp",
			entries: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b tableBuilder
			for _, e := range tc.add {
				b.add(e.rel, e.ref)
			}
			tab, err := b.table()
			if err != nil {
				t.Fatal(err)
			}
			got, ok := tab.lookup(tc.lookup)
			if ok != tc.found || got != tc.want {
				t.Errorf("lookup(%q) = %+v, %v; want %+v, %v", tc.lookup, got, ok, tc.want, tc.found)
			}
			if n := tab.count(); n != tc.entries {
				t.Errorf("count = %d, want %d", n, tc.entries)
			}
		})
	}
}

// TestPkgTableLikeMap: over many paths (so that probes collide and wrap),
// the table answers every lookup as a map filled in the same order does.
func TestPkgTableLikeMap(t *testing.T) {
	want := map[string]PkgRef{}
	var b tableBuilder
	for i := range 5000 {
		rel := fmt.Sprintf("Packages/%c/pkg%d-1.0-%d.el9.x86_64.rpm", 'a'+i%26, i%4000, i)
		if i%7 == 0 {
			rel = fmt.Sprintf("Packages/dup%d.rpm", i%50) // repeated paths
		}
		ref := PkgRef{Sum: metadata.Checksum{Type: "sha256", Value: sha256Of(i)}, Size: int64(i)}
		want[rel] = ref
		b.add(rel, ref)
	}
	tab, err := b.table()
	if err != nil {
		t.Fatal(err)
	}
	if tab.count() != len(want) {
		t.Errorf("count = %d, want %d", tab.count(), len(want))
	}
	for rel, ref := range want {
		if got, ok := tab.lookup(rel); !ok || got != ref {
			t.Fatalf("lookup(%q) = %+v, %v; want %+v", rel, got, ok, ref)
		}
		if _, ok := tab.lookup(rel + "x"); ok {
			t.Fatalf("lookup(%q) found a path never added", rel+"x")
		}
	}
}

// TestPkgTableMemory: the index of a 30,000-package repo shaped like
// AppStream (paths of ~50 bytes, sha256 digests) holds at most 120 bytes
// per package on the heap. The map of strings it replaced held 212 for the
// same entries (the indexes of a repo and its reference were ~12 MB of a
// proxy's live heap while a 30,000-package annotate view was built).
func TestPkgTableMemory(t *testing.T) {
	const n = 30000
	rels := make([]string, n)
	sums := make([]string, n)
	for i := range n {
		rels[i] = fmt.Sprintf("Packages/%c/package-name-%d-1.%d.3-4.el9.x86_64.rpm", 'a'+i%26, i, i%100)
		sums[i] = sha256Of(i)
	}
	var pathBytes int
	for _, r := range rels {
		pathBytes += len(r)
	}
	before := testenv.HeapAfterGC()
	var b tableBuilder
	for i := range n {
		b.add(rels[i], PkgRef{Sum: metadata.Checksum{Type: "sha256", Value: sums[i]}, Size: int64(1000 + i)})
	}
	tab, err := b.table()
	if err != nil {
		t.Fatal(err)
	}
	b = tableBuilder{}
	held := int(testenv.HeapAfterGC() - before)
	runtime.KeepAlive(tab)
	t.Logf("index of %d packages: %d bytes on the heap (%d per package, %d of them the path)", n, held, held/n, pathBytes/n)
	if held > 120*n {
		t.Errorf("index of %d packages holds %d bytes (%d per package), want at most 120 per package", n, held, held/n)
	}
	if ref, ok := tab.lookup(rels[n/2]); !ok || ref.Sum.Value != sums[n/2] {
		t.Errorf("lookup after the measurement: %+v, %v", ref, ok)
	}
}
