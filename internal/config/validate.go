package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// keyError is one problem with one key; its message starts with the key
// path ("repos[1].compat.mode: ...").
type keyError struct {
	key, msg string
}

func (e *keyError) Error() string { return e.key + ": " + e.msg }

// problems collects keyErrors.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, &keyError{key: key, msg: fmt.Sprintf(format, args...)})
}

func (p problems) err() error { return errors.Join(p...) }

var repoName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Validate checks c without touching the file system and reports every
// problem at once (joined with errors.Join), each starting with its key
// path, e.g. `repos[1].compat.mode: "fitler" is not one of off, annotate,
// filter`. It returns nil for a valid configuration. Files named by the
// configuration are checked by CheckFiles; Load runs both.
func (c Config) Validate() error {
	var p problems
	listenOK := checkListen(&p, "listen", c.Listen)
	adminOK := checkListen(&p, "admin.listen", c.Admin.Listen)
	if listenOK && adminOK && sameListener(c.Listen, c.Admin.Listen) {
		p.add("admin.listen", "%q must differ from listen (%q): the admin API needs its own port", c.Admin.Listen, c.Listen)
	}
	for i, tp := range c.TrustedProxies {
		checkTrustedProxy(&p, fmt.Sprintf("trusted_proxies[%d]", i), tp)
	}
	if !slices.Contains(LogLevels(), c.Log.Level) {
		p.add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if strings.TrimSpace(c.Storage.Dir) == "" {
		p.add("storage.dir", "must not be empty")
	}
	if c.Storage.MaxSize <= 0 {
		p.add("storage.max_size", "must be greater than 0, got %s", c.Storage.MaxSize)
	}
	for _, l := range []struct {
		key string
		v   int64
	}{
		{"limits.max_metadata_size", int64(c.Limits.MaxMetadataSize)},
		{"limits.max_repomd_size", int64(c.Limits.MaxRepomdSize)},
		{"limits.max_decompressed_size", int64(c.Limits.MaxDecompressedSize)},
		{"limits.max_url_length", int64(c.Limits.MaxURLLength)},
		{"limits.max_header_bytes", int64(c.Limits.MaxHeaderBytes)},
		{"limits.max_xz_dictionary", int64(c.Limits.MaxXZDictionary)},
		{"limits.max_zstd_window", int64(c.Limits.MaxZstdWindow)},
		{"limits.max_xml_element", int64(c.Limits.MaxXMLElement)},
	} {
		if l.v <= 0 {
			p.add(l.key, "must be greater than 0, got %d", l.v)
		}
	}
	for i, f := range c.RuleFiles {
		if strings.TrimSpace(f) == "" {
			p.add(fmt.Sprintf("rule_files[%d]", i), "must not be empty")
		}
	}

	if len(c.Repos) == 0 {
		p.add("repos", "at least one repo is required")
	}
	names := map[string]int{}
	for i, r := range c.Repos {
		if r.Name == "" {
			continue
		}
		if j, dup := names[r.Name]; dup {
			p.add(fmt.Sprintf("repos[%d].name", i), "%q is already the name of repos[%d]", r.Name, j)
			continue
		}
		names[r.Name] = i
	}
	for i, r := range c.Repos {
		r.validate(&p, fmt.Sprintf("repos[%d]", i), names)
	}
	c.checkReferenceCycles(&p, names)
	return p.err()
}

// checkReferenceCycles reports every cycle of two or more repos naming
// each other as compat.reference, once, at the key of the cycle's first
// repo in file order. A repo naming itself is reported by Repo.validate.
func (c Config) checkReferenceCycles(p *problems, names map[string]int) {
	// next[i] is the index of the repo repos[i] references, or -1.
	next := make([]int, len(c.Repos))
	for i, r := range c.Repos {
		next[i] = -1
		if j, ok := names[r.Compat.Reference]; ok && r.Compat.Reference != "" && j != i && names[r.Name] == i {
			next[i] = j
		}
	}
	done := make([]bool, len(c.Repos))
	for start := range c.Repos {
		onPath := map[int]int{} // repo index -> position on the walk
		var walk []int
		i := start
		for i >= 0 && !done[i] {
			if pos, seen := onPath[i]; seen {
				reportCycle(p, c.Repos, walk[pos:])
				break
			}
			onPath[i] = len(walk)
			walk = append(walk, i)
			i = next[i]
		}
		for _, j := range walk {
			done[j] = true
		}
	}
}

func reportCycle(p *problems, repos []Repo, cycle []int) {
	first := slices.Index(cycle, slices.Min(cycle))
	cycle = append(cycle[first:], cycle[:first]...) // start at the lowest index
	var steps []string
	for k, i := range cycle {
		j := cycle[(k+1)%len(cycle)]
		steps = append(steps, fmt.Sprintf("repos[%d].compat.reference: %q (repos[%d])", i, repos[j].Name, j))
	}
	p.add(fmt.Sprintf("repos[%d].compat.reference", cycle[0]),
		"reference cycle (a repo cannot be compared against a repo compared against it): %s", strings.Join(steps, " -> "))
}

func (r Repo) validate(p *problems, key string, names map[string]int) {
	switch {
	case r.Name == "":
		p.add(key+".name", "must not be empty")
	case !repoName.MatchString(r.Name) || r.Name == "." || r.Name == "..":
		p.add(key+".name", "%q may only contain letters, digits, '.', '_' and '-' (it is the URL prefix /<name>/; '@' and '/' are reserved)", r.Name)
	}
	switch {
	case r.URL != "":
		checkBase(p, key+".url", r.URL)
	case r.Metalink == "" && r.Mirrorlist == "":
		p.add(key+".url", "must not be empty unless metalink or mirrorlist is set")
	}
	for i, m := range r.Mirrors {
		checkBase(p, fmt.Sprintf("%s.mirrors[%d]", key, i), m)
	}
	if r.Metalink != "" {
		checkListURL(p, key+".metalink", r.Metalink)
	}
	if r.Mirrorlist != "" {
		checkListURL(p, key+".mirrorlist", r.Mirrorlist)
		if r.Metalink != "" {
			p.add(key+".mirrorlist", "must not be set together with metalink: set one of them")
		}
	}
	if r.MetadataTTL <= 0 {
		p.add(key+".metadata_ttl", "must be greater than 0, got %s", r.MetadataTTL)
	}
	if r.Timeout <= 0 {
		p.add(key+".timeout", "must be greater than 0, got %s", r.Timeout)
	}
	if r.MinRate < 0 {
		p.add(key+".minrate", "must be 0 (off) or more bytes per second, got %d", int64(r.MinRate))
	}

	if !slices.Contains(Modes(), r.Compat.Mode) {
		p.add(key+".compat.mode", "%q is not one of off, annotate, filter", r.Compat.Mode)
	}
	if ref := r.Compat.Reference; ref != "" {
		if ref == r.Name {
			p.add(key+".compat.reference", "%q is this repo itself; name another repo", ref)
		} else if _, ok := names[ref]; !ok {
			p.add(key+".compat.reference", "%q is not the name of a repo in this configuration", ref)
		}
	}
	for _, list := range []struct {
		key     string
		classes []string
	}{{key + ".compat.annotate", r.Compat.Annotate}, {key + ".compat.filter", r.Compat.Filter}} {
		for i, cl := range list.classes {
			if !slices.Contains(Classes(), cl) {
				p.add(fmt.Sprintf("%s[%d]", list.key, i), "%q is not one of %s", cl, strings.Join(Classes(), ", "))
			}
		}
	}

	for i, m := range r.Compat.VendorMarkers {
		mk := fmt.Sprintf("%s.compat.vendor_markers[%d]", key, i)
		if m == "" {
			p.add(mk, "must not be empty (it would match every release)")
		} else if _, err := regexp.Compile(m); err != nil {
			p.add(mk, "%q is not a regular expression: %v", m, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
	}
	if r.Compat.ELF.Enabled && r.Compat.ELF.Concurrency < 1 {
		p.add(key+".compat.elf.concurrency", "must be at least 1, got %d", r.Compat.ELF.Concurrency)
	}
	if r.Compat.ABIPkgDiff.Enabled && r.Compat.Reference == "" {
		p.add(key+".compat.abipkgdiff.enabled", "needs compat.reference: abipkgdiff compares each package with the reference's")
	}
	for _, d := range r.Compat.ABIPkgDiff.Debuginfo {
		dk := key + ".compat.abipkgdiff.debuginfo"
		if d == "" {
			p.add(dk, "%q has an empty name (names are separated by commas)", r.Compat.ABIPkgDiff.Debuginfo.String())
		} else if _, ok := names[d]; !ok {
			p.add(dk, "%q is not the name of a repo in this configuration", d)
		}
	}

	if (r.ClientCert == "") != (r.ClientKey == "") {
		if r.ClientCert == "" {
			p.add(key+".client_cert", "must be set together with client_key")
		} else {
			p.add(key+".client_key", "must be set together with client_cert")
		}
	}
	if r.Password != "" && r.Username == "" {
		p.add(key+".username", "must be set when password is set")
	}
	for _, name := range sortedKeys(r.Headers) {
		hk := key + ".headers." + name
		if !isToken(name) {
			p.add(hk, "%q is not a valid HTTP header name", name)
		}
		if strings.ContainsAny(r.Headers[name], "\r\n\x00") {
			p.add(hk, "value must not contain CR, LF or NUL")
		}
	}
}

// checkListen reports whether addr is host:port with a numeric port.
func checkListen(p *problems, key, addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(key, "%q is not host:port (e.g. \"127.0.0.1:8080\" or \":8080\")", addr)
		return false
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n > 65535 {
		p.add(key, "%q: port %q is not a number from 0 to 65535", addr, port)
		return false
	}
	return true
}

// sameListener reports whether two valid listen addresses would collide.
func sameListener(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}

// checkBase checks an upstream base URL.
func checkBase(p *problems, key, s string) {
	if s == "" {
		p.add(key, "must not be empty")
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		p.add(key, "%q is not a URL: %v", s, errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		p.add(key, "%q must be an absolute http:// or https:// URL", s)
	case u.Host == "":
		p.add(key, "%q has no host", s)
	case u.User != nil:
		p.add(key, "%q must not contain credentials; use username and password", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		p.add(key, "%q must not have a query or fragment: request paths are appended to it", s)
	case !strings.HasSuffix(u.Path, "/"):
		p.add(key, "%q must end with '/'", s)
	}
}

// checkListURL checks a metalink or mirrorlist URL; "$root" may appear
// anywhere in it.
func checkListURL(p *problems, key, s string) {
	u, err := url.Parse(strings.ReplaceAll(s, RootPlaceholder, "root"))
	switch {
	case err != nil:
		p.add(key, "%q is not a URL: %v", s, errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		p.add(key, "%q must be an absolute http:// or https:// URL", s)
	case u.Host == "":
		p.add(key, "%q has no host", s)
	case u.User != nil:
		p.add(key, "%q must not contain credentials; use username and password", u.Redacted())
	}
}

// checkTrustedProxy checks one trusted_proxies entry: a CIDR or a single
// address.
func checkTrustedProxy(p *problems, key, s string) {
	if _, err := netip.ParsePrefix(s); err == nil {
		return
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return
	}
	p.add(key, "%q is not a CIDR (e.g. \"10.0.0.0/8\", \"fd00::/8\") or an IP address", s)
}

// isToken reports whether s is an RFC 9110 token (a valid header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// CheckFiles checks that every file the configuration names can be read:
// rule_files, signing.key_file, and each repo's ca_file (which must hold at
// least one PEM certificate) and client_cert/client_key (which must form a
// valid TLS key pair). Like Validate it reports every problem at once, each
// starting with its key path. It does not parse rule files or the signing
// key; their packages do. Load runs it after Validate.
func (c Config) CheckFiles() error {
	var p problems
	for i, f := range c.RuleFiles {
		if f != "" {
			checkReadable(&p, fmt.Sprintf("rule_files[%d]", i), f)
		}
	}
	if c.Signing.KeyFile != "" {
		checkReadable(&p, "signing.key_file", c.Signing.KeyFile)
	}
	for i, r := range c.Repos {
		key := fmt.Sprintf("repos[%d]", i)
		if r.CAFile != "" {
			if data, ok := checkReadable(&p, key+".ca_file", r.CAFile); ok {
				if !x509.NewCertPool().AppendCertsFromPEM(data) {
					p.add(key+".ca_file", "%s holds no PEM certificate", r.CAFile)
				}
			}
		}
		if r.ClientCert != "" && r.ClientKey != "" {
			_, certOK := checkReadable(&p, key+".client_cert", r.ClientCert)
			_, keyOK := checkReadable(&p, key+".client_key", r.ClientKey)
			if certOK && keyOK {
				if _, err := tls.LoadX509KeyPair(r.ClientCert, r.ClientKey); err != nil {
					p.add(key+".client_cert", "%s and %s are not a usable key pair: %v", r.ClientCert, r.ClientKey, err)
				}
			}
		}
	}
	return p.err()
}

// checkReadable reads a regular file and returns its content.
func checkReadable(p *problems, key, name string) ([]byte, bool) {
	f, err := os.Open(name)
	if err != nil {
		p.add(key, "%v", err)
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		p.add(key, "%s is a directory, not a file", name)
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		p.add(key, "%v", err)
		return nil, false
	}
	return data, true
}
