package metadata_test

// Regression tests over repositories that other projects made: the shapes
// that dnf, librepo and zypper accept and the rewriter once refused. Each
// has a checked-in copy of the shape (so it runs without the corpora) and,
// where the corpora hold one, a test over the real repository.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// fractionalRepomd has the shape of librepo's repo_yum_02: old yum wrote
// fractions of a second in some <timestamp>s.
const fractionalRepomd = `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1355393568</revision>
  <data type="primary">
    <checksum type="sha256">` + sum256 + `</checksum>
    <open-checksum type="sha256">` + open256 + `</open-checksum>
    <location href="repodata/p-primary.xml.gz"/>
    <timestamp>1355393567.25</timestamp>
    <size>956</size>
    <open-size>3411</open-size>
  </data>
  <data type="origin">
    <checksum type="sha256">` + sum256 + `</checksum>
    <location href="repodata/o-pkgorigins.gz"/>
    <timestamp>1355315696.84</timestamp>
    <size>140</size>
  </data>
</repomd>
`

func TestFractionalTimestamp(t *testing.T) {
	md, err := metadata.ParseRepomd([]byte(fractionalRepomd))
	if err != nil {
		t.Fatalf("ParseRepomd: %v", err)
	}
	if r, _ := md.Record("origin"); r.Timestamp != 1355315696 {
		t.Errorf("origin timestamp = %d, want 1355315696", r.Timestamp)
	}
	info := metadata.FileInfo{Codec: metadata.Gzip, Checksum: metadata.Checksum{Type: "sha256", Value: sha64b},
		OpenChecksum: metadata.Checksum{Type: "sha256", Value: sha64a}, Size: 5, OpenSize: 50}
	got, err := metadata.RewriteRepomd([]byte(fractionalRepomd), map[string]metadata.FileInfo{"primary": info}, nil, nil)
	if err != nil {
		t.Fatalf("RewriteRepomd: %v", err)
	}
	// The replaced record gets whole seconds; the others keep their bytes.
	for _, want := range []string{"<timestamp>1355393567</timestamp>", "<timestamp>1355315696.84</timestamp>"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("rewritten repomd.xml lacks %s:\n%s", want, got)
		}
	}
}

// TestFractionalTimestampCorpus reads librepo's own old-yum repos.
func TestFractionalTimestampCorpus(t *testing.T) {
	for _, rel := range []string{
		"librepo/tests/test_data/repo_yum_02",
		"librepo/tests/python/tests/servermock/yum_mock/static/02",
	} {
		t.Run(rel, func(t *testing.T) {
			dir := testenv.CorpusPath(t, rel)
			orig := readFile(t, filepath.Join(dir, "repodata", "repomd.xml"))
			if !bytes.Contains(orig, []byte(".84</timestamp>")) {
				t.Fatal("the corpus repomd.xml has no fractional timestamp any more")
			}
			md, err := metadata.ParseRepomd(orig)
			if err != nil {
				t.Fatalf("ParseRepomd: %v", err)
			}
			prim, _ := md.Record("primary")
			data := readFile(t, filepath.Join(dir, prim.Href))
			var out bytes.Buffer
			plan, err := metadata.NewPlan(bytes.NewReader(data), metadata.CodecOf(prim.Href), rwLimit, keepAll)
			if err != nil {
				t.Fatal(err)
			}
			res, err := plan.Rewrite(metadata.KindPrimary, bytes.NewReader(data), metadata.CodecOf(prim.Href), &out, metadata.Gzip, rwLimit)
			if err != nil {
				t.Fatal(err)
			}
			rw, err := metadata.RewriteRepomd(orig, map[string]metadata.FileInfo{"primary": res.FileInfo}, nil, nil)
			if err != nil {
				t.Fatalf("RewriteRepomd: %v", err)
			}
			if _, err := metadata.ParseRepomd(rw); err != nil {
				t.Fatalf("rewritten repomd.xml: %v", err)
			}
		})
	}
}

// corpusRepomd reads a corpus repo's repomd.xml.
func corpusRepomd(t *testing.T, dir string) ([]byte, *metadata.Repomd) {
	t.Helper()
	orig := readFile(t, filepath.Join(dir, "repodata", "repomd.xml"))
	md, err := metadata.ParseRepomd(orig)
	if err != nil {
		t.Fatalf("ParseRepomd(%s): %v", dir, err)
	}
	return orig, md
}

var _ = os.ReadFile
var _ = strings.Contains
