package proxy

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// TestViewReferenceComparisonE2E compares a rebuild repo with a RHEL-like
// reference repo at the same sub-path, with no rules at all: the rebuild's
// dnfpt-lib carries a vendor marker and adds a symbol version node
// (patched, abi-extended), dnfpt-extra has no counterpart
// (not-in-reference), the rest are identical builds.
func TestViewReferenceComparisonE2E(t *testing.T) {
	refDir := newRepoDir(t, "el9", testenv.InitialRPMs())
	rebuildDir := newRepoDir(t, "el9", []string{testenv.RPMLibAlma, testenv.RPMApp, testenv.RPMTool, testenv.RPMExtra})
	refUp, rebuildUp := newFakeUpstream(t, refDir), newFakeUpstream(t, rebuildDir)
	ref := testRepo("rhel", refUp.URL(), time.Minute)
	rebuild := testRepo("alma", rebuildUp.URL(), time.Minute)
	rebuild.Compat.Mode = config.ModeAnnotate
	rebuild.Compat.Reference = "rhel"
	p := startProxy(t, []config.Repo{ref, rebuild}, func(c *config.Config) {
		c.Signing.KeyFile = "testdata/signing-key.asc"
	})

	d := testenv.NewDNF(t, map[string]string{"alma": p.URL("/alma/el9/")})
	for _, tc := range []struct {
		provide string
		want    []string
	}{
		{"abi-divergence(rhel)", []string{almaLib}},
		{"abi-divergence(rhel:abi-extended)", []string{almaLib}},
		{"abi-divergence(rhel:patched)", []string{almaLib}},
		{"abi-divergence(rhel:abi-changed)", nil},
		// not-in-reference is not in compat.annotate by default: reported only.
		{"abi-divergence(rhel:not-in-reference)", nil},
	} {
		if got := d.RepoQuery("--whatprovides", tc.provide); !slices.Equal(got, tc.want) {
			t.Errorf("whatprovides %s = %v, want %v", tc.provide, got, tc.want)
		}
	}
	out, _, err := d.Run("info", "dnfpt-lib")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[RHEL-ABI: patched,abi-extended]", "adds libdnfpt.so.1(DNFPT_1.1)(64bit)"} {
		if !strings.Contains(out, want) {
			t.Errorf("dnf info lacks %q:\n%s", want, out)
		}
	}

	rep, err := p.srv.views.Report(context.Background(), "alma", "el9/", true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reference != "rhel" {
		t.Errorf("reference %q", rep.Reference)
	}
	got := map[string]string{}
	for _, pk := range rep.Packages {
		got[pk.NEVRA] = string(pk.Action) + ":" + strings.Join(pk.Classes, ",")
	}
	want := map[string]string{
		almaLib:                        "annotate:patched,abi-extended",
		"dnfpt-extra-1.0-1.el9.noarch": "none:not-in-reference",
	}
	if len(got) != len(want) || got[almaLib] != want[almaLib] || got["dnfpt-extra-1.0-1.el9.noarch"] != want["dnfpt-extra-1.0-1.el9.noarch"] {
		t.Fatalf("report %v, want %v", got, want)
	}
}
