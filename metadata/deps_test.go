package metadata_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// depsSpec is a package with what the fixtures lack: files in a bin
// directory (createrepo_c lists those in primary.xml), a file require,
// versioned and rich requires, and scriptlet requires.
const depsSpec = `Name:           dnfpt-deps
Version:        3.1
Release:        2.el9
Summary:        deps test
License:        MIT
BuildArch:      noarch
AutoReqProv:    no
Provides:       dnfpt-deps-virtual = 3
Requires:       /usr/bin/sh
Requires:       dnfpt-lib >= 1.0
Requires:       (dnfpt-tool or dnfpt-extra)
Requires(post): coreutils

%description
deps test

%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/share/dnfpt-deps
echo '#!/bin/sh' > %{buildroot}/usr/bin/dnfpt-deps
chmod 0755 %{buildroot}/usr/bin/dnfpt-deps
echo data > %{buildroot}/usr/share/dnfpt-deps/data

%post
true

%files
/usr/bin/dnfpt-deps
/usr/share/dnfpt-deps/data
`

// buildDepsRPM builds depsSpec with rpmbuild and returns the .rpm path.
func buildDepsRPM(t *testing.T) string {
	t.Helper()
	bin := testenv.RequireTool(t, "rpmbuild")
	top := t.TempDir()
	spec := filepath.Join(top, "dnfpt-deps.spec")
	if err := os.WriteFile(spec, []byte(depsSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, "-bb", "--quiet",
		"--define", "_topdir "+top, "--define", "_build_id_links none", spec)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	rpms, _ := filepath.Glob(filepath.Join(top, "RPMS", "noarch", "dnfpt-deps-*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("rpmbuild made %v", rpms)
	}
	return rpms[0]
}

func scanDeps(t *testing.T, primary []byte) map[string]metadata.PackageDeps {
	t.Helper()
	got := map[string]metadata.PackageDeps{}
	err := metadata.ScanPrimaryDeps(bytes.NewReader(primary), func(d metadata.PackageDeps) error {
		if _, dup := got[d.Href]; dup {
			t.Errorf("package %s reported twice", d.Href)
		}
		got[d.Href] = d
		return nil
	})
	if err != nil {
		t.Fatalf("ScanPrimaryDeps: %v", err)
	}
	return got
}

func TestScanPrimaryDepsFixtures(t *testing.T) {
	deps := buildDepsRPM(t)
	rpms := append(slices.Clone(allRPMs), deps)
	dir, md := makeRepo(t, rpms, "--no-database")
	primary := readPrimary(t, dir, md)
	got := scanDeps(t, primary)

	// The package fields agree with ScanPrimary's.
	n := 0
	err := metadata.ScanPrimary(bytes.NewReader(primary), func(p metadata.Package) error {
		n++
		if d, ok := got[p.Href]; !ok || d.Package != p {
			t.Errorf("ScanPrimaryDeps gave %+v for %+v", d.Package, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(rpms) || len(got) != len(rpms) {
		t.Fatalf("ScanPrimary found %d packages, ScanPrimaryDeps %d, want %d", n, len(got), len(rpms))
	}

	for _, tc := range []struct {
		href     string
		provides []string
		requires []string
		files    []string
	}{
		{"Packages/" + testenv.RPMApp, []string{"dnfpt-app"}, []string{"dnfpt-lib"}, nil},
		{"Packages/" + testenv.RPMLib, []string{"dnfpt-lib", "libdnfpt.so.1()(64bit)"}, nil, nil},
		{"Packages/" + testenv.RPMLibAlma,
			[]string{"dnfpt-lib", "libdnfpt.so.1()(64bit)", "libdnfpt.so.1(DNFPT_1.1)(64bit)"}, nil, nil},
		{"Packages/" + testenv.RPMTool, []string{"dnfpt-tool"}, nil, nil},
		{"Packages/" + testenv.RPMConflict, []string{"dnfpt-conflict"}, nil, nil},
		{"Packages/" + filepath.Base(deps),
			[]string{"dnfpt-deps", "dnfpt-deps-virtual"},
			// rpmlib(...) requires (rpmbuild adds several) are dropped;
			// /bin/sh is the %post interpreter.
			[]string{"(dnfpt-tool or dnfpt-extra)", "/bin/sh", "/usr/bin/sh", "coreutils", "dnfpt-lib"},
			// primary lists bin files, not /usr/share ones.
			[]string{"/usr/bin/dnfpt-deps"}},
	} {
		d, ok := got[tc.href]
		if !ok {
			t.Errorf("%s: not found", tc.href)
			continue
		}
		sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
		if !slices.Equal(sorted(d.Provides), sorted(tc.provides)) {
			t.Errorf("%s: provides %q, want %q", tc.href, d.Provides, tc.provides)
		}
		if !slices.Equal(sorted(d.Requires), sorted(tc.requires)) {
			t.Errorf("%s: requires %q, want %q", tc.href, d.Requires, tc.requires)
		}
		if !slices.Equal(d.Files, tc.files) {
			t.Errorf("%s: files %q, want %q", tc.href, d.Files, tc.files)
		}
	}
	if d := got["Packages/"+filepath.Base(deps)]; d.Name != "dnfpt-deps" || d.Version != "3.1" || d.Release != "2.el9" || d.Epoch != "0" {
		t.Errorf("dnfpt-deps EVR fields: %+v", d.Package)
	}
}

func TestScanPrimaryDepsRejects(t *testing.T) {
	for _, tc := range []struct {
		name, primary string
	}{
		{"no root", `<?xml version="1.0"?><other/>`},
		{"bad href", strings.Replace(goodPrimary, `href="Packages/dnfpt-app`, `href="../dnfpt-app`, 1)},
		{"truncated", goodPrimary[:len(goodPrimary)/2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := metadata.ScanPrimaryDeps(strings.NewReader(tc.primary), func(metadata.PackageDeps) error { return nil })
			if !errors.Is(err, metadata.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
	stop := errors.New("stop")
	err := metadata.ScanPrimaryDeps(strings.NewReader(goodPrimary), func(metadata.PackageDeps) error { return stop })
	if err != stop {
		t.Fatalf("callback error: got %v, want it returned unchanged", err)
	}
}

func FuzzScanPrimaryDeps(f *testing.F) {
	addSeeds(f, "primary.xml")
	f.Add([]byte(goodPrimary))
	f.Fuzz(func(t *testing.T, data []byte) {
		var n int
		err := metadata.ScanPrimaryDeps(bytes.NewReader(data), func(d metadata.PackageDeps) error {
			n++
			checkSafeHref(t, d.Href)
			for _, r := range d.Requires {
				if r == "" || strings.HasPrefix(r, "rpmlib(") {
					t.Fatalf("require %q kept", r)
				}
			}
			return nil
		})
		// Whatever ScanPrimary accepts, ScanPrimaryDeps accepts too, with
		// the same packages.
		var m int
		err2 := metadata.ScanPrimary(bytes.NewReader(data), func(metadata.Package) error { m++; return nil })
		if (err == nil) != (err2 == nil) || (err == nil && n != m) {
			t.Fatalf("ScanPrimaryDeps: %d, %v; ScanPrimary: %d, %v", n, err, m, err2)
		}
	})
}
