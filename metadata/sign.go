package metadata

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// SigningKeyFile is the name of the key LoadOrCreateSigner generates in the
// storage directory when no key file is configured.
const SigningKeyFile = "signing-key.asc"

// Signer signs rewritten repomd.xml files with the proxy's OpenPGP key. It
// is safe for concurrent use.
type Signer struct {
	entity      *openpgp.Entity
	publicKey   []byte
	fingerprint string
}

// signConfig is used for every signature: SHA-256, which every GnuPG and
// rpm that dnf uses accepts, whatever the key's preferences say.
var signConfig = &packet.Config{DefaultHash: crypto.SHA256}

// LoadOrCreateSigner returns the signer of signing.key_file, when keyFile is
// not empty: an armored, unencrypted OpenPGP private key (errors name the
// file). Otherwise it loads <storageDir>/signing-key.asc, generating it the
// first time.
//
// A generated key is RSA 3072 (certify and sign, no expiry, no encryption
// subkey). Ed25519 would be smaller and faster, and GnuPG 2.2 (what
// librepo's gpgme uses for repo_gpgcheck on Debian 12 and EL9) verifies it;
// RSA is chosen because every verifier of a dnf/yum client accepts it:
// GnuPG 2.0 of EL7's yum has no ECC, and FIPS-mode and crypto-policy
// restricted hosts reject EdDSA. Generation costs about a second, once.
// An Ed25519 key given as keyFile works as well.
//
// The file is created with mode 0600 and atomically: the key is written to
// a temporary file, synced, then hard-linked to its name, which fails if
// the name exists. So two processes starting at once on one storage
// directory end up with the same key: the second finds the first's file
// and uses it.
func LoadOrCreateSigner(keyFile, storageDir string) (*Signer, error) {
	if keyFile != "" {
		return loadSigner(keyFile)
	}
	if storageDir == "" {
		return nil, errors.New("signing key: neither a key file nor a storage directory")
	}
	name := filepath.Join(storageDir, SigningKeyFile)
	if _, err := os.Lstat(name); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return loadSigner(name)
	}
	if err := os.MkdirAll(storageDir, 0o700); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	entity, err := newSigningEntity()
	if err != nil {
		return nil, fmt.Errorf("signing key: generating: %w", err)
	}
	var armored bytes.Buffer
	w, err := armor.Encode(&armored, openpgp.PrivateKeyType, nil)
	if err == nil {
		err = entity.SerializePrivateWithoutSigning(w, nil)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("signing key: encoding: %w", err)
	}
	armored.WriteByte('\n')

	won, err := createExclusive(name, armored.Bytes())
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", name, err)
	}
	if !won {
		// Another process created the key meanwhile: use that one.
		return loadSigner(name)
	}
	return newSigner(entity)
}

// createExclusive writes data to name, mode 0600, unless name exists; it
// reports whether it did. name appears complete or not at all.
func createExclusive(name string, data []byte) (bool, error) {
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, ".signing-key-*.tmp") // mode 0600
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	err = os.Link(tmp.Name(), name)
	switch {
	case errors.Is(err, fs.ErrExist):
		return false, nil
	case err != nil:
		// A file system without hard links: rename, which is atomic
		// but could replace a key made at the same instant.
		if _, serr := os.Lstat(name); serr == nil {
			return false, nil
		}
		if err := os.Rename(tmp.Name(), name); err != nil {
			return false, err
		}
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the new name durable; not all file systems can
		d.Close()
	}
	return true, nil
}

// newSigningEntity generates the proxy's key.
func newSigningEntity() (*openpgp.Entity, error) {
	comment := ""
	if host, err := os.Hostname(); err == nil && !strings.ContainsAny(host, "()<>\x00") {
		comment = host
	}
	e, err := openpgp.NewEntity("dnfproxy repository signing key", comment, "", &packet.Config{
		Algorithm:   packet.PubKeyAlgoRSA,
		RSABits:     3072,
		DefaultHash: crypto.SHA256,
	})
	if err != nil {
		return nil, err
	}
	// NewEntity adds an encryption subkey; a metadata signing key has no
	// use for one.
	e.Subkeys = nil
	return e, nil
}

// loadSigner reads an armored private key file.
func loadSigner(name string) (*Signer, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		if pe, ok := err.(*fs.PathError); ok {
			err = pe.Err
		}
		return nil, fmt.Errorf("signing key %s: %w", name, err)
	}
	s, err := parseSigner(data)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", name, err)
	}
	return s, nil
}

func parseSigner(data []byte) (*Signer, error) {
	list, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not an armored OpenPGP private key: %w", err)
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("holds %d keys, want exactly one", len(list))
	}
	e := list[0]
	if e.PrivateKey == nil {
		return nil, errors.New("holds a public key only; want the private key (gpg --armor --export-secret-keys)")
	}
	key, ok := e.SigningKey(time.Now())
	if !ok {
		return nil, errors.New("has no usable signing key (expired, revoked or not capable of signing)")
	}
	switch {
	case key.PrivateKey == nil || key.PrivateKey.Dummy():
		return nil, errors.New("the private part of its signing key is missing (stub or smartcard key)")
	case key.PrivateKey.Encrypted:
		return nil, errors.New("is protected by a passphrase; dnfproxy needs it without one")
	}
	return newSigner(e)
}

func newSigner(e *openpgp.Entity) (*Signer, error) {
	var pub bytes.Buffer
	w, err := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err == nil {
		err = e.Serialize(w)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	pub.WriteByte('\n')
	return &Signer{
		entity:      e,
		publicKey:   pub.Bytes(),
		fingerprint: strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint)),
	}, nil
}

// Sign returns an armored detached signature of data: the content of
// repodata/repomd.xml.asc for repomd.xml.
func (s *Signer) Sign(data []byte) ([]byte, error) {
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, s.entity, bytes.NewReader(data), signConfig); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	sig.WriteByte('\n')
	return sig.Bytes(), nil
}

// PublicKey returns the armored public key: the content of
// repodata/repomd.xml.key, what dnf's gpgkey= points at.
func (s *Signer) PublicKey() []byte { return bytes.Clone(s.publicKey) }

// Fingerprint returns the primary key's fingerprint in upper-case hex, as
// gpg and dnf print it.
func (s *Signer) Fingerprint() string { return s.fingerprint }
