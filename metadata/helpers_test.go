package metadata_test

import (
	"bytes"
	"encoding/hex"
	"hash"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// allRPMs are every fixture package; tests that scan primary.xml expect to
// find each of them.
var allRPMs = []string{
	testenv.RPMLib, testenv.RPMApp, testenv.RPMTool, testenv.RPMExtra,
	testenv.RPMBig, testenv.RPMLibAlma, testenv.RPMConflict,
}

// makeRepo builds a repository of rpms with createrepo_c and args in a
// temporary directory and returns the directory and its parsed repomd.xml.
func makeRepo(t *testing.T, rpms []string, args ...string) (string, *metadata.Repomd) {
	t.Helper()
	dir := t.TempDir()
	testenv.MakeRepo(t, dir, rpms, args...)
	data, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.ParseRepomd(data)
	if err != nil {
		t.Fatalf("ParseRepomd(repomd.xml of createrepo_c %s): %v", strings.Join(args, " "), err)
	}
	return dir, md
}

// createrepoAccepts reports whether this createrepo_c accepts args, by trying
// them on an empty repository. createrepo_c learned zstd in 1.0, for example.
func createrepoAccepts(t *testing.T, args ...string) bool {
	t.Helper()
	bin := testenv.RequireTool(t, "createrepo_c")
	dir := t.TempDir()
	out, err := exec.CommandContext(t.Context(), bin, append(append([]string{"--quiet"}, args...), dir)...).CombinedOutput()
	if err != nil {
		t.Logf("createrepo_c %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		return false
	}
	return true
}

// newHash returns a hash for a normalised checksum type.
func newHash(t testing.TB, typ string) hash.Hash {
	t.Helper()
	h, err := metadata.NewHash(typ)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// sumOf returns the checksum of data with the given type.
func sumOf(t testing.TB, typ string, data []byte) metadata.Checksum {
	t.Helper()
	h := newHash(t, typ)
	h.Write(data)
	return metadata.Checksum{Type: typ, Value: hex.EncodeToString(h.Sum(nil))}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
