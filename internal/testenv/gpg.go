package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// RepoSigner signs repositories with a throwaway GnuPG key, as an upstream
// with repo_gpgcheck=1 clients does. Its keyring lives in a temporary
// directory; NewRepoSigner stops the gpg-agent it starts at cleanup.
type RepoSigner struct {
	t    testing.TB
	bin  string
	home string
}

// NewRepoSigner generates an RSA signing key (needs the gpg tool, Debian
// package "gpg").
func NewRepoSigner(t testing.TB) *RepoSigner {
	t.Helper()
	s := &RepoSigner{t: t, bin: RequireTool(t, "gpg")}
	// A short path: gpg-agent's socket path must fit in sun_path.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s.home = home
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if conf, err := exec.LookPath("gpgconf"); err == nil {
			exec.Command(conf, "--homedir", home, "--kill", "gpg-agent").Run()
		}
		os.RemoveAll(home)
	})
	s.gpg("--quick-generate-key", "dnfproxy test repo <repo@dnfproxy.test>", "rsa2048", "sign", "never")
	return s
}

func (s *RepoSigner) gpg(args ...string) []byte {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), time.Minute)
	defer cancel()
	argv := append([]string{"--homedir", s.home, "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)
	cmd := exec.CommandContext(ctx, s.bin, argv...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		s.t.Fatalf("testenv: %s: %v\n%s", cmd, err, stderr)
	}
	return out
}

// Sign writes root/repodata/repomd.xml.asc, an armored detached signature
// of root/repodata/repomd.xml, and root/repodata/repomd.xml.key, the
// armored public key (where clients' gpgkey= can point). Call it again
// after every change of the repository.
func (s *RepoSigner) Sign(root string) {
	s.t.Helper()
	repomd := filepath.Join(root, "repodata", "repomd.xml")
	s.gpg("--armor", "--detach-sign", "--output", repomd+".asc", repomd)
	if err := os.WriteFile(repomd+".key", s.gpg("--armor", "--export"), 0o644); err != nil {
		s.t.Fatalf("testenv: %v", err)
	}
}
