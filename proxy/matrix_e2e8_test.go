package proxy_test

// The corpus matrix: every repo of ../shared/corpora (testenv.CorpusRepos)
// through every client (dnf, librepo, zypper when installed, zckdl for
// zchunk repos) and every access (direct, raw, annotate, filter). What a
// client sees through the proxy must be what it sees directly, but for the
// differences the README explains (the rewriting views drop the *_db and
// *_zck records and add abi-divergence). `make test` runs a handful of
// repos; DNFPROXY_MATRIX=full (`make matrix`) runs them all.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// e8ShortMatrix are the repos of the short matrix: one of each shape that
// once broke a view.
var e8ShortMatrix = []string{
	"librepo/repo_yum_02",                       // fractional timestamps
	"createrepo_c/repo_with_duplicate_packages", // duplicate pkgids
	"createrepo_c/repo_04",                      // filelists-ext
	"pulp-fixtures/zoo-zck",                     // comps, zchunk
	"pulp-fixtures/zoo-baseurl",                 // xml:base outside the repo
}

var e8Accesses = []string{"direct", "raw", "annotate", "filter"}

func TestE2E8_Matrix(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	full := os.Getenv("DNFPROXY_MATRIX") == "full"
	repos := testenv.CorpusRepos(t)
	if !full {
		repos = slices.DeleteFunc(repos, func(r testenv.CorpusRepo) bool { return !slices.Contains(e8ShortMatrix, r.Name) })
		if len(repos) != len(e8ShortMatrix) {
			t.Fatalf("%d of the %d short-matrix repos in the corpora", len(repos), len(e8ShortMatrix))
		}
	}
	parent := t.TempDir()
	for i, r := range repos {
		if err := os.Symlink(r.Dir, filepath.Join(parent, fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	up := testenv.NewSickUpstream(t, parent)
	p := startBB(t, []config.Repo{bbRepo("up", up.URL(), config.ModeAnnotate)}, nil)
	base := func(i int, access string) string {
		root := fmt.Sprint("m", i, "/")
		switch access {
		case "direct":
			return up.URL() + root
		}
		return p.URL("/up@" + access + "/" + root)
	}
	clients := []string{"dnf", "librepo"}
	if _, err := exec.LookPath("zypper"); err == nil {
		clients = append(clients, "zypper")
	}
	if _, err := exec.LookPath("zckdl"); err == nil {
		clients = append(clients, "zckdl")
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%-44s %-8s", "repo", "client")
	for _, a := range e8Accesses {
		fmt.Fprintf(&table, " %-12s", a)
	}
	table.WriteString("\n")
	diffs := 0
	for i, r := range repos {
		for _, client := range clients {
			var cells []string
			var direct string
			for _, access := range e8Accesses {
				got := e8Outcome(t, client, base(i, access), access, direct)
				if access == "direct" {
					direct = got
					cells = append(cells, e8Short(got))
					continue
				}
				if got == direct {
					cells = append(cells, "=")
					continue
				}
				// A root whose repomd.xml lists a file that is not what
				// it says (repo_01's wrong size) is refused whole by the
				// proxy (README); every client fails on it directly too.
				if r.Broken != "" && got == "fail" {
					cells = append(cells, "fail*")
					continue
				}
				diffs++
				cells = append(cells, "DIFF")
				t.Errorf("%s, %s, %s: %s; directly %s", r.Name, client, access, got, direct)
			}
			fmt.Fprintf(&table, "%-44s %-8s", r.Name, client)
			for _, c := range cells {
				fmt.Fprintf(&table, " %-12s", c)
			}
			table.WriteString("\n")
		}
	}
	t.Logf("corpus matrix, %d repos, %d differences from direct access (fail*: a broken repo, refused whole):\n%s", len(repos), diffs, table.String())
}

// e8Short is a table cell for an outcome.
func e8Short(o string) string {
	if strings.HasPrefix(o, "fail") {
		return "fail"
	}
	if len(o) > 12 {
		return o[:12]
	}
	return o
}

// e8Outcome is what one client makes of a repo at base, in a form equal
// between accesses when the client sees the same repo: "ok <digest>" or
// "fail" (the client refused it; its message varies with the URL).
func e8Outcome(t *testing.T, client, base, access, direct string) string {
	t.Helper()
	digest := func(lines []string) string {
		slices.Sort(lines)
		h := sha256.Sum256([]byte(strings.Join(lines, "\n")))
		return fmt.Sprintf("ok %d:%s", len(lines), hex.EncodeToString(h[:4]))
	}
	switch client {
	case "dnf":
		dnf := testenv.NewDNF(t, map[string]string{"m": base})
		out, _, err := dnf.Run("repoquery", "-q", "--qf", testenv.NEVRAFormat)
		if err != nil {
			return "fail"
		}
		return digest(strings.Fields(out))
	case "librepo":
		res, err := testenv.Librepo(t, t.TempDir(), testenv.LibrepoOptions{URLs: []string{base}})
		var le *testenv.LibrepoError
		if errors.As(err, &le) {
			return "fail"
		}
		if err != nil {
			t.Fatal(err)
		}
		// The rewriting views drop *_db and *_zck and add abi-divergence
		// (README: what the views change).
		recs := slices.DeleteFunc(slices.Clone(res.Records), func(typ string) bool {
			return typ == "abi-divergence" || metadata.DropDerived(typ)
		})
		return digest(append(recs, "revision="+res.Revision))
	case "zypper":
		z := testenv.NewZypper(t, map[string]string{"m": base})
		if err := z.Refresh(); err != nil {
			return "fail"
		}
		found, err := z.Search()
		if err != nil {
			return "fail"
		}
		var names []string
		for _, f := range found {
			names = append(names, f.Name+"-"+f.Edition+"."+f.Arch)
		}
		return digest(names)
	case "zckdl":
		// The rewriting views drop the zchunk records (README): there,
		// the cell checks they are gone and counts as the direct one.
		if access != "direct" && access != "raw" {
			if o := e8ZckOutcome(t, base, true); o != "gone" {
				return o
			}
			return direct
		}
		return e8ZckOutcome(t, base, false)
	}
	t.Fatalf("no client %s", client)
	return ""
}

// e8ZckOutcome downloads primary_zck with zckdl: "none" without the
// record, else the digest of the file. With rewriting, it only checks
// that the record is gone ("gone").
func e8ZckOutcome(t *testing.T, base string, rewriting bool) string {
	t.Helper()
	st, _, body, err := httpGet(t.Context(), base+"repodata/repomd.xml", nil)
	if err != nil || st != 200 {
		return "fail"
	}
	md, err := metadata.ParseRepomd(body)
	if err != nil {
		return "fail"
	}
	if rewriting {
		if _, ok := md.Record("primary_zck"); ok {
			return "a rewriting view kept primary_zck"
		}
		return "gone"
	}
	rec, ok := md.Record("primary_zck")
	if !ok {
		return "none"
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), testenv.RequireTool(t, "zckdl"), base+rec.Href)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("zckdl %s: %v\n%s", base+rec.Href, err, out)
		return "fail"
	}
	data, err := os.ReadFile(filepath.Join(dir, path.Base(rec.Href)))
	if err != nil || !bytes.HasPrefix(data, []byte("\x00ZCK1")) {
		return "fail"
	}
	h := sha256.Sum256(data)
	return "ok " + hex.EncodeToString(h[:4])
}
