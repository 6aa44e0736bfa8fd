package abi

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/metadata"
)

func TestSourceName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"spice-0.12.4-19.el7.src.rpm", "spice"},
		{"qemu-kvm-rhev-2.3.0-7.el7.src.rpm", "qemu-kvm-rhev"},
		{"libsigc++20-2.10.0-1.fc26.src.rpm", "libsigc++20"},
		{"kernel-5.14.0-427.el9.nosrc.rpm", "kernel"},
		{"", ""},
		{"foo.src.rpm", ""},
		{"foo-1.src.rpm", ""},
		{"foo-1.0-1.el9.x86_64.rpm", ""},
	} {
		if got := SourceName(tc.in); got != tc.want {
			t.Errorf("SourceName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// readHeader returns an RPM file's identity and source package.
func readHeader(t *testing.T, path string) (metadata.PackageID, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, _, err := walkRPM(context.Background(), f, func(*rpmHeader) bool { return false }, nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return h.ID, h.SourceRPM
}

// TestDebuginfoNamingLibabigail checks the naming rule against the
// debuginfo packages libabigail's own tests give abipkgdiff for each pair
// (PAIRS.tsv): from every debuginfo package of the corpus, Find picks,
// for each side, exactly those listed (EL7 "<source>-debuginfo",
// per-subpackage "<name>-debuginfo" plus the main one since rpm 4.14,
// qemu-img-rhev's "qemu-kvm-rhev-debuginfo" by its source package). Files
// the corpus could not fetch (ABSENT) must be among those reported missing.
func TestDebuginfoNamingLibabigail(t *testing.T) {
	dir := libabigailDir(t)
	x := NewDebugIndex([]string{"corpus"})
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rpm") || !strings.Contains(d.Name(), "-debuginfo-") {
			return err
		}
		id, _ := readHeader(t, p)
		rel, _ := filepath.Rel(dir, p)
		x.Add("corpus", metadata.Package{Name: id.Name, Arch: id.Arch, Epoch: id.Epoch, Version: id.Version, Release: id.Release,
			Href: rel, Checksum: metadata.Checksum{Type: "path", Value: rel}})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if x.Len() < 20 {
		t.Fatalf("only %d debuginfo packages in the corpus", x.Len())
	}
	b, err := os.ReadFile(filepath.Join(dir, "PAIRS.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, "\t")
		if strings.HasPrefix(line, "#") || len(f) < 5 {
			continue
		}
		for side, col := range []struct{ pkg, debug string }{{f[1], f[3]}, {f[2], f[4]}} {
			if col.debug == "-" {
				continue
			}
			path := filepath.Join(dir, col.pkg)
			if _, err := os.Stat(path); err != nil {
				continue // absent from the corpus
			}
			id, src := readHeader(t, path)
			found, missing := x.Find(id, SourceName(src), side == 1)
			var got []string
			for _, d := range found {
				got = append(got, filepath.Base(d.Href))
			}
			var want, absent []string
			for _, w := range strings.Split(col.debug, ",") {
				if _, err := os.Stat(filepath.Join(dir, w)); err != nil {
					absent = append(absent, strings.TrimSuffix(filepath.Base(w), ".rpm"))
					continue
				}
				if did, _ := readHeader(t, filepath.Join(dir, w)); !IsDebuginfo(did.Name) {
					// libabigail's dbus-glib test passes a copy of the
					// binary package under a debuginfo file name.
					continue
				}
				want = append(want, filepath.Base(w))
			}
			for i, m := range missing { // file names have no epoch
				if e := strings.Index(m, ":"); e >= 0 {
					missing[i] = m[:strings.LastIndex(m[:e], "-")+1] + m[e+1:]
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s side %d (%s, source %s): found %v, want %v", f[0], side, col.pkg, src, got, want)
			}
			for _, a := range absent {
				if !slices.Contains(missing, a) {
					t.Errorf("%s side %d: %s is absent but not reported missing (%v)", f[0], side, a, missing)
				}
			}
			checked++
		}
	}
	if checked < 30 {
		t.Fatalf("only %d sides checked", checked)
	}
	t.Logf("%d sides of PAIRS.tsv: debuginfo packages found as libabigail's tests list them", checked)
}

// TestDebugIndexSides: the same NEVRA in two debuginfo repos goes to the
// reference side from the first and to the other side from the last.
func TestDebugIndexSides(t *testing.T) {
	pkg := func(name, sum string) metadata.Package {
		return metadata.Package{Name: name, Arch: "x86_64", Version: "1.0", Release: "1.el9", Href: "Packages/" + name + ".rpm",
			Checksum: metadata.Checksum{Type: "sha256", Value: sum}}
	}
	x := NewDebugIndex([]string{"rhel-debug", "alma-debug"})
	x.Add("rhel-debug", pkg("foo-debuginfo", "aa"))
	x.Add("rhel-debug", pkg("foo", "ab")) // not a debuginfo package
	x.Add("alma-debug", pkg("foo-debuginfo", "bb"))
	x.Add("alma-debug", pkg("foo-libs-debuginfo", "cc"))
	id := metadata.PackageID{Name: "foo-libs", Arch: "x86_64", Version: "1.0", Release: "1.el9"}
	old, _ := x.Find(id, "foo", false)
	nw, _ := x.Find(id, "foo", true)
	sums := func(rs []DebugRef) (out []string) {
		for _, r := range rs {
			out = append(out, r.Repo+":"+r.Checksum.Value)
		}
		return out
	}
	if got := sums(old); !slices.Equal(got, []string{"alma-debug:cc", "rhel-debug:aa"}) {
		t.Errorf("reference side %v", got)
	}
	if got := sums(nw); !slices.Equal(got, []string{"alma-debug:cc", "alma-debug:bb"}) {
		t.Errorf("new side %v", got)
	}
	if r, ok := x.RepoOf(nw[1].PackageRef); !ok || r != "alma-debug" {
		t.Errorf("RepoOf = %q, %v", r, ok)
	}
	other := metadata.PackageID{Name: "bar", Arch: "x86_64", Version: "2", Release: "1"}
	req, miss := x.Request(Pair{Old: PackageRef{PackageID: id}, New: PackageRef{PackageID: other}}, "foo-1.0-1.el9.src.rpm", "bar-2-1.src.rpm")
	if len(req.OldDebug) != 2 || len(req.NewDebug) != 0 || miss.Old != nil || !slices.Equal(miss.New, []string{"bar-debuginfo-2-1.x86_64"}) {
		t.Fatalf("request %+v, missing %+v", req, miss)
	}
	fs := miss.Annotate([]metadata.Finding{{Class: metadata.ClassABIChanged, Reason: "head\nreport"}})
	want := "head\nabipkgdiff ran without debuginfo for this side (no bar-debuginfo-2-1.x86_64) in rhel-debug, alma-debug: type-level changes are not visible there\nreport"
	if fs[0].Reason != want {
		t.Errorf("annotated reason\n%s\nwant\n%s", fs[0].Reason, want)
	}
	if got := (MissingDebuginfo{}).Annotate(fs); got[0].Reason != want {
		t.Errorf("nothing missing changed the reason: %q", got[0].Reason)
	}
}
