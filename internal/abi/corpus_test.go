package abi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// libabigailDir returns the libabigail RPM corpus (../shared/corpora from
// the repo root), skipping the test when it is absent outside CI.
func libabigailDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(testenv.TestdataDir()), "..", "shared", "corpora", "libabigail")
	if _, err := os.Stat(filepath.Join(dir, "PAIRS.tsv")); err != nil {
		if testenv.InCI() {
			t.Fatalf("libabigail corpus missing: %v", err)
		}
		t.Skipf("libabigail corpus missing (%v); skipping", err)
	}
	return dir
}

type corpusPair struct {
	id, old, new, note string
}

// corpusPairs reads PAIRS.tsv, keeping the pairs whose two RPMs are there.
func corpusPairs(t testing.TB, dir string) []corpusPair {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "PAIRS.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var out []corpusPair
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, "\t")
		if strings.HasPrefix(line, "#") || len(f) < 3 {
			continue
		}
		p := corpusPair{id: f[0], old: filepath.Join(dir, f[1]), new: filepath.Join(dir, f[2])}
		if len(f) > 7 {
			p.note = f[7]
		}
		_, e1 := os.Stat(p.old)
		_, e2 := os.Stat(p.new)
		if e1 != nil || e2 != nil {
			t.Logf("%s: RPM not in the snapshot (ABSENT), skipped", p.id)
			continue
		}
		out = append(out, p)
	}
	if len(out) < 20 {
		t.Fatalf("only %d usable pairs in PAIRS.tsv", len(out))
	}
	return out
}

// fileRef makes a PackageRef for an RPM file, keyed by its own path (a
// stand-in checksum: the corpus files are distinct files).
func fileRef(path string) PackageRef {
	return PackageRef{PackageID: metadata.PackageID{Name: filepath.Base(path)}, Checksum: metadata.Checksum{Type: "path", Value: path}, Href: path}
}

// sideRef is fileRef with the side in the stand-in checksum, so that a
// package compared with itself is analysed rather than recognised as the
// same file.
func sideRef(side, path string) PackageRef {
	r := fileRef(path)
	r.Checksum.Value = side + ":" + path
	return r
}

func openFile(_ context.Context, ref PackageRef) (io.ReadCloser, error) { return os.Open(ref.Href) }

// verdict reduces findings to the strongest class.
func verdict(fs []metadata.Finding) string {
	v := "none"
	for _, f := range fs {
		if f.Class == metadata.ClassABIChanged {
			return f.Class
		}
		if f.Class == metadata.ClassABIExtended {
			v = f.Class
		}
	}
	return v
}

// TestLibabigailCorpus is the ground truth: for each binary pair of
// libabigail's own test suite, the Analyzer's verdict must equal the
// exported-symbol diff that readelf sees, and must not be abi-changed
// where neither abipkgdiff --dso-only nor that diff sees a change.
func TestLibabigailCorpus(t *testing.T) {
	dir := libabigailDir(t)
	abipkgdiff := testenv.RequireTool(t, "abipkgdiff")
	requireTruthTools(t)
	pairs := corpusPairs(t, dir)
	a := NewAnalyzer(Options{Concurrency: 2})
	type row struct {
		p              corpusPair
		mine, truth    string
		removed, added int
		abiStatus      int
		abiRemovedBins bool // its report lists removed shared libraries (its exit status does not count them)
		first          string
		err            error
	}
	rows := make([]row, len(pairs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r := row{p: p}
			fs, err := a.ComparePair(context.Background(), sideRef("old", p.old), sideRef("new", p.new), openFile)
			r.err = err
			r.mine = verdict(fs)
			if len(fs) > 0 {
				r.first = fs[0].Reason
			}
			r.abiStatus, r.abiRemovedBins = runAbipkgdiff(abipkgdiff, p.old, p.new)
			old, err1 := truthLibraries(p.old)
			nw, err2 := truthLibraries(p.new)
			if err := errors.Join(err1, err2); err != nil {
				r.err = err
			}
			r.truth, r.removed, r.added = truthVerdict(old, nw)
			rows[i] = r
		}()
	}
	wg.Wait()
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-30s %-13s %-13s %-9s %-10s %s\n", "pair", "ours", "readelf", "rm/add", "abipkgdiff", "agree")
	agreeTruth, agreeAbi := 0, 0
	for _, r := range rows {
		if r.err != nil {
			t.Errorf("%s: %v", r.p.id, r.err)
			continue
		}
		abiSays := "none"
		switch {
		case r.abiStatus < 0:
			abiSays = "error"
		case r.abiStatus&abiIncompatible != 0 || r.abiRemovedBins:
			abiSays = "incompat"
		case r.abiStatus&abiChange != 0:
			abiSays = "change"
		}
		okTruth := r.mine == r.truth
		// abipkgdiff agrees when it calls incompatible what we call
		// abi-changed, sees a change where we see one, and nothing where
		// we see nothing.
		okAbi := (r.mine == "abi-changed") == (abiSays == "incompat") && (r.mine == "none") == (abiSays == "none")
		if okTruth {
			agreeTruth++
		}
		if okAbi {
			agreeAbi++
		}
		fmt.Fprintf(&table, "%-30s %-13s %-13s %-9s %-10s %s\n", r.p.id, r.mine, r.truth,
			fmt.Sprintf("%d/%d", r.removed, r.added), fmt.Sprintf("%s(%d)", abiSays, r.abiStatus),
			map[bool]string{true: "readelf", false: "-"}[okTruth]+map[bool]string{true: "+abipkgdiff", false: ""}[okAbi])
		if !okTruth {
			t.Errorf("%s: ours %s, readelf's symbol diff %s (removed %d, added %d); first finding %q", r.p.id, r.mine, r.truth, r.removed, r.added, r.first)
		}
		if r.mine == "abi-changed" && r.truth == "none" && abiSays == "none" {
			t.Errorf("%s: abi-changed where neither readelf nor abipkgdiff sees a change: %q", r.p.id, r.first)
		}
	}
	fmt.Fprintf(&table, "agreement: readelf symbol diff %d/%d, abipkgdiff --dso-only %d/%d\n", agreeTruth, len(rows), agreeAbi, len(rows))
	if s := a.Stats(); s.PackagesRead != int64(2*len(rows)) {
		t.Errorf("%d packages read for %d pairs: self-pairs must be analysed too", s.PackagesRead, len(rows))
	}
	t.Log(table.String())
}

// runAbipkgdiff returns abipkgdiff --dso-only's exit status (-1 when it
// could not run) and whether its report lists removed shared libraries.
func runAbipkgdiff(bin, old, nw string) (int, bool) {
	out, err := exec.Command(bin, "--dso-only", old, nw).Output()
	removedBins := strings.Contains(string(out), "Removed binaries") && strings.Contains(string(out), "SONAME:")
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, removedBins
	case errors.As(err, &exit):
		return exit.ExitCode(), removedBins
	}
	return -1, false
}
