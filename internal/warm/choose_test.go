package warm

import (
	"slices"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// pkg builds a package from "name-[epoch:]version-release.arch" plus its
// provides, requires and files.
func pkg(nevra string, provides, requires, files []string) metadata.PackageDeps {
	i := strings.LastIndex(nevra, ".")
	rest, arch := nevra[:i], nevra[i+1:]
	i = strings.LastIndex(rest, "-")
	rel := rest[i+1:]
	rest = rest[:i]
	i = strings.LastIndex(rest, "-")
	name, ver := rest[:i], rest[i+1:]
	epoch := "0"
	if e, v, ok := strings.Cut(ver, ":"); ok {
		epoch, ver = e, v
	}
	return metadata.PackageDeps{
		Package: metadata.Package{
			Name: name, Arch: arch, Epoch: epoch, Version: ver, Release: rel,
			Href: "Packages/" + nevra + ".rpm", Size: 1,
		},
		Provides: append([]string{name}, provides...),
		Requires: requires,
		Files:    files,
	}
}

// testRepo is a small repo shaped like a distribution's.
var testRepo = []metadata.PackageDeps{
	pkg("bash-5.1-1.el9.x86_64", nil, []string{"libc.so.6()(64bit)", "/usr/bin/sh"}, []string{"/usr/bin/bash", "/usr/bin/sh"}),
	pkg("bash-5.2-1.el9.x86_64", nil, []string{"libc.so.6()(64bit)"}, []string{"/usr/bin/bash", "/usr/bin/sh"}),
	pkg("glibc-2.34-1.el9.x86_64", []string{"libc.so.6()(64bit)"}, []string{"/usr/bin/sh"}, nil),
	pkg("glibc-2.34-1.el9.i686", []string{"libc.so.6"}, []string{"/usr/bin/sh"}, nil),
	pkg("app-1.0-1.el9.x86_64", nil, []string{"bash", "(lib-a or lib-b >= 2)", "elsewhere", "python3dist(foo)"}, nil),
	pkg("lib-a-1.0-1.el9.noarch", nil, nil, nil),
	pkg("lib-b-2.0-1.el9.noarch", nil, nil, nil),
	pkg("lib-c-1.0-1.el9.noarch", nil, nil, nil),
	pkg("mta-a-1.0-1.el9.x86_64", []string{"MTA"}, nil, nil),
	pkg("mta-b-1:0.1-1.el9.x86_64", []string{"MTA"}, nil, nil),
	pkg("mailer-1-1.noarch", nil, []string{"MTA"}, nil),
	pkg("lone-1-1.noarch", nil, []string{"rich-nothing"}, nil),
	pkg("lone-1-1.el9.alma.1.noarch", nil, []string{"(none-here or also-none)"}, nil),
	pkg("foo-provider-1-1.noarch", []string{"virtual-foo"}, nil, nil),
}

func names(sel selection) []string {
	var out []string
	for _, p := range sel.packages {
		out = append(out, p.NEVRA())
	}
	slices.Sort(out)
	return out
}

func TestChoose(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mode       string
		names      []string
		want       []string
		notFound   []string
		unresolved int
	}{
		{name: "none", mode: PackagesNone},
		{name: "all", mode: PackagesAll, want: []string{
			"app-1.0-1.el9.x86_64", "bash-5.1-1.el9.x86_64", "bash-5.2-1.el9.x86_64",
			"foo-provider-1-1.noarch", "glibc-2.34-1.el9.i686", "glibc-2.34-1.el9.x86_64",
			"lib-a-1.0-1.el9.noarch", "lib-b-2.0-1.el9.noarch", "lib-c-1.0-1.el9.noarch",
			"lone-1-1.el9.alma.1.noarch", "lone-1-1.noarch", "mailer-1-1.noarch",
			"mta-a-1.0-1.el9.x86_64", "mta-b-1:0.1-1.el9.x86_64"}},
		{name: "latest", mode: PackagesLatest, want: []string{
			"app-1.0-1.el9.x86_64", "bash-5.2-1.el9.x86_64",
			"foo-provider-1-1.noarch", "glibc-2.34-1.el9.i686", "glibc-2.34-1.el9.x86_64",
			"lib-a-1.0-1.el9.noarch", "lib-b-2.0-1.el9.noarch", "lib-c-1.0-1.el9.noarch",
			"lone-1-1.el9.alma.1.noarch", "mailer-1-1.noarch",
			"mta-a-1.0-1.el9.x86_64", "mta-b-1:0.1-1.el9.x86_64"}},
		{
			// bash by name, glibc by soname, bash again by file (already
			// chosen); the rich dependency adds both of its operands;
			// "elsewhere" and "python3dist(foo)" are other repos'.
			name: "closure", mode: PackagesNone, names: []string{"app"},
			want: []string{"app-1.0-1.el9.x86_64", "bash-5.2-1.el9.x86_64", "glibc-2.34-1.el9.x86_64",
				"lib-a-1.0-1.el9.noarch", "lib-b-2.0-1.el9.noarch"},
			unresolved: 2,
		},
		{
			// Both arches of a name; each needs /usr/bin/sh, which the
			// newest bash has.
			name: "name per arch", mode: PackagesNone, names: []string{"glibc"},
			want: []string{"bash-5.2-1.el9.x86_64", "glibc-2.34-1.el9.i686", "glibc-2.34-1.el9.x86_64"},
		},
		{
			// Epoch 1 beats a higher version of another provider.
			name: "newest provider", mode: PackagesNone, names: []string{"mailer"},
			want: []string{"mailer-1-1.noarch", "mta-b-1:0.1-1.el9.x86_64"},
		},
		{
			name: "newest build of a name, its rich dep unresolved", mode: PackagesNone,
			names: []string{"lone", "# not a comment here", "  ", "nosuch", "nosuch"},
			want:  []string{"lone-1-1.el9.alma.1.noarch"}, notFound: []string{"# not a comment here", "nosuch"},
			unresolved: 1,
		},
		{name: "virtual provide asked for", mode: PackagesNone, names: []string{"virtual-foo"},
			want: []string{"foo-provider-1-1.noarch"}},
		{name: "latest plus names", mode: PackagesLatest, names: []string{"bash"}, want: []string{
			"app-1.0-1.el9.x86_64", "bash-5.2-1.el9.x86_64",
			"foo-provider-1-1.noarch", "glibc-2.34-1.el9.i686", "glibc-2.34-1.el9.x86_64",
			"lib-a-1.0-1.el9.noarch", "lib-b-2.0-1.el9.noarch", "lib-c-1.0-1.el9.noarch",
			"lone-1-1.el9.alma.1.noarch", "mailer-1-1.noarch",
			"mta-a-1.0-1.el9.x86_64", "mta-b-1:0.1-1.el9.x86_64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel := choose(testRepo, tc.mode, tc.names)
			if got := names(sel); !slices.Equal(got, tc.want) {
				t.Errorf("packages:\n got %q\nwant %q", got, tc.want)
			}
			if !slices.Equal(sel.notFound, tc.notFound) {
				t.Errorf("notFound %q, want %q", sel.notFound, tc.notFound)
			}
			if sel.unresolved != tc.unresolved {
				t.Errorf("unresolved %d, want %d", sel.unresolved, tc.unresolved)
			}
		})
	}
}

func TestChooseDuplicateHref(t *testing.T) {
	repo := []metadata.PackageDeps{pkg("a-1-1.noarch", nil, nil, nil), pkg("a-1-1.noarch", nil, nil, nil)}
	for _, mode := range []string{PackagesAll, PackagesLatest} {
		if got := names(choose(repo, mode, nil)); len(got) != 1 {
			t.Errorf("%s: %q, want the package once", mode, got)
		}
	}
	if got := names(choose(repo, PackagesNone, []string{"a"})); len(got) != 1 {
		t.Errorf("names: %q, want the package once", got)
	}
}

func TestDepNames(t *testing.T) {
	for _, tc := range []struct {
		req  string
		want []string
	}{
		{"bash", []string{"bash"}},
		{"libc.so.6()(64bit)", []string{"libc.so.6()(64bit)"}},
		{"(a or b)", []string{"a", "b"}},
		{"(a >= 1.0-2 and (b if c))", []string{"a", "b", "c"}},
		{"(libc.so.6()(64bit) or (python3dist(x) >= 2))", []string{"libc.so.6()(64bit)", "python3dist(x)"}},
		{"(x with y without z unless w else v)", []string{"x", "y", "z", "w", "v"}},
	} {
		if got := depNames(tc.req); !slices.Equal(got, tc.want) {
			t.Errorf("depNames(%q) = %q, want %q", tc.req, got, tc.want)
		}
	}
}
