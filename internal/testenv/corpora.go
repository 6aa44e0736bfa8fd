package testenv

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// CorporaDir returns the absolute path of the public test corpora, the
// directory ../shared/corpora next to the repository (its README says what
// each folder holds). The test is skipped when the directory is absent, or
// failed when InCI: CI always has it. Corpus files are inputs: read them in
// place or copy them into t.TempDir(), never write to them.
func CorporaDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(TestdataDir()), "..", "shared", "corpora")
	dir, err := filepath.Abs(dir)
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "README.md"))
	}
	if err != nil {
		if InCI() {
			t.Fatalf("testenv: the corpora are missing (%v); CI provides ../shared/corpora", err)
		}
		t.Skipf("testenv: no corpora at ../shared/corpora (%v); skipping", err)
	}
	return dir
}

// CorpusPath returns the absolute path of rel (slash-separated, below the
// corpora directory), skipping the test (failing it InCI) when it is absent.
func CorpusPath(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(CorporaDir(t), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		if InCI() {
			t.Fatalf("testenv: corpus file missing: %v", err)
		}
		t.Skipf("testenv: corpus file missing: %v; skipping", err)
	}
	return p
}

// RequirePython returns the path of a python3 interpreter that can import
// every module given (the Debian python3-* packages live in the system
// interpreter, /usr/bin/python3, not in a pyenv on PATH). The test is
// skipped, or failed when InCI, when there is none.
func RequirePython(t testing.TB, modules ...string) string {
	t.Helper()
	var tried []string
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		args := []string{"-c", "import " + strings.Join(append([]string{"sys"}, modules...), ", ")}
		if out, err := exec.CommandContext(t.Context(), path, args...).CombinedOutput(); err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v: %s", path, err, bytes.TrimSpace(out)))
			continue
		}
		return path
	}
	msg := fmt.Sprintf("no python3 imports %s (Debian packages %s)", strings.Join(modules, ", "), pythonPackages(modules))
	if len(tried) > 0 {
		msg += "; tried " + strings.Join(tried, "; ")
	}
	if InCI() {
		t.Fatalf("%s; `make deps` installs them", msg)
	}
	t.Skipf("%s; skipping", msg)
	return ""
}

func pythonPackages(modules []string) string {
	var out []string
	for _, m := range modules {
		out = append(out, "python3-"+m)
	}
	return strings.Join(out, ", ")
}

// CorpusRepo is a repository from the corpora that can stand as an
// upstream for a proxy test: a directory to serve over HTTP.
type CorpusRepo struct {
	Name   string // stable: "<corpus folder>/<repo>", e.g. "createrepo_c/repo_00", "pulp-fixtures/zoo-zck"
	Dir    string // the repo root, holding repodata/repomd.xml: serve it read-only
	Recipe string // how it was made from corpus files; "" for a repo read in place
	// Broken says why direct clients refuse the repo (upstream made it so
	// on purpose: createrepo_c's repo_01 lists a wrong size); a proxy must
	// not serve it any better, nor worse. "" when clients accept it.
	Broken string
	RPMs   bool // the repo holds RPM files (installs and downloads can be tried)
}

// ReadyCorpusRepos returns the repos of the corpora that can be served as
// they are, in a fixed order: every directory holding repodata/repomd.xml
// whose listed files are all there. Broken is set from the repo itself:
// a listed file whose size or checksum is not what repomd.xml says. Repos
// that list files the snapshot lacks are left out (MakeCorpusRepos makes
// a usable copy of osbuild's AppStream).
func ReadyCorpusRepos(t testing.TB) []CorpusRepo {
	t.Helper()
	dir := CorporaDir(t)
	var out []CorpusRepo
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "repomd.xml" || filepath.Base(filepath.Dir(p)) != "repodata" {
			return nil
		}
		root := filepath.Dir(filepath.Dir(p))
		records, err := repomdRecords(p)
		if err != nil {
			t.Logf("testenv: corpus repo %s: %v; left out", root, err)
			return nil
		}
		r := CorpusRepo{Name: corpusName(dir, root), Dir: root, RPMs: hasRPMs(root)}
		for _, rec := range records {
			problem, missing := rec.check(root)
			if missing {
				t.Logf("testenv: corpus repo %s lacks %s; left out", r.Name, rec.href)
				return nil
			}
			if problem != "" && r.Broken == "" {
				r.Broken = problem
			}
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: walking the corpora: %v", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// corpusName names a repo root by its corpus folder and its last path
// element(s): "createrepo_c/repo_00", "librepo/repo_yum_02",
// "librepo/yum_mock-02", "osbuild/custom".
func corpusName(corpora, root string) string {
	rel, _ := filepath.Rel(corpora, root)
	parts := strings.Split(filepath.ToSlash(rel), "/")
	name := parts[len(parts)-1]
	if len(parts) >= 3 && parts[len(parts)-2] == "static" {
		name = parts[len(parts)-3] + "-" + name
	}
	return parts[0] + "/" + name
}

func hasRPMs(root string) bool {
	found := false
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".rpm") {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// repomdRecord is what ReadyCorpusRepos checks of a repomd.xml record.
type repomdRecord struct {
	typ, href, sumType, sum string
	size                    int64 // -1: not given
}

// repomdRecords reads the records of a repomd.xml with encoding/xml
// (testenv does not depend on the code under test).
func repomdRecords(path string) ([]repomdRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var x struct {
		Data []struct {
			Type     string `xml:"type,attr"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
			Checksum struct {
				Type  string `xml:"type,attr"`
				Value string `xml:",chardata"`
			} `xml:"checksum"`
			Size string `xml:"size"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal(data, &x); err != nil {
		return nil, err
	}
	var out []repomdRecord
	for _, d := range x.Data {
		r := repomdRecord{typ: d.Type, href: d.Location.Href, sumType: strings.TrimSpace(d.Checksum.Type), sum: strings.TrimSpace(d.Checksum.Value), size: -1}
		if n, err := strconv.ParseInt(strings.TrimSpace(d.Size), 10, 64); err == nil {
			r.size = n
		}
		out = append(out, r)
	}
	return out, nil
}

// check compares the record's file with what repomd.xml says of it.
func (r repomdRecord) check(root string) (problem string, missing bool) {
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(r.href)))
	if err != nil {
		return "", true
	}
	if r.size >= 0 && int64(len(data)) != r.size {
		return fmt.Sprintf("%s: %d bytes, repomd.xml says %d", r.href, len(data), r.size), false
	}
	var h hash.Hash
	switch r.sumType {
	case "sha", "sha1":
		h = sha1.New()
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	case "md5":
		h = md5.New()
	default:
		return "", false
	}
	h.Write(data)
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, r.sum) {
		return fmt.Sprintf("%s: %s %s, repomd.xml says %s", r.href, r.sumType, got, r.sum), false
	}
	return "", false
}

// corpusRecipe makes one repo from corpus files into dir.
type corpusRecipe struct {
	name   string
	recipe string
	make   func(t testing.TB, corpora, dir string)
}

// zooRepo returns a recipe that copies pulp-fixtures' zoo RPMs (the RPMs
// of folder) and runs createrepo_c with args, then modifyrepo_c for each
// extra file (a corpus path below folder).
func zooRepo(name, folder string, args []string, extra ...string) corpusRecipe {
	recipe := "createrepo_c " + strings.Join(append(args, "<"+folder+" RPMs>"), " ")
	for _, e := range extra {
		recipe += "; modifyrepo_c " + e
	}
	return corpusRecipe{name: "pulp-fixtures/" + name, recipe: recipe, make: func(t testing.TB, corpora, dir string) {
		src := filepath.Join(corpora, "pulp-fixtures", "rpm", folder)
		rpms, err := filepath.Glob(filepath.Join(src, "*.rpm"))
		if err != nil || len(rpms) == 0 {
			t.Fatalf("testenv: no RPMs in %s: %v", src, err)
		}
		var a []string
		for _, arg := range args {
			a = append(a, strings.ReplaceAll(arg, "$SRC", src))
		}
		MakeRepo(t, dir, rpms, a...)
		for _, e := range extra {
			ModifyRepo(t, dir, filepath.Join(src, e))
		}
	}}
}

// corpusRecipes are the repos MakeCorpusRepos makes, each a shape that
// real upstreams have.
func corpusRecipes() []corpusRecipe {
	return []corpusRecipe{
		zooRepo("zoo", "assets", nil),
		zooRepo("zoo-comps", "assets", []string{"--groupfile", "$SRC/comps.xml"}),
		zooRepo("zoo-zck", "assets", []string{"--zck", "--groupfile", "$SRC/comps.xml"}),
		zooRepo("zoo-sha1", "assets", []string{"--checksum", "sha1"}),
		zooRepo("zoo-sha512-xz", "assets", []string{"--checksum", "sha512", "--general-compress-type", "xz"}),
		zooRepo("zoo-no-database", "assets", []string{"--no-database"}),
		// Clients fetch the RPMs from the xml:base, which does not
		// resolve: metadata works, downloads fail, directly or not.
		zooRepo("zoo-baseurl", "assets", []string{"--baseurl", "http://baseurl.invalid/zoo/"}),
		zooRepo("zoo-updateinfo", "assets", []string{"--groupfile", "$SRC/comps.xml"}, "updateinfo.xml"),
		zooRepo("zoo-modules", "assets", nil, "modules.yaml", "updateinfo.xml"),
		zooRepo("modularity", "assets-modularity", nil, "modules.yaml", "updateinfo.xml"),
		zooRepo("non-utf-8", "assets-non-utf-8", nil),
		{name: "osbuild/appstream", recipe: "copy of osbuild's AppStream; modifyrepo_c --remove for each record whose file the snapshot lacks",
			make: func(t testing.TB, corpora, dir string) {
				src := filepath.Join(corpora, "osbuild", "test", "data", "testrepos", "appstream")
				if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
					t.Fatalf("testenv: copy AppStream: %v", err)
				}
				filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
					if err == nil {
						os.Chmod(p, 0o755)
					}
					return nil
				})
				records, err := repomdRecords(filepath.Join(dir, "repodata", "repomd.xml"))
				if err != nil {
					t.Fatalf("testenv: AppStream repomd.xml: %v", err)
				}
				for _, r := range records {
					if _, missing := r.check(dir); missing {
						ModifyRepo(t, dir, "--remove", r.typ)
					}
				}
			}},
	}
}

// MakeCorpusRepos makes, below t.TempDir(), the repos that the corpora
// hold as parts: pulp-fixtures' RPMs with createrepo_c and modifyrepo_c in
// the flavours real repos come in (comps, zchunk, sha1, sha512 with xz, no
// sqlite, xml:base, updateinfo, modules, non-UTF-8 headers), and a copy of
// osbuild's real AppStream without the records the snapshot lacks. It
// needs createrepo_c and modifyrepo_c, and takes a few seconds.
func MakeCorpusRepos(t testing.TB) []CorpusRepo {
	t.Helper()
	corpora := CorporaDir(t)
	base := t.TempDir()
	var out []CorpusRepo
	for i, r := range corpusRecipes() {
		dir := filepath.Join(base, strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		r.make(t, corpora, dir)
		out = append(out, CorpusRepo{Name: r.name, Dir: dir, Recipe: r.recipe, RPMs: hasRPMs(dir)})
	}
	return out
}

// CorpusRepos returns every repo of the corpora usable as an upstream:
// ReadyCorpusRepos followed by MakeCorpusRepos.
func CorpusRepos(t testing.TB) []CorpusRepo {
	t.Helper()
	return append(ReadyCorpusRepos(t), MakeCorpusRepos(t)...)
}

// ModifyRepo runs `modifyrepo_c [args] dir/repodata`: with a file, it adds
// that file as a record (its type derived from the name: updateinfo,
// modules, ...); with "--remove TYPE", it removes a record.
func ModifyRepo(t testing.TB, dir string, args ...string) {
	t.Helper()
	bin := RequireTool(t, "modifyrepo_c")
	ctx, cancel := context.WithTimeout(t.Context(), createrepoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, filepath.Join(dir, "repodata"))...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: %s: %v\n%s", cmd, err, out)
	}
}
