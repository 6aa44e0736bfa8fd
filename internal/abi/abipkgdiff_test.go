package abi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// TestAbipkgdiffRunner runs the real abipkgdiff on generated pairs (their
// libraries carry DWARF, so type changes are visible) and maps its exit
// bits to findings.
func TestAbipkgdiffRunner(t *testing.T) {
	testenv.RequireTool(t, "abipkgdiff")
	dir := generatedCorpus(t)
	p := func(id string) string { return filepath.Join(dir, id+".rpm") }
	for _, tc := range []struct {
		name, ref, new string
		status         int
		class          string
		in             []string
	}{
		{"removed function: incompatible", "ref-abt", "abt-removed", abiChange | abiIncompatible, metadata.ClassABIChanged, []string{"an incompatible ABI change", "1 removed", "abt_b@@ABT_1.0"}},
		{"struct grown: a type change", "ref-abt", "abt-grown", abiChange, metadata.ClassABIChanged, []string{"reports ABI changes (exit 4; 0 removed, 1 changed, 0 added", "size of symbol changed from 8 to 12"}},
		{"function added: compatible", "ref-abt", "abt-added", abiChange, metadata.ClassABIExtended, []string{"compatible additions", "abt_d@@ABT_1.0"}},
		{"C++ signature change", "ref-cxx", "cxx-changed", abiChange | abiIncompatible, metadata.ClassABIChanged, []string{"abcxx::scale(int)"}},
		{"identical rebuild", "ref-abt", "abt-alma", 0, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := (&Abipkgdiff{}).Compare(t.Context(), DeepInput{Old: p(tc.ref), New: p(tc.new)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.status {
				t.Fatalf("exit %d, want %d:\n%s", res.Status, tc.status, res.Report)
			}
			fs := res.Findings("compared with " + tc.ref)
			if tc.class == "" {
				if len(fs) != 0 {
					t.Fatalf("findings for no change: %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Class != tc.class {
				t.Fatalf("findings %+v, want one %s", fs, tc.class)
			}
			for _, frag := range tc.in {
				if !strings.Contains(fs[0].Reason, frag) {
					t.Errorf("reason lacks %q:\n%s", frag, fs[0].Reason)
				}
			}
		})
	}
	t.Run("report capped", func(t *testing.T) {
		res, err := (&Abipkgdiff{MaxReport: 100}).Compare(t.Context(), DeepInput{Old: p("ref-abt"), New: p("abt-grown")})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Report) != 100 || !res.Truncated || !strings.Contains(res.Findings("x")[0].Reason, "[report truncated]") {
			t.Fatalf("report of %d bytes, truncated %v", len(res.Report), res.Truncated)
		}
	})
	t.Run("not an RPM is an error", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.rpm")
		os.WriteFile(bad, []byte("not an rpm"), 0o644)
		_, err := (&Abipkgdiff{}).Compare(t.Context(), DeepInput{Old: bad, New: p("ref-abt")})
		if !errors.Is(err, ErrAbipkgdiff) {
			t.Fatalf("err %v, want ErrAbipkgdiff", err)
		}
	})
	t.Run("missing binary", func(t *testing.T) {
		_, err := (&Abipkgdiff{Path: filepath.Join(t.TempDir(), "abipkgdiff")}).Compare(t.Context(), DeepInput{Old: p("ref-abt"), New: p("abt-added")})
		if !errors.Is(err, ErrAbipkgdiff) {
			t.Fatalf("err %v, want ErrAbipkgdiff", err)
		}
	})
}

// TestDeepComparePair runs the deep layer through the Analyzer with
// debuginfo packages from the libabigail corpus, and reuses the result.
func TestDeepComparePair(t *testing.T) {
	testenv.RequireTool(t, "abipkgdiff")
	dir := libabigailDir(t)
	ref := func(name string) PackageRef { return fileRef(filepath.Join(dir, name)) }
	kv := &memKV{m: map[string][]byte{}}
	a := NewAnalyzer(Options{Results: kv, Limits: Limits{TempDir: t.TempDir()}})
	op := &countingOpener{}
	old, nw := ref("libICE-1.0.6-1.el6.x86_64.rpm"), ref("libICE-1.0.9-2.el7.x86_64.rpm")
	d1, d2 := []PackageRef{ref("libICE-debuginfo-1.0.6-1.el6.x86_64.rpm")}, []PackageRef{ref("libICE-debuginfo-1.0.9-2.el7.x86_64.rpm")}
	fs, err := a.DeepComparePair(t.Context(), &Abipkgdiff{}, old, nw, d1, d2, op.open)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Class != metadata.ClassABIChanged || !strings.Contains(fs[0].Reason, "in6addr_any") ||
		!strings.Contains(fs[0].Reason, "struct _IceConn") { // a type-level change: only with the debuginfo
		t.Fatalf("findings %+v", fs)
	}
	if op.n.Load() != 4 {
		t.Fatalf("%d opens, want 4 (two packages, two debuginfo)", op.n.Load())
	}
	again, err := a.DeepComparePair(t.Context(), &Abipkgdiff{}, old, nw, d1, d2, op.open)
	if err != nil || op.n.Load() != 4 || len(again) != 1 || again[0].Reason != fs[0].Reason {
		t.Fatalf("second run: %v, %d opens", err, op.n.Load())
	}
}
