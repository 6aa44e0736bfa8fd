package testenv

import "testing"

// TestRepoSigner checks the signature with the real dnf: repo_gpgcheck=1
// accepts a signed repo and refuses it once repomd.xml changed unsigned.
func TestRepoSigner(t *testing.T) {
	RequireTool(t, "dnf")
	dir := t.TempDir()
	MakeRepo(t, dir, InitialRPMs())
	s := NewRepoSigner(t)
	s.Sign(dir)
	srv, _ := countingServer(t, dir)
	d := NewDNF(t, map[string]string{"s": srv.URL + "/"},
		WithRepoOption("s", "repo_gpgcheck", "1"),
		WithRepoOption("s", "gpgkey", srv.URL+"/repodata/repomd.xml.key"))
	d.MakeCache()

	UpdateRepo(t, dir, RPMExtra) // repomd.xml changes, the signature does not
	d.FreshCache()
	if _, _, err := d.Run("makecache"); err == nil {
		t.Fatal("dnf with repo_gpgcheck=1 accepted a repomd.xml its signature does not cover")
	}
	s.Sign(dir)
	d.FreshCache()
	d.MakeCache()
}
