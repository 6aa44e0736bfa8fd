package testenv

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

func TestReadyCorpusRepos(t *testing.T) {
	repos := ReadyCorpusRepos(t)
	byName := map[string]CorpusRepo{}
	for _, r := range repos {
		if _, dup := byName[r.Name]; dup {
			t.Errorf("two repos named %s", r.Name)
		}
		byName[r.Name] = r
		if _, err := os.Stat(filepath.Join(r.Dir, "repodata", "repomd.xml")); err != nil {
			t.Errorf("%s: %v", r.Name, err)
		}
	}
	for _, want := range []string{
		"createrepo_c/repo_00", "createrepo_c/repo_04", "createrepo_c/repo_with_duplicate_packages",
		"createrepo_c/repo_with_additional_metadata", "librepo/repo_yum_02", "librepo/yum_mock-03", "osbuild/custom",
	} {
		if _, ok := byName[want]; !ok {
			t.Errorf("%s missing from %d repos", want, len(repos))
		}
	}
	if _, ok := byName["osbuild/appstream"]; ok {
		t.Error("osbuild/appstream lists files the snapshot lacks but was returned as ready")
	}
	if b := byName["createrepo_c/repo_01"].Broken; !strings.Contains(b, "primary") {
		t.Errorf("repo_01 (primary size off by one upstream) Broken = %q", b)
	}
	if b := byName["createrepo_c/repo_00"].Broken; b != "" {
		t.Errorf("repo_00 Broken = %q", b)
	}
	if !byName["librepo/yum_mock-01"].RPMs || byName["createrepo_c/repo_00"].RPMs {
		t.Error("RPMs: yum_mock-01 has one, repo_00 none")
	}
}

// TestCorpusReposLibrepo is the librepo × direct column of the corpus
// matrix: librepo takes every repo but the ones broken on purpose, which
// it refuses with its own error.
func TestCorpusReposLibrepo(t *testing.T) {
	RequirePython(t, "librepo")
	repos := CorpusRepos(t)
	if len(repos) < 25 {
		t.Errorf("%d corpus repos, want the 25 or more the corpora make", len(repos))
	}
	for _, r := range repos {
		t.Run(r.Name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(r.Dir, "repodata", "repomd.xml")); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.FileServer(http.Dir(r.Dir)))
			defer srv.Close()
			res, err := Librepo(t, t.TempDir(), LibrepoOptions{URLs: []string{srv.URL + "/"}})
			if r.Broken != "" {
				var le *LibrepoError
				if !errors.As(err, &le) {
					t.Errorf("librepo took a repo broken upstream (%s): %+v, %v", r.Broken, res, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("librepo: %v", err)
			}
			if !slices.Contains(res.Records, "primary") || res.Paths["primary"] == "" || res.Paths["repomd"] == "" {
				t.Errorf("librepo result %+v", res)
			}
		})
	}
}

func TestLibrepoErrors(t *testing.T) {
	RequirePython(t, "librepo")
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := Librepo(t, t.TempDir(), LibrepoOptions{URLs: []string{srv.URL + "/"}})
	var le *LibrepoError
	if !errors.As(err, &le) || le.Code == 0 || le.Message == "" {
		t.Errorf("librepo over a 404 server = %v, want a LibrepoError", err)
	}
}

// TestZypper drives zypper over pulp's zoo: search, download with
// dependencies, and a refresh that fails.
func TestZypper(t *testing.T) {
	RequireTool(t, "zypper")
	var zoo CorpusRepo
	for _, r := range MakeCorpusRepos(t) {
		if r.Name == "pulp-fixtures/zoo" {
			zoo = r
		}
	}
	if zoo.Dir == "" {
		t.Fatal("no pulp-fixtures/zoo")
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(zoo.Dir)))
	defer srv.Close()
	z := NewZypper(t, map[string]string{"zoo": srv.URL})
	if err := z.Refresh(); err != nil {
		t.Fatal(err)
	}
	found, err := z.Search("penguin")
	if err != nil || len(found) != 1 || found[0].Name != "penguin" || found[0].Edition != "0.9.1-1" || found[0].Repo != "zoo" {
		t.Errorf("search penguin = %+v, %v", found, err)
	}
	if none, err := z.Search("no-such-animal"); err != nil || len(none) != 0 {
		t.Errorf("search no-such-animal = %+v, %v; want nothing, no error", none, err)
	}
	if info, err := z.Info("penguin"); err != nil || info["Version"] != "0.9.1-1" || info["Summary"] == "" || info["Repository"] != "zoo" {
		t.Errorf("info penguin = %q, %v", info, err)
	}
	files, err := z.DownloadOnly("penguin")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	// penguin needs dolphin, which needs bear, lion (which needs wolf) and tiger.
	want := []string{"bear-4.1-1.noarch.rpm", "dolphin-3.10.232-1.noarch.rpm", "lion-0.4-1.noarch.rpm", "penguin-0.9.1-1.noarch.rpm", "tiger-1.0-4.noarch.rpm", "wolf-9.4-2.noarch.rpm"}
	if !slices.Equal(names, want) {
		t.Errorf("downloaded %q, want %q", names, want)
	}
	if _, err := os.Stat(filepath.Join(z.MetadataDir("zoo"), "repodata", "repomd.xml")); err != nil {
		t.Errorf("metadata dir: %v", err)
	}

	gone := httptest.NewServer(http.NotFoundHandler())
	defer gone.Close()
	z2 := NewZypper(t, map[string]string{"gone": gone.URL})
	err = z2.Refresh()
	var ze *ZypperError
	if !errors.As(err, &ze) || ze.Code == 0 {
		t.Errorf("refresh of a 404 repo = %v, want a ZypperError", err)
	}
}

// TestZypperRepoGPG: with a key, zypper checks repomd.xml.asc: librepo's
// signed repo refreshes, the same repo with repomd.xml changed does not.
func TestZypperRepoGPG(t *testing.T) {
	RequireTool(t, "zypper")
	src := CorpusPath(t, "librepo/tests/test_data/repo_yum_01")
	changed := t.TempDir()
	if err := os.CopyFS(changed, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(changed, "repodata", "repomd.xml")
	os.Chmod(md, 0o644)
	data, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(md, append(data, "<!-- changed after signing -->\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dir  string
		good bool
	}{{src, true}, {changed, false}} {
		srv := httptest.NewServer(http.FileServer(http.Dir(tt.dir)))
		defer srv.Close()
		z := NewZypper(t, map[string]string{"signed": srv.URL}, WithZypperRepoGPG("signed", srv.URL+"/repodata/repomd.xml.key"))
		err := z.Refresh()
		var ze *ZypperError
		switch {
		case tt.good && err != nil:
			t.Errorf("refresh of the signed repo: %v", err)
		case !tt.good && (!errors.As(err, &ze) || !strings.Contains(ze.Stdout+ze.Stderr, "Signature verification failed")):
			t.Errorf("refresh of a repo whose repomd.xml changed after signing = %v, want a signature failure", err)
		}
	}
}

// TestLibrepoMetalink: librepo takes repomd.xml from the metalink's URLs
// and checks it against the metalink's hashes.
func TestLibrepoMetalink(t *testing.T) {
	RequirePython(t, "librepo")
	src := CorpusPath(t, "librepo/tests/test_data/repo_yum_01")
	metalink, err := os.ReadFile(filepath.Join(src, "metalink.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Pointer[[]byte]
	mux := http.NewServeMux()
	mux.Handle("/repo/", http.StripPrefix("/repo", http.FileServer(http.Dir(src))))
	mux.HandleFunc("/metalink", func(w http.ResponseWriter, r *http.Request) { w.Write(*served.Load()) })
	serve := func(s string) { b := []byte(s); served.Store(&b) }
	srv := httptest.NewServer(mux)
	defer srv.Close()
	good := strings.ReplaceAll(string(metalink), "http://127.0.0.1:5000/yum/static/01/", srv.URL+"/repo/")
	if good == string(metalink) {
		t.Fatal("the metalink names no URL to replace")
	}
	serve(good)
	res, err := Librepo(t, t.TempDir(), LibrepoOptions{Metalink: srv.URL + "/metalink"})
	if err != nil || res.Paths["primary"] == "" {
		t.Fatalf("librepo with a good metalink: %+v, %v", res, err)
	}
	// librepo checks the strongest hash the metalink gives: sha512 here.
	serve(strings.Replace(good, "e40060c747895562e945a68967a04d1279e4bd8507413681f83c322479aa564027fdf3962c2d875089bfcb9317d3a623465f390dc1f4acef294711168b807af0", strings.Repeat("0", 128), 1))
	var le *LibrepoError
	if _, err := Librepo(t, t.TempDir(), LibrepoOptions{Metalink: srv.URL + "/metalink"}); !errors.As(err, &le) {
		t.Errorf("librepo with a metalink hash that does not match = %v, want a LibrepoError", err)
	}
}
