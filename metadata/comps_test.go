package metadata_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

func dropNames(names ...string) func(string) bool {
	return func(n string) bool { return slices.Contains(names, n) }
}

func filterComps(t *testing.T, in []byte, inCodec, outCodec metadata.Codec, drop func(string) bool) ([]byte, metadata.CompsResult) {
	t.Helper()
	var out bytes.Buffer
	res, err := metadata.FilterComps(bytes.NewReader(in), inCodec, &out, outCodec, rwLimit, drop)
	if err != nil {
		t.Fatalf("FilterComps: %v", err)
	}
	if got := sumOf(t, "sha256", out.Bytes()); got != res.Checksum || res.Size != int64(out.Len()) {
		t.Errorf("result says %v, %d bytes; output is %v, %d bytes", res.Checksum, res.Size, got, out.Len())
	}
	return out.Bytes(), res
}

func TestFilterComps(t *testing.T) {
	in := readFile(t, filepath.Join("testdata", "comps", "shapes.xml"))
	out, res := filterComps(t, in, metadata.None, metadata.None, dropNames("duck", "penguin", "fish-food-not-there"))
	checkGolden(t, "comps-shapes-filtered.xml", out)
	want := []metadata.CompsGroup{
		{ID: "zoo", Removed: []string{"penguin", "duck"}},
		{ID: "birds", Removed: []string{"duck", "duck"}},
		{ID: "late-id", Removed: []string{"duck"}},
		{ID: "ducks", Removed: []string{"duck"}, Empty: true},
	}
	if !reflect.DeepEqual(res.Groups, want) || res.Removed != 6 {
		t.Errorf("groups %+v (%d removed), want %+v", res.Groups, res.Removed, want)
	}
	if res.OpenSize != int64(len(out)) || res.Codec != metadata.None {
		t.Errorf("result %+v for %d bytes", res.FileInfo, len(out))
	}
	// The output is upstream's bytes minus the dropped elements.
	if n := len(in) - len(out); n <= 0 || bytes.Count(out, []byte("<packagereq")) != bytes.Count(in, []byte("<packagereq"))-6 {
		t.Errorf("output is %d bytes shorter, %d packagereqs left", n, bytes.Count(out, []byte("<packagereq")))
	}
	for _, keep := range []string{`<!DOCTYPE comps PUBLIC "-//Red Hat, Inc.//DTD Comps info//EN" "comps.dtd">`, "<packagereq type=\"mandatory\"> penguin </packagereq>",
		`requires="penguin">fish-food</packagereq>`, "<!-- a comment in the list -->", `<match install="duck-%s" name="duck"/>`} {
		if !bytes.Contains(out, []byte(keep)) {
			t.Errorf("output lost %s", keep)
		}
	}
	// Filtering the output again changes nothing.
	again, res2 := filterComps(t, out, metadata.None, metadata.None, dropNames("duck", "penguin"))
	if !bytes.Equal(again, out) || len(res2.Groups) != 0 {
		t.Errorf("second filter changed the output or reports %+v", res2.Groups)
	}
	checkLibcomps(t, in, out, dropNames("duck", "penguin"))
}

// compsFiles are the comps of the repo and of the corpora, with their
// codec and the number of groups each has.
func compsFiles(t *testing.T) map[string]metadata.Codec {
	files := map[string]metadata.Codec{
		filepath.Join("testdata", "comps", "shapes.xml"):      metadata.None,
		filepath.Join("..", "proxy", "testdata", "comps.xml"): metadata.None,
	}
	dir := testenv.CorporaDir(t)
	for _, rel := range []string{
		"pulp-fixtures/rpm/assets/comps.xml",
		"createrepo_c/tests/testdata/repo_with_additional_metadata/repodata/f9d860ddcb64fbdc88a9b71a14ddb9f5670968d5dd3430412565c13d42b6804d-comps.f20.xml.gz",
		"librepo/tests/test_data/repo_yum_02/repodata/c395ae7d8a9117f4e81aa23e37fb9da9865b50917f5f701b50d422875bb0cb14-comps.xml.gz",
		"osbuild/test/data/testrepos/appstream/repodata/db284c8c2444a36ecf2240107e338f559e4262792492818e4ebf8ccb7a424e8a-comps-AppStream.x86_64.xml",
	} {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if _, err := os.Stat(p); err != nil {
			t.Errorf("corpus comps missing: %v", err)
			continue
		}
		files[p] = metadata.CodecOf(p)
	}
	return files
}

// xmlComps is an encoding/xml view of the groups, independent of the
// filter's lexer.
type xmlComps struct {
	Groups []struct {
		ID       string   `xml:"id"`
		Packages []string `xml:"packagelist>packagereq"`
	} `xml:"group"`
}

func decodeComps(t *testing.T, data []byte) xmlComps {
	t.Helper()
	var c xmlComps
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = false // comps has a DOCTYPE naming an external DTD
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("comps does not parse: %v", err)
	}
	return c
}

// TestFilterCompsCorpus filters real comps files: dropping nothing gives
// the input back byte for byte, in every codec; dropping half the names
// removes exactly those from every group, as encoding/xml and libcomps
// read the result.
func TestFilterCompsCorpus(t *testing.T) {
	for path, codec := range compsFiles(t) {
		t.Run(compsLabel(path), func(t *testing.T) {
			raw := readFile(t, path)
			rc, err := metadata.Decompress(bytes.NewReader(raw), codec, rwLimit)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			for _, out := range []metadata.Codec{metadata.None, metadata.Gzip, metadata.Xz, metadata.Zstd} {
				got, res := filterComps(t, raw, codec, out, func(string) bool { return false })
				rc, err := metadata.Decompress(bytes.NewReader(got), out, rwLimit)
				if err != nil {
					t.Fatal(err)
				}
				open, _ := io.ReadAll(rc)
				if !bytes.Equal(open, plain) || len(res.Groups) != 0 {
					t.Errorf("%s: dropping nothing changed the file (%d groups reported)", out, len(res.Groups))
				}
			}
			before := decodeComps(t, plain)
			var names []string
			for _, g := range before.Groups {
				for _, p := range g.Packages {
					if !slices.Contains(names, p) {
						names = append(names, p)
					}
				}
			}
			if len(names) == 0 {
				t.Fatal("no packages in the groups")
			}
			var dropped []string
			for i, n := range names {
				if i%2 == 0 {
					dropped = append(dropped, n)
				}
			}
			drop := dropNames(dropped...)
			got, res := filterComps(t, raw, codec, metadata.None, drop)
			after := decodeComps(t, got)
			if len(after.Groups) != len(before.Groups) {
				t.Fatalf("%d groups after, %d before", len(after.Groups), len(before.Groups))
			}
			var affected []string
			for i, g := range before.Groups {
				want := slices.DeleteFunc(slices.Clone(g.Packages), drop)
				if !slices.Equal(after.Groups[i].Packages, want) {
					t.Errorf("group %s: %q, want %q", g.ID, after.Groups[i].Packages, want)
				}
				if len(want) != len(g.Packages) {
					affected = append(affected, g.ID)
				}
			}
			var reported []string
			for _, g := range res.Groups {
				reported = append(reported, g.ID)
			}
			if !slices.Equal(reported, affected) {
				t.Errorf("reported groups %q, want %q", reported, affected)
			}
			checkLibcomps(t, plain, got, drop)
		})
	}
}

// libcompsDump prints what libcomps, the parser dnf uses, reads from a
// comps file.
const libcompsDump = `
import json, sys, libcomps
c = libcomps.Comps()
c.fromxml_f(sys.argv[1])
print(json.dumps({
    "groups": [[g.id, g.name, g.desc, g.default, g.uservisible,
                [[p.name, p.type, p.requires or ""] for p in g.packages]] for g in c.groups],
    "categories": [[x.id, [i.name for i in x.group_ids]] for x in c.categories],
    "environments": [[x.id, [i.name for i in x.group_ids], [i.name for i in x.option_ids]] for x in c.environments],
    # StrDict's keys() and items() crash libcomps 0.1.19; its str() is fine.
    "langpacks": str(c.langpacks),
}))
`

type libcompsView struct {
	Groups       [][]any `json:"groups"`
	Categories   [][]any `json:"categories"`
	Environments [][]any `json:"environments"`
	Langpacks    string  `json:"langpacks"`
}

func readLibcomps(t *testing.T, py string, data []byte) libcompsView {
	t.Helper()
	f := filepath.Join(t.TempDir(), "comps.xml")
	writeFile(t, f, data)
	out, err := exec.CommandContext(t.Context(), py, "-c", libcompsDump, f).Output()
	if err != nil {
		t.Fatalf("libcomps: %v", err)
	}
	var v libcompsView
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("libcomps output: %v\n%s", err, out)
	}
	return v
}

// checkLibcomps asserts that libcomps reads out as in with the dropped
// package names gone from the groups and everything else equal.
func checkLibcomps(t *testing.T, in, out []byte, drop func(string) bool) {
	t.Helper()
	py := testenv.RequirePython(t, "libcomps")
	want, got := readLibcomps(t, py, in), readLibcomps(t, py, out)
	for _, g := range want.Groups {
		pkgs := g[len(g)-1].([]any)
		g[len(g)-1] = slices.DeleteFunc(pkgs, func(p any) bool { return drop(p.([]any)[0].(string)) })
	}
	// JSON round trip so that nil and empty lists compare equal.
	norm := func(v libcompsView) string {
		b, _ := json.Marshal(v)
		return strings.ReplaceAll(string(b), "null", "[]")
	}
	if norm(got) != norm(want) {
		t.Errorf("libcomps reads\n%s\nwant\n%s", norm(got), norm(want))
	}
}

func TestFilterCompsRejects(t *testing.T) {
	good := string(readFile(t, filepath.Join("testdata", "comps", "shapes.xml")))
	tests := []struct{ name, old, new string }{
		{"internal DTD subset", `"comps.dtd">`, `"comps.dtd" [<!ENTITY duck "penguin">]>`},
		{"other root", "<comps>", "<groups>"},
		{"truncated", "", good[:len(good)/2]},
		{"empty", "", ""},
		{"mismatched tags", "</packagelist>", "</packagelists>"},
		{"element in a packagereq", ">bear</packagereq>", "><b>bear</b></packagereq>"},
		{"bad entity", ">bear<", ">&bear;<"},
		{"text after the root", "</comps>", "</comps>\nmirror footer"},
		{"second root", "</comps>", "</comps><comps/>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.new
			if tt.old != "" {
				in = strings.Replace(good, tt.old, tt.new, 1)
				if in == good {
					t.Fatalf("%q not found", tt.old)
				}
			}
			_, err := metadata.FilterComps(strings.NewReader(in), metadata.None, io.Discard, metadata.None, rwLimit, dropNames("bear"))
			if !errors.Is(err, metadata.ErrMalformed) {
				t.Errorf("FilterComps = %v, want ErrMalformed", err)
			}
		})
	}
	t.Run("limit", func(t *testing.T) {
		_, err := metadata.FilterComps(strings.NewReader(good), metadata.None, io.Discard, metadata.None, 100, dropNames("bear"))
		if !errors.Is(err, metadata.ErrTooLarge) {
			t.Errorf("FilterComps = %v, want ErrTooLarge", err)
		}
	})
}

func TestIsCompsRecord(t *testing.T) {
	for typ, want := range map[string]bool{
		"group": true, "group_gz": true, "group_xz": true, "group_zck": false,
		"groups": false, "primary": false, "updateinfo": false,
	} {
		if got := metadata.IsCompsRecord(typ); got != want {
			t.Errorf("IsCompsRecord(%q) = %v", typ, got)
		}
	}
}

// FuzzFilterComps: no panic on any input; dropping nothing gives accepted
// input back; dropping everything leaves no packagereq with content in a
// group, and a document encoding/xml reads stays readable.
func FuzzFilterComps(f *testing.F) {
	f.Add(readFile(f, filepath.Join("testdata", "comps", "shapes.xml")))
	f.Add(readFile(f, filepath.Join("..", "proxy", "testdata", "comps.xml")))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		_, err := metadata.FilterComps(bytes.NewReader(data), metadata.None, &out, metadata.None, 1<<20, func(string) bool { return false })
		if err != nil {
			if !errors.Is(err, metadata.ErrMalformed) && !errors.Is(err, metadata.ErrTooLarge) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrTooLarge", err)
			}
			return
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("dropping nothing changed the document:\n%q\n%q", data, out.Bytes())
		}
		out.Reset()
		res, err := metadata.FilterComps(bytes.NewReader(data), metadata.None, &out, metadata.None, 1<<20, func(string) bool { return true })
		if err != nil {
			t.Fatalf("drop all: %v", err)
		}
		var before, after xmlComps
		dec := xml.NewDecoder(bytes.NewReader(data))
		dec.Strict = false
		if dec.Decode(&before) != nil {
			return
		}
		dec = xml.NewDecoder(bytes.NewReader(out.Bytes()))
		dec.Strict = false
		if err := dec.Decode(&after); err != nil {
			t.Fatalf("output of a readable document does not read: %v\n%s", err, out.Bytes())
		}
		if len(after.Groups) != len(before.Groups) {
			t.Fatalf("%d groups became %d", len(before.Groups), len(after.Groups))
		}
		for _, g := range after.Groups {
			for _, p := range g.Packages {
				if p != "" {
					t.Fatalf("group %q still has %q after dropping everything (%d removed)", g.ID, p, res.Removed)
				}
			}
		}
	})
}

// compsLabel names a comps file by its project folder and base name, its
// checksum prefix cut.
func compsLabel(path string) string {
	base := filepath.Base(path)
	if i := strings.LastIndexByte(base, '-'); i >= 64 {
		base = base[i+1:]
	}
	parts := strings.Split(filepath.ToSlash(path), "/")
	for i, p := range parts {
		if p == "corpora" && i+1 < len(parts) {
			return parts[i+1] + "/" + base
		}
	}
	return filepath.Base(filepath.Dir(filepath.Dir(path))) + "/" + base
}

// TestFilterCompsDNF: the pulp zoo with dolphin filtered. penguin needs
// dolphin, so it cannot be installed either; with the comps left as
// upstream wrote them `dnf group install birds` fails ("nothing provides
// dolphin needed by penguin"), with dolphin and penguin dropped from the
// groups it installs what is left, and `dnf group info` lists the rest.
func TestFilterCompsDNF(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	testenv.RequireRoot(t)
	assets := testenv.CorpusPath(t, "pulp-fixtures/rpm/assets")
	rpms, err := filepath.Glob(filepath.Join(assets, "*.rpm"))
	if err != nil || len(rpms) == 0 {
		t.Fatalf("no zoo RPMs: %v", err)
	}
	src, md := makeRepo(t, rpms, "--groupfile", filepath.Join(assets, "comps.xml"))
	if _, ok := md.Record("group_gz"); !ok {
		t.Fatal("createrepo_c --groupfile made no group_gz record")
	}
	decide := func(id metadata.PackageID, _ string) metadata.Decision {
		if id.Name == "dolphin" {
			return metadata.Decision{Action: metadata.ActionFilter, Findings: almaFindings[1:]}
		}
		return metadata.Decision{}
	}
	serve := func(rw *rewritten) *testenv.DNF {
		srv := httptest.NewServer(http.FileServer(http.Dir(rw.dir)))
		t.Cleanup(srv.Close)
		return testenv.NewDNF(t, map[string]string{"zoo": srv.URL})
	}

	t.Run("comps as upstream wrote them", func(t *testing.T) {
		dnf := serve(rewriteRepo(t, src, decide, metadata.Gzip))
		_, stderr, err := dnf.Run("group", "install", "birds")
		if err == nil || !strings.Contains(stderr, "nothing provides dolphin needed by penguin") {
			t.Errorf("group install birds = %v, %s; want the failure over dolphin", err, stderr)
		}
	})
	t.Run("comps filtered", func(t *testing.T) {
		rw := rewriteRepoComps(t, src, decide, metadata.Gzip, dropNames("dolphin", "penguin"))
		for _, typ := range []string{"group", "group_gz"} {
			data := openRecord(t, rw.dir, rw.md, typ)
			if bytes.Contains(data, []byte(">penguin<")) || bytes.Contains(data, []byte(">dolphin<")) || !bytes.Contains(data, []byte(">stork<")) {
				t.Errorf("%s: penguin or dolphin still listed, or stork gone", typ)
			}
		}
		if _, ok := rw.md.Record("group_zck"); ok {
			t.Error("a group_zck record is left")
		}
		dnf := serve(rw)
		info, _, err := dnf.Run("group", "info", "birds", "mammals")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"cockateel", "duck", "stork", "bear", "whale"} {
			if !strings.Contains(info, name) {
				t.Errorf("group info lacks %s:\n%s", name, info)
			}
		}
		if strings.Contains(info, "penguin") || strings.Contains(info, "dolphin") {
			t.Errorf("group info lists a dropped package:\n%s", info)
		}
		dnf.Install("@birds")
		for _, name := range []string{"stork", "duck", "cockateel"} {
			if !dnf.Installed(name) {
				t.Errorf("%s not installed by the group", name)
			}
		}
	})
}
