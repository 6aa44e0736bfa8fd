package proxy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// TestViewsAcrossUpstreamFlavours drives dnf through every view of repos
// that createrepo_c made in each of its flavours: compression types,
// zchunk, sqlite databases, comps, updateinfo and modules.yaml. zstd
// metadata is written by dnfproxy's own rewriter (a keep-all plan), since
// createrepo_c 0.17 cannot write it.
func TestViewsAcrossUpstreamFlavours(t *testing.T) {
	comps, err := filepath.Abs("testdata/comps.xml")
	if err != nil {
		t.Fatal(err)
	}
	rpms := append(testenv.InitialRPMs(), testenv.RPMLibAlma)
	for _, fl := range []struct {
		name string
		args []string
		post func(t *testing.T, repo string)
	}{
		{"gz with sqlite and comps", []string{"--groupfile", comps}, nil},
		{"xz", []string{"--general-compress-type=xz", "--no-database"}, nil},
		{"bz2 with sqlite", []string{"--general-compress-type=bz2"}, nil},
		{"zchunk", []string{"--zck"}, nil},
		{"zstd", []string{"--no-database"}, recompressZstd},
		{"updateinfo and modules.yaml", []string{"--no-database"}, addUpdateinfoAndModules},
	} {
		t.Run(fl.name, func(t *testing.T) {
			dir := t.TempDir()
			repo := filepath.Join(dir, "el9")
			testenv.MakeRepo(t, repo, rpms, fl.args...)
			if fl.post != nil {
				fl.post(t, repo)
			}
			rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
			if err := os.WriteFile(rulesFile, []byte(almaRule), 0o644); err != nil {
				t.Fatal(err)
			}
			up := newFakeUpstream(t, dir)
			r := testRepo("test", up.URL(), time.Minute)
			r.Compat.Mode = config.ModeAnnotate
			p := startProxy(t, []config.Repo{r}, func(c *config.Config) {
				c.RuleFiles = []string{rulesFile}
				c.Signing.KeyFile = "testdata/signing-key.asc"
			})
			for _, view := range []string{"raw", "annotate", "filter"} {
				base := p.URL("/test@" + view + "/el9/")
				d := testenv.NewDNF(t, map[string]string{"test": base})
				d.MakeCache()
				got := d.RepoQuery()
				if !slices.Contains(got, "dnfpt-lib-1.0-1.el9.noarch") || !slices.Contains(got, "dnfpt-app-1.0-1.el9.noarch") {
					t.Fatalf("%s view: repoquery %v", view, got)
				}
				if slices.Contains(got, almaLib) == (view == "filter") {
					t.Fatalf("%s view: alma build listed=%v: %v", view, !(view == "filter"), got)
				}
				want := []string(nil)
				if view == "annotate" {
					want = []string{almaLib}
				}
				if got := d.RepoQuery("--whatprovides", "abi-divergence(rhel)"); !slices.Equal(got, want) {
					t.Fatalf("%s view: whatprovides abi-divergence(rhel) = %v, want %v", view, got, want)
				}
			}
		})
	}
}

// recompressZstd rewrites a gz repo's package files as zstd, keeping every
// package byte for byte, and its repomd.xml to match.
func recompressZstd(t *testing.T, repo string) {
	t.Helper()
	orig := readFile(t, filepath.Join(repo, "repodata", "repomd.xml"))
	md, err := metadata.ParseRepomd(orig)
	if err != nil {
		t.Fatal(err)
	}
	prim, _ := md.Record("primary")
	n := 0
	f, err := os.Open(filepath.Join(repo, prim.Href))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := metadata.Decompress(f, metadata.CodecOf(prim.Href), 1<<30)
	if err == nil {
		err = metadata.ScanPrimary(zr, func(metadata.Package) error { n++; return nil })
	}
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := metadata.PlanOf(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	replaced := map[string]metadata.FileInfo{}
	for _, kind := range []metadata.FileKind{metadata.KindPrimary, metadata.KindFilelists, metadata.KindOther} {
		rec, _ := md.Record(string(kind))
		in, err := os.Open(filepath.Join(repo, rec.Href))
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(repo, "repodata", "tmp-"+string(kind))
		out, err := os.Create(tmp)
		if err != nil {
			t.Fatal(err)
		}
		res, err := plan.Rewrite(kind, in, metadata.CodecOf(rec.Href), out, metadata.Zstd, 1<<30)
		in.Close()
		out.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(repo, metadata.RewrittenHref(string(kind), rec.Href, res.FileInfo))); err != nil {
			t.Fatal(err)
		}
		replaced[string(kind)] = res.FileInfo
	}
	repomd, err := metadata.RewriteRepomd(orig, replaced, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "repodata", "repomd.xml"), repomd, 0o644); err != nil {
		t.Fatal(err)
	}
}

func addUpdateinfoAndModules(t *testing.T, repo string) {
	t.Helper()
	modifyrepo := testenv.RequireTool(t, "modifyrepo_c")
	src := filepath.Join(testenv.TestdataDir(), "..", "metadata", "testdata", "updateinfo")
	for _, add := range [][]string{
		{"--mdtype=updateinfo", filepath.Join(src, "updateinfo.xml")},
		{"--mdtype=modules", filepath.Join(src, "modules.yaml")},
	} {
		if out, err := exec.Command(modifyrepo, append(add, filepath.Join(repo, "repodata"))...).CombinedOutput(); err != nil {
			t.Fatalf("modifyrepo_c %v: %v\n%s", add, err, out)
		}
	}
}
