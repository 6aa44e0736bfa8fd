package metadata_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

const repomdSample = `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1704067200</revision></repomd>
`

// checkSignature verifies sig over data with the go-crypto API, against the
// armored public key pub only.
func checkSignature(t *testing.T, pub, data, sig []byte) error {
	t.Helper()
	keyring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(pub))
	if err != nil {
		t.Fatalf("reading the public key: %v", err)
	}
	if keyring[0].PrivateKey != nil {
		t.Fatal("PublicKey holds private key material")
	}
	_, err = openpgp.CheckArmoredDetachedSignature(keyring, bytes.NewReader(data), bytes.NewReader(sig), nil)
	return err
}

// gpgVerify checks sig over data with the real GnuPG, as librepo does for
// repo_gpgcheck: a fresh keyring holding only pub.
func gpgVerify(t *testing.T, pub, data, sig []byte) (ok bool, status string) {
	t.Helper()
	gpg := testenv.RequireTool(t, "gpg")
	dir := t.TempDir()
	home := filepath.Join(dir, "gnupg")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"key.asc": pub, "repomd.xml": data, "repomd.xml.asc": sig} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(gpg, "--batch", "--homedir", home, "--import", filepath.Join(dir, "key.asc")).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	cmd := exec.Command(gpg, "--batch", "--homedir", home, "--status-fd", "1",
		"--verify", filepath.Join(dir, "repomd.xml.asc"), filepath.Join(dir, "repomd.xml"))
	out, err := cmd.Output()
	return err == nil, string(out)
}

// TestSigner generates one key (RSA 3072 takes a while) and checks
// everything that needs a generated key with it.
func TestSigner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created on demand
	s, err := metadata.LoadOrCreateSigner("", dir)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, metadata.SigningKeyFile)

	t.Run("persisted", func(t *testing.T) {
		fi, err := os.Stat(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", keyPath, fi.Mode().Perm())
		}
		if data := readFile(t, keyPath); !bytes.HasPrefix(data, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")) {
			t.Errorf("%s does not start with an armored private key:\n%.80s", keyPath, data)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("storage dir holds %d entries, want only %s", len(entries), metadata.SigningKeyFile)
		}
		before := readFile(t, keyPath)
		again, err := metadata.LoadOrCreateSigner("", dir)
		if err != nil {
			t.Fatal(err)
		}
		if again.Fingerprint() != s.Fingerprint() || !bytes.Equal(again.PublicKey(), s.PublicKey()) {
			t.Errorf("second start: key %s, want the stored %s", again.Fingerprint(), s.Fingerprint())
		}
		if !bytes.Equal(readFile(t, keyPath), before) {
			t.Error("second start rewrote the key file")
		}
	})

	t.Run("key", func(t *testing.T) {
		fp := s.Fingerprint()
		if len(fp) != 40 || strings.ToUpper(fp) != fp || strings.Trim(fp, "0123456789ABCDEF") != "" {
			t.Errorf("Fingerprint() = %q, want 40 upper-case hex digits", fp)
		}
		block, err := armor.Decode(bytes.NewReader(s.PublicKey()))
		if err != nil || block.Type != openpgp.PublicKeyType {
			t.Fatalf("PublicKey() is not an armored public key: %v", err)
		}
		keyring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(s.PublicKey()))
		if err != nil {
			t.Fatal(err)
		}
		pk := keyring[0].PrimaryKey
		if bits, _ := pk.BitLength(); pk.PubKeyAlgo != packet.PubKeyAlgoRSA || bits != 3072 {
			t.Errorf("generated key is algorithm %v, %d bits; want RSA 3072", pk.PubKeyAlgo, bits)
		}
		if len(keyring[0].Subkeys) != 0 {
			t.Errorf("generated key has %d subkeys, want none", len(keyring[0].Subkeys))
		}
	})

	t.Run("sign and verify", func(t *testing.T) {
		sig, err := s.Sign([]byte(repomdSample))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(sig, []byte("-----BEGIN PGP SIGNATURE-----")) {
			t.Fatalf("signature is not armored:\n%s", sig)
		}
		if err := checkSignature(t, s.PublicKey(), []byte(repomdSample), sig); err != nil {
			t.Errorf("signature does not verify: %v", err)
		}
		tampered := strings.Replace(repomdSample, "1704067200", "1704067201", 1)
		if err := checkSignature(t, s.PublicKey(), []byte(tampered), sig); err == nil {
			t.Error("signature verifies over changed data")
		}
	})

	t.Run("gpg", func(t *testing.T) {
		sig, err := s.Sign([]byte(repomdSample))
		if err != nil {
			t.Fatal(err)
		}
		ok, status := gpgVerify(t, s.PublicKey(), []byte(repomdSample), sig)
		if !ok || !strings.Contains(status, "[GNUPG:] VALIDSIG "+s.Fingerprint()) {
			t.Errorf("gpg --verify failed or names another key:\n%s", status)
		}
		tampered := []byte(repomdSample + " ")
		if ok, status := gpgVerify(t, s.PublicKey(), tampered, sig); ok || !strings.Contains(status, "[GNUPG:] BADSIG") {
			t.Errorf("gpg accepts the signature over changed data:\n%s", status)
		}
	})

	// What the rewriting views serve: dnf with repo_gpgcheck=1 and the
	// proxy's key accepts a repomd.xml the Signer signed, and refuses it
	// when the signature does not match.
	t.Run("dnf repo_gpgcheck", func(t *testing.T) {
		dir := t.TempDir()
		testenv.MakeRepo(t, dir, testenv.InitialRPMs())
		repomd := readFile(t, filepath.Join(dir, "repodata", "repomd.xml"))
		sig, err := s.Sign(repomd)
		if err != nil {
			t.Fatal(err)
		}
		otherSig, err := s.Sign(append(repomd, ' '))
		if err != nil {
			t.Fatal(err)
		}
		var current atomic.Pointer[[]byte]
		current.Store(&sig)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/repodata/repomd.xml.asc":
				w.Write(*current.Load())
			case "/repodata/repomd.xml.key":
				w.Write(s.PublicKey())
			default:
				http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
			}
		}))
		defer srv.Close()
		opts := []testenv.DNFOption{
			testenv.WithRepoOption("signed", "repo_gpgcheck", "1"),
			testenv.WithRepoOption("signed", "gpgkey", srv.URL+"/repodata/repomd.xml.key"),
		}
		dnf := testenv.NewDNF(t, map[string]string{"signed": srv.URL + "/"}, opts...)
		if got := dnf.RepoQuery(); !slices.Equal(got, testenv.InitialNEVRAs()) {
			t.Errorf("repoquery through a signed repo = %q, want %q", got, testenv.InitialNEVRAs())
		}

		current.Store(&otherSig)
		bad := testenv.NewDNF(t, map[string]string{"signed": srv.URL + "/"}, opts...)
		_, stderr, err := bad.Run("makecache")
		if err == nil {
			t.Error("dnf accepted a repomd.xml whose signature does not match")
		} else if !strings.Contains(stderr, "GPG signature verification error") {
			t.Errorf("dnf failed for another reason than the signature: %v", err)
		}
	})

	t.Run("concurrent signing", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				data := []byte(strings.Repeat("x", i*1000))
				sig, err := s.Sign(data)
				if err != nil {
					t.Error(err)
					return
				}
				if err := checkSignature(t, s.PublicKey(), data, sig); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	})

	t.Run("key file", func(t *testing.T) {
		// signing.key_file takes precedence; the storage dir is not used.
		other := filepath.Join(t.TempDir(), "my.key")
		if err := os.WriteFile(other, readFile(t, keyPath), 0o600); err != nil {
			t.Fatal(err)
		}
		emptyDir := t.TempDir()
		fromFile, err := metadata.LoadOrCreateSigner(other, emptyDir)
		if err != nil {
			t.Fatal(err)
		}
		if fromFile.Fingerprint() != s.Fingerprint() {
			t.Errorf("key file gives %s, want %s", fromFile.Fingerprint(), s.Fingerprint())
		}
		if entries, _ := os.ReadDir(emptyDir); len(entries) != 0 {
			t.Errorf("a configured key file still wrote %d files to the storage dir", len(entries))
		}
	})

	t.Run("unusable key files", func(t *testing.T) {
		keyring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(readFile(t, keyPath)))
		if err != nil {
			t.Fatal(err)
		}
		if err := keyring[0].EncryptPrivateKeys([]byte("secret"), nil); err != nil {
			t.Fatal(err)
		}
		var encrypted bytes.Buffer
		w, _ := armor.Encode(&encrypted, openpgp.PrivateKeyType, nil)
		if err := keyring[0].SerializePrivateWithoutSigning(w, nil); err != nil {
			t.Fatal(err)
		}
		w.Close()

		// Two keys in one armored block.
		other, err := openpgp.NewEntity("other", "", "", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
		if err != nil {
			t.Fatal(err)
		}
		keyring, _ = openpgp.ReadArmoredKeyRing(bytes.NewReader(readFile(t, keyPath)))
		var two bytes.Buffer
		w, _ = armor.Encode(&two, openpgp.PrivateKeyType, nil)
		for _, e := range []*openpgp.Entity{keyring[0], other} {
			if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()

		dir := t.TempDir()
		for _, c := range []struct {
			name    string
			content []byte
			want    string
		}{
			{"public.asc", s.PublicKey(), "public key only"},
			{"encrypted.asc", encrypted.Bytes(), "passphrase"},
			{"two.asc", two.Bytes(), "2 keys"},
		} {
			name := filepath.Join(dir, c.name)
			if err := os.WriteFile(name, c.content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := metadata.LoadOrCreateSigner(name, "")
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error %v, want one naming the file and saying %q", c.name, err, c.want)
			}
		}
	})
}

func TestLoadSignerErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.asc")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.asc")
	_, err := metadata.LoadOrCreateSigner(missing, "")
	if err == nil || err.Error() != "signing key "+missing+": no such file or directory" {
		t.Errorf("missing key file: %v", err)
	}
	_, err = metadata.LoadOrCreateSigner(garbage, "")
	if err == nil || !strings.HasPrefix(err.Error(), "signing key "+garbage+": not an armored OpenPGP private key") {
		t.Errorf("garbage key file: %v", err)
	}
	// A damaged generated key is reported, never silently replaced.
	storage := t.TempDir()
	stored := filepath.Join(storage, metadata.SigningKeyFile)
	if err := os.WriteFile(stored, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = metadata.LoadOrCreateSigner("", storage)
	if err == nil || !strings.Contains(err.Error(), stored) {
		t.Errorf("empty stored key: %v", err)
	}
	if data := readFile(t, stored); len(data) != 0 {
		t.Error("the damaged key file was replaced")
	}
	if _, err := metadata.LoadOrCreateSigner("", ""); err == nil {
		t.Error("no key file and no storage dir: no error")
	}
}

// Two proxies starting at once on one storage dir must end up with one key.
func TestSignerConcurrentCreate(t *testing.T) {
	if testing.Short() {
		t.Skip("generates several RSA keys")
	}
	dir := t.TempDir()
	const n = 3
	fps := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := metadata.LoadOrCreateSigner("", dir)
			if err != nil {
				t.Error(err)
				return
			}
			fps[i] = s.Fingerprint()
		})
	}
	wg.Wait()
	final, err := metadata.LoadOrCreateSigner("", dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, fp := range fps {
		if fp != final.Fingerprint() {
			t.Errorf("start %d uses key %s, the stored key is %s", i, fp, final.Fingerprint())
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("storage dir holds %d entries, want 1", len(entries))
	}
}

// Keys an admin brings: Ed25519 made by go-crypto, and a key made by GnuPG
// itself, exported the way the README says. Both must sign what gpg
// verifies.
func TestSignerGivenKeys(t *testing.T) {
	dir := t.TempDir()
	ed, err := openpgp.NewEntity("test", "", "test@example.org", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err := ed.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	edFile := filepath.Join(dir, "ed25519.asc")
	if err := os.WriteFile(edFile, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{"ed25519": edFile}

	if gpg, err := exec.LookPath("gpg"); err == nil {
		home := filepath.Join(dir, "g")
		if err := os.Mkdir(home, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// gpg started an agent for key generation; stop it.
			exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		})
		run := func(args ...string) []byte {
			t.Helper()
			out, err := exec.Command(gpg, append([]string{"--batch", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...).Output()
			if err != nil {
				t.Fatalf("gpg %s: %v", strings.Join(args, " "), err)
			}
			return out
		}
		run("--quick-gen-key", "repo@example.org", "rsa3072", "sign", "never")
		gpgFile := filepath.Join(dir, "gpg.asc")
		if err := os.WriteFile(gpgFile, run("--armor", "--export-secret-keys", "repo@example.org"), 0o600); err != nil {
			t.Fatal(err)
		}
		keys["gpg-made"] = gpgFile
	}

	for name, file := range keys {
		t.Run(name, func(t *testing.T) {
			s, err := metadata.LoadOrCreateSigner(file, "")
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.Sign([]byte(repomdSample))
			if err != nil {
				t.Fatal(err)
			}
			if err := checkSignature(t, s.PublicKey(), []byte(repomdSample), sig); err != nil {
				t.Errorf("go-crypto: %v", err)
			}
			if ok, status := gpgVerify(t, s.PublicKey(), []byte(repomdSample), sig); !ok || !strings.Contains(status, s.Fingerprint()) {
				t.Errorf("gpg --verify:\n%s", status)
			}
		})
	}
}
