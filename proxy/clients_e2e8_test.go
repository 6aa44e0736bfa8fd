package proxy_test

// End-to-end tests of upstreams and clients the way EL machines have them:
// a metalink upstream (librepo's test metalinks, rewritten to loopback),
// zypper, dnf5's late filelists, and zchunk multi-range with zckdl.

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

var (
	e8HashRE      = regexp.MustCompile(`<hash type="(md5|sha1|sha256|sha512)">[0-9a-f]+</hash>`)
	e8SizeRE      = regexp.MustCompile(`<size>\d+</size>`)
	e8ResourcesRE = regexp.MustCompile(`(?s)<resources[^>]*>.*</resources>`)
)

// e8Sum is the hex digest of data by a checksum type of rpm-md.
func e8Sum(typ string, data []byte) string {
	sums := map[string]func() hash.Hash{"md5": md5.New, "sha": sha1.New, "sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New}
	h := sums[typ]()
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// e8Metalink rewrites one of librepo's test metalinks for repomd: its
// mirrors become urls (each a repomd.xml URL); with where "main" the
// file's own hashes become repomd's, with "alternate" those of its first
// alternate (the main ones stay librepo's), with "none" nothing matches.
func e8Metalink(t *testing.T, name string, repomd []byte, where string, urls []string) []byte {
	t.Helper()
	doc, err := os.ReadFile(testenv.CorpusPath(t, "librepo/tests/test_data/metalinks/"+name))
	if err != nil {
		t.Fatal(err)
	}
	fix := func(part []byte) []byte {
		part = e8HashRE.ReplaceAllFunc(part, func(m []byte) []byte {
			typ := string(e8HashRE.FindSubmatch(m)[1])
			return fmt.Appendf(nil, `<hash type="%s">%s</hash>`, typ, e8Sum(typ, repomd))
		})
		return e8SizeRE.ReplaceAll(part, fmt.Appendf(nil, "<size>%d</size>", len(repomd)))
	}
	head, alt, hasAlt := bytes.Cut(doc, []byte("<mm0:alternates>"))
	switch where {
	case "main":
		head = fix(head)
	case "alternate":
		if !hasAlt {
			t.Fatalf("%s has no alternates", name)
		}
		alt = fix(alt)
	}
	if hasAlt {
		doc = slices.Concat(head, []byte("<mm0:alternates>"), alt)
	} else {
		doc = head
	}
	var res strings.Builder
	res.WriteString(`<resources maxconnections="1">`)
	for i, u := range urls {
		fmt.Fprintf(&res, "\n        <url protocol=\"http\" type=\"http\" location=\"US\" preference=\"%d\">%s</url>", 100-i, u)
	}
	res.WriteString("\n      </resources>")
	out := e8ResourcesRE.ReplaceAllLiteral(doc, []byte(res.String()))
	if bytes.Equal(out, doc) {
		t.Fatalf("%s: no <resources> replaced", name)
	}
	return out
}

// TestE2E8_Metalink: a repo configured with only a metalink, served on
// loopback from librepo's test metalinks. The proxy verifies repomd.xml
// against the metalink's hashes (alternates too), skips a dead first
// mirror, and dnf through it installs; a metalink whose hashes match no
// mirror makes the proxy refuse the root, as dnf directly would.
func TestE2E8_Metalink(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	testenv.RequireRoot(t)
	dir := t.TempDir()
	up := e8Serve(t, dir)
	testenv.MakeRepo(t, dir, testenv.InitialRPMs())
	repomd, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://127.0.0.1:1/r/repodata/repomd.xml"
	live := up.URL() + "r/repodata/repomd.xml"
	var doc atomic.Value
	var asked atomic.Int64
	ml := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// $root is the root's sub-path without slashes, as the
		// configuration documents it.
		if r.URL.Query().Get("repo") != "r" {
			http.NotFound(w, r)
			return
		}
		asked.Add(1)
		w.Header().Set("Content-Type", "application/metalink+xml")
		w.Write(doc.Load().([]byte))
	}))
	t.Cleanup(ml.Close)

	for _, tc := range []struct {
		file, where string
		ok          bool
	}{
		{"metalink_good_01", "main", true},
		{"metalink_with_alternates", "alternate", true},
		{"metalink_good_02", "none", false},
	} {
		t.Run(tc.file+"/"+tc.where, func(t *testing.T) {
			doc.Store(e8Metalink(t, tc.file, repomd, tc.where, []string{dead, live}))
			asked.Store(0)
			r := bbRepo("ml", "", config.ModeAnnotate)
			r.Metalink = ml.URL + "/metalink?repo=$root"
			p := startBB(t, []config.Repo{r}, nil)
			for _, view := range []string{"raw", "annotate"} {
				prefix := "/ml@" + view + "/r/"
				dnf := testenv.NewDNF(t, map[string]string{"r": p.URL(prefix)})
				_, stderr, err := dnf.Run("install", "dnfpt-app")
				if tc.ok {
					if err != nil || !dnf.Installed("dnfpt-app") {
						t.Errorf("%s: dnf install through a metalink upstream: %v\n%s", view, err, stderr)
					}
					continue
				}
				if err == nil {
					t.Errorf("%s: dnf installed from a mirror whose repomd.xml the metalink does not vouch for", view)
				}
				if st, _, _, _ := p.get(t, prefix+"repodata/repomd.xml"); st != http.StatusBadGateway {
					t.Errorf("%s: repomd.xml answered %d, want 502", view, st)
				}
			}
			if asked.Load() == 0 {
				t.Error("the proxy never fetched the metalink")
			}
			if tc.ok {
				if st, _, body, _ := p.get(t, "/ml@raw/r/repodata/repomd.xml"); st != http.StatusOK || !bytes.Equal(body, repomd) {
					t.Errorf("raw repomd.xml: %d, upstream's: %v", st, bytes.Equal(body, repomd))
				}
			}
		})
	}
}

// TestE2E8_Zypper: zypper, with its own root, adds the repo through the
// raw and annotate views, refreshes, searches and downloads a package with
// its dependency, as it does directly.
func TestE2E8_Zypper(t *testing.T) {
	testenv.RequireTool(t, "zypper")
	dir := t.TempDir()
	up := e8Serve(t, dir)
	testenv.MakeRepo(t, dir, testenv.InitialRPMs())
	p := e8Proxy(t, up.URL(), almaRuleYAML)
	var direct []testenv.ZypperPackage
	for _, view := range []string{"direct", "raw", "annotate"} {
		t.Run(view, func(t *testing.T) {
			z := testenv.NewZypper(t, map[string]string{"r": e8Base(p, up, view)})
			if err := z.Refresh(); err != nil {
				t.Fatal(err)
			}
			found, err := z.Search("dnfpt-*")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range found {
				names = append(names, f.Name+"-"+f.Edition+"."+f.Arch)
				f.Repo = ""
			}
			if !slices.Equal(names, testenv.InitialNEVRAs()) {
				t.Errorf("zypper search: %v, want %v", names, testenv.InitialNEVRAs())
			}
			if view == "direct" {
				direct = found
			} else if len(found) != len(direct) {
				t.Errorf("zypper search: %d packages, directly %d", len(found), len(direct))
			}
			files, err := z.DownloadOnly("dnfpt-app")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				got = append(got, filepath.Base(f))
			}
			if want := []string{testenv.RPMApp, testenv.RPMLib}; !slices.Equal(got, want) {
				t.Errorf("zypper install --download-only dnfpt-app fetched %v, want %v", got, want)
			}
			for _, f := range files {
				a, _ := os.ReadFile(f)
				b, _ := os.ReadFile(filepath.Join(dir, "Packages", filepath.Base(f)))
				if len(a) == 0 || !bytes.Equal(a, b) {
					t.Errorf("%s differs from upstream's", filepath.Base(f))
				}
			}
		})
	}
}

// TestE2E8_FilelistsHoursLater is dnf5's request pattern: repomd.xml and
// primary at makecache, filelists only when a file query needs it. Upstream
// regenerates twice in between (removing the old files); the filelists of
// the repomd.xml the client holds is still served, and is what that
// repomd.xml lists.
func TestE2E8_FilelistsHoursLater(t *testing.T) {
	dir := t.TempDir()
	up := e8Serve(t, dir)
	testenv.MakeRepo(t, dir, testenv.InitialRPMs())
	p := e8Proxy(t, up.URL(), almaRuleYAML)
	type held struct {
		prefix string
		rec    metadata.Record
		gone   string // upstream's file of the old generation
	}
	var clients []held
	for _, view := range []string{"raw", "annotate", "filter"} {
		prefix := "/up@" + view + "/r/"
		st, _, body, err := p.get(t, prefix+"repodata/repomd.xml")
		if err != nil || st != http.StatusOK {
			t.Fatalf("%s repomd.xml: %d %v", view, st, err)
		}
		md, err := metadata.ParseRepomd(body)
		if err != nil {
			t.Fatal(err)
		}
		prim, _ := md.Record("primary")
		if st, _, _, _ := p.get(t, prefix+prim.Href); st != http.StatusOK {
			t.Fatalf("%s primary: %d", view, st)
		}
		fl, ok := md.Record("filelists")
		if !ok {
			t.Fatal("no filelists record")
		}
		clients = append(clients, held{prefix: prefix, rec: fl})
	}
	upMD, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	oldMD, _ := metadata.ParseRepomd(upMD)
	oldFL, _ := oldMD.Record("filelists")
	for _, rpm := range []string{testenv.RPMExtra, testenv.RPMBig} {
		testenv.UpdateRepo(t, dir, rpm)
		bumpRepomd(t, dir)
		if st := p.refresh(t, "up", "r/"); st != http.StatusOK {
			t.Fatalf("refresh: %d", st)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, oldFL.Href)); err == nil {
		t.Fatal("createrepo_c --update kept the old filelists: the test would not show anything")
	}
	for _, c := range clients {
		st, _, body, err := p.get(t, c.prefix+c.rec.Href)
		if err != nil || st != http.StatusOK {
			t.Errorf("%s%s two generations later: %d %v", c.prefix, c.rec.Href, st, err)
			continue
		}
		if got := e8Sum(c.rec.Checksum.Type, body); got != c.rec.Checksum.Value {
			t.Errorf("%s%s: %s %s, the client's repomd.xml says %s", c.prefix, c.rec.Href, c.rec.Checksum.Type, got, c.rec.Checksum.Value)
		}
	}
}

// TestE2E8_ZckdlRanges: the Debian dnf has no zchunk, so zckdl stands in
// for librepo's zchunk download: with the previous primary.xml.zck as
// source it asks the proxy's raw view for the missing chunks in multi-range
// requests, cold (the proxy fetches the file) and warm, and ends with
// upstream's file.
func TestE2E8_ZckdlRanges(t *testing.T) {
	zckdl := testenv.RequireTool(t, "zckdl")
	dir := t.TempDir()
	up := e8Serve(t, dir)
	testenv.MakeRepo(t, dir, testenv.InitialRPMs(), "--zck")
	zckOf := func() (string, metadata.Record) {
		data, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
		if err != nil {
			t.Fatal(err)
		}
		md, err := metadata.ParseRepomd(data)
		if err != nil {
			t.Fatal(err)
		}
		rec, ok := md.Record("primary_zck")
		if !ok {
			t.Fatal("no primary_zck record")
		}
		return filepath.Join(dir, rec.Href), rec
	}
	oldPath, _ := zckOf()
	source := filepath.Join(t.TempDir(), "source.xml.zck")
	if data, err := os.ReadFile(oldPath); err != nil || os.WriteFile(source, data, 0o644) != nil {
		t.Fatal(err)
	}
	testenv.AddRPMs(t, dir, testenv.RPMExtra, testenv.RPMBig)
	testenv.CreateRepo(t, dir, "--update", "--zck")
	newPath, rec := zckOf()
	want, err := os.ReadFile(newPath)
	if err != nil {
		t.Fatal(err)
	}
	p := e8Proxy(t, up.URL(), "")
	if st, _, _, _ := p.get(t, "/up@raw/r/repodata/repomd.xml"); st != http.StatusOK {
		t.Fatalf("repomd.xml: %d", st)
	}
	for _, pass := range []string{"cold", "warm"} {
		out := t.TempDir()
		cmd := exec.CommandContext(t.Context(), zckdl, "--fail-no-ranges", "-s", source, p.URL("/up@raw/r/"+rec.Href))
		cmd.Dir = out
		logs, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: zckdl: %v\n%s", pass, err, logs)
		}
		got, err := os.ReadFile(filepath.Join(out, path.Base(rec.Href)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: zckdl's file is not upstream's (%d bytes, want %d): %v\n%s", pass, len(got), len(want), err, logs)
		}
	}
}
