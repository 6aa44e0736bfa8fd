package view

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/fill"
	"github.com/dnfproxy/dnfproxy/internal/repo"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/internal/upstream"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// TestAnalysisKeysPackagesAtTheirResolvedPath: createrepo_c --baseurl
// writes an xml:base on every location. After a restart the generation's
// package index is not built yet; when a view's analysis is the first to
// read primary.xml, the packages it indexes must be where the xml:base
// puts them (sub/Packages/..., below the root) and a base outside the repo
// must leave them out of the index. The analysis used to index them by
// href as written: the package at its real path was unknown (404 through
// the proxy) and the one living elsewhere was indexed under the root.
func TestAnalysisKeysPackagesAtTheirResolvedPath(t *testing.T) {
	testenv.RequireTool(t, "createrepo_c")
	dir := t.TempDir()
	up := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(up.Close)
	pkg := "Packages/" + testenv.RPMApp
	for _, tc := range []struct {
		name, base string
		rel        string // the path the index must know, "" for none
		notRel     string // a path it must not know
	}{
		{"inside", up.URL + "/inside/sub/", "sub/" + pkg, pkg},
		{"outside", "http://baseurl.invalid/zoo/", "", pkg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The RPMs in <root>/sub/, the metadata in <root>/repodata/.
			root := filepath.Join(dir, tc.name)
			testenv.AddRPMs(t, filepath.Join(root, "sub"), testenv.InitialRPMs()...)
			testenv.CreateRepo(t, filepath.Join(root, "sub"), "--baseurl", tc.base, "--outputdir", root)
			store := cache.NewMemory()
			ctx := t.Context()
			// The first process fetches the generation and persists it.
			r1 := newTestRepo(t, ctx, store, up.URL+"/"+tc.name+"/")
			if _, _, err := r1.Current(ctx, ""); err != nil {
				t.Fatal(err)
			}
			// The second restores it, index unbuilt, and analyses first.
			r2 := newTestRepo(t, ctx, store, up.URL+"/"+tc.name+"/")
			rules, err := metadata.NewRuleSet()
			if err != nil {
				t.Fatal(err)
			}
			v, err := New(ctx, Options{
				Store: store, Log: slog.New(slog.DiscardHandler), StorageDir: t.TempDir(), Decompressed: 1 << 30,
				Repos: map[string]Entry{"r": {Repo: r2, Compat: config.Compat{Mode: config.ModeAnnotate}}},
			}, rules)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := v.Report(ctx, "r", "", true)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Repo != "r" {
				t.Fatalf("report %+v", rep)
			}
			if tc.rel != "" {
				if _, ok := r2.LookupPackage(ctx, tc.rel); !ok {
					t.Errorf("%s (xml:base %s) is not in the package index", tc.rel, tc.base)
				}
			}
			if ref, ok := r2.LookupPackage(ctx, tc.notRel); ok {
				t.Errorf("%s is in the package index (%v) although xml:base %s puts it elsewhere", tc.notRel, ref, tc.base)
			}
		})
	}
}

func newTestRepo(t *testing.T, ctx context.Context, store cache.Store, base string) *repo.Repo {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	spool := filepath.Join(t.TempDir(), "spool")
	if err := os.MkdirAll(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := fill.New(ctx, store, spool, log, fill.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	up, err := upstream.New(upstream.Options{Repo: "r", Bases: []string{base}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.New(ctx, repo.Options{
		Name: "r", TTL: time.Hour, Up: up, Filler: f, Store: store, Log: log,
		Limits: repo.Limits{Repomd: 1 << 20, Metadata: 1 << 30, Decompressed: 1 << 30},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Wait(); f.Wait() })
	return r
}
