// Package config owns dnfproxy's configuration: its Go types, the built-in
// defaults, the YAML file format and the checks a configuration must pass.
// It is the only package that knows YAML; the rest of the program receives
// a Config value.
//
// Guarantees:
//
//   - Default() is exactly what config.example.yaml at the repository root
//     says (a test loads the file and compares).
//   - Load reads a file strictly: an unknown key, a duplicate key or a value
//     of the wrong type is an error naming the file, the line and the key.
//   - A Config returned by Load without error has passed Validate and
//     CheckFiles: every listen address is host:port, every repo has a unique
//     URL-safe name and a url (absolute http(s), ending in "/"), a metalink
//     or a mirrorlist, every compat setting is meaningful (classes known,
//     references to configured repos without cycles, regexps that compile),
//     and every file the config names exists and is readable (PEM files
//     parse).
//   - Validate and CheckFiles report every problem at once, each prefixed by
//     its key path, e.g. `repos[1].compat.mode: "fitler" is not one of off,
//     annotate, filter`.
//
// Relative paths (storage.dir, rule_files, signing.key_file, ca_file,
// client_cert, client_key) are relative to the working directory of the
// process, not to the configuration file, as for the built-in "./data".
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
)

// Config is the whole configuration of a dnfproxy process.
type Config struct {
	// Listen is the client-facing listener, host:port.
	Listen string `yaml:"listen"`
	// TrustedProxies are the CIDRs (or single addresses) of reverse
	// proxies whose X-Forwarded-For header is believed. Empty: none, the
	// client address is the peer address.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Admin is the admin API listener and its token.
	Admin Admin `yaml:"admin"`
	// Log configures the process log.
	Log Log `yaml:"log"`
	// Storage is where and how much is cached.
	Storage Storage `yaml:"storage"`
	// Signing configures the key that signs rewritten repomd.xml files.
	Signing Signing `yaml:"signing"`
	// Limits bound what is accepted from upstreams and clients.
	Limits Limits `yaml:"limits"`
	// RuleFiles are files of known divergences (see DESIGN.md).
	RuleFiles []string `yaml:"rule_files"`
	// Repos are the proxied repositories, in file order.
	Repos []Repo `yaml:"repos"`
}

// Admin configures the admin API listener.
type Admin struct {
	// Listen is the admin listener, host:port; it differs from Config.Listen.
	Listen string `yaml:"listen"`
	// Token is the bearer token for /api/* and /. Empty: those answer 403.
	// The environment variable DNFPROXY_ADMIN_TOKEN overrides it.
	Token string `yaml:"token"`
}

// Log configures the process log.
type Log struct {
	// Level is the least severe level written: debug, info, warn or
	// error. The serve command's --log-level flag wins over it.
	Level LogLevel `yaml:"level"`
}

// LogLevel is a log level as written in the file or on the command line.
type LogLevel string

// The log levels.
const (
	LogDebug LogLevel = "debug"
	LogInfo  LogLevel = "info"
	LogWarn  LogLevel = "warn"
	LogError LogLevel = "error"
)

// LogLevels returns every valid LogLevel, most verbose first.
func LogLevels() []LogLevel { return []LogLevel{LogDebug, LogInfo, LogWarn, LogError} }

// ErrLogLevel is returned by ParseLogLevel for an unknown level.
var ErrLogLevel = errors.New("not one of debug, info, warn, error")

// ParseLogLevel returns the slog level for "debug", "info", "warn" or
// "error" (case-insensitive).
func ParseLogLevel(s string) (slog.Level, error) {
	switch LogLevel(strings.ToLower(strings.TrimSpace(s))) {
	case LogDebug:
		return slog.LevelDebug, nil
	case LogInfo:
		return slog.LevelInfo, nil
	case LogWarn:
		return slog.LevelWarn, nil
	case LogError:
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: %w", s, ErrLogLevel)
}

// Slog returns l as a slog.Level; an invalid level (which Validate
// rejects) gives slog.LevelInfo.
func (l LogLevel) Slog() slog.Level {
	v, err := ParseLogLevel(string(l))
	if err != nil {
		return slog.LevelInfo
	}
	return v
}

// Storage configures the cache store.
type Storage struct {
	// Dir holds the badger store and the generated signing key.
	Dir string `yaml:"dir"`
	// MaxSize bounds the store; least recently used objects go first.
	MaxSize ByteSize `yaml:"max_size"`
}

// Signing configures the OpenPGP key for rewritten metadata.
type Signing struct {
	// KeyFile is an armored OpenPGP private key. Empty: a key is generated
	// once in Storage.Dir.
	KeyFile string `yaml:"key_file"`
}

// Limits bound the sizes the proxy accepts. All are positive.
type Limits struct {
	// MaxMetadataSize is the largest repodata file (primary, filelists,
	// ..., as stored upstream, i.e. compressed) accepted from an upstream.
	MaxMetadataSize ByteSize `yaml:"max_metadata_size"`
	// MaxRepomdSize is the largest repomd.xml accepted from an upstream.
	MaxRepomdSize ByteSize `yaml:"max_repomd_size"`
	// MaxDecompressedSize is the most bytes one metadata file may expand to
	// when decompressed (guard against decompression bombs).
	MaxDecompressedSize ByteSize `yaml:"max_decompressed_size"`
	// MaxURLLength is the longest request URL (path and query) a client may
	// send, in bytes.
	MaxURLLength int `yaml:"max_url_length"`
	// MaxHeaderBytes is the most bytes of request headers a client may send
	// (http.Server.MaxHeaderBytes).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxXZDictionary is the largest xz (LZMA2) dictionary a compressed
	// metadata file may ask for; it bounds the decoder's memory.
	MaxXZDictionary ByteSize `yaml:"max_xz_dictionary"`
	// MaxZstdWindow is the largest zstd window a compressed metadata file
	// may ask for; it bounds the decoder's memory.
	MaxZstdWindow ByteSize `yaml:"max_zstd_window"`
	// MaxXMLElement is the largest single XML element (one <package> of
	// primary.xml, say) the metadata scanner holds in memory.
	MaxXMLElement ByteSize `yaml:"max_xml_element"`
}

// Repo is one proxied repository, served under /<Name>/.
type Repo struct {
	// Name is the URL prefix: [A-Za-z0-9._-]+, not "." or "..".
	Name string `yaml:"name"`
	// URL is the upstream base: absolute http(s), ending in "/" (Load adds
	// a missing trailing "/"). The request path below the prefix is
	// appended to it. It may be empty when Metalink or Mirrorlist is set.
	URL string `yaml:"url"`
	// Mirrors are more bases like URL, tried in order when one fails.
	Mirrors []string `yaml:"mirrors"`
	// Metalink is the URL of a metalink document listing the mirrors of a
	// root; "$root" in it is replaced by the root's sub-path (e.g.
	// "9/BaseOS/x86_64/os"). Absolute http(s). At most one of Metalink and
	// Mirrorlist is set; the bases it lists are tried after URL and Mirrors.
	Metalink string `yaml:"metalink"`
	// Mirrorlist is the URL of a mirrorlist (one base URL a line) for a
	// root, with the same "$root" substitution as Metalink.
	Mirrorlist string `yaml:"mirrorlist"`
	// MetadataTTL is how long a repomd.xml is trusted before revalidation.
	MetadataTTL Duration `yaml:"metadata_ttl"`
	// Compat configures the RHEL ABI annotation and filtering.
	Compat Compat `yaml:"compat"`
	// Timeout bounds connecting to the upstream and any stall of a
	// transfer: no bytes for this long ends the fill with an error.
	Timeout Duration `yaml:"timeout"`
	// MinRate is the slowest average transfer rate, in bytes per second,
	// accepted from an upstream over any Timeout-long window: a transfer
	// below it is abandoned and retried on the next base (dnf's minrate and
	// timeout). 0 disables the check.
	MinRate ByteSize `yaml:"minrate"`
	// CAFile is a PEM bundle of CA certificates trusted for this upstream
	// instead of the system roots. Empty: system roots.
	CAFile string `yaml:"ca_file"`
	// ClientCert and ClientKey are PEM files for TLS client authentication
	// (e.g. the RHEL CDN entitlement). Both or neither.
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// Username and Password are sent as HTTP basic auth when Username is
	// not empty.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Headers are extra request headers sent to the upstream.
	Headers map[string]string `yaml:"headers"`
}

// Bases returns the configured upstream bases in the order to try them:
// URL (when set), then Mirrors. Bases listed by a Metalink or Mirrorlist
// are not included. The returned slice is a fresh copy.
func (r Repo) Bases() []string {
	var b []string
	if r.URL != "" {
		b = append(b, r.URL)
	}
	return append(b, r.Mirrors...)
}

// RootPlaceholder is replaced by a root's sub-path in Metalink and
// Mirrorlist URLs.
const RootPlaceholder = "$root"

// MetalinkURL returns Metalink with "$root" replaced by root ("" when
// Metalink is not set).
func (r Repo) MetalinkURL(root string) string { return expandRoot(r.Metalink, root) }

// MirrorlistURL returns Mirrorlist with "$root" replaced by root ("" when
// Mirrorlist is not set).
func (r Repo) MirrorlistURL(root string) string { return expandRoot(r.Mirrorlist, root) }

func expandRoot(u, root string) string {
	return strings.ReplaceAll(u, RootPlaceholder, strings.Trim(root, "/"))
}

// Compat configures how a repo is compared against the RHEL ABI.
type Compat struct {
	// Mode is the default view of /<repo>/: off, annotate or filter.
	Mode Mode `yaml:"mode"`
	// Reference names another repo to compare against (same sub-path).
	// Empty: no reference comparison, only rules and release markers.
	Reference string `yaml:"reference"`
	// Annotate lists the classes that get annotated.
	Annotate []string `yaml:"annotate"`
	// Filter lists the classes that are dropped in filter mode.
	Filter []string `yaml:"filter"`
	// VendorMarkers are extra regular expressions (Go syntax) matching a
	// vendor's release marker, such as `\.myorg\.\d+`; the built-in ones
	// cover .alma, .rocky and Oracle's .0.N.
	VendorMarkers []string `yaml:"vendor_markers"`
	// ELF configures the comparison of exported ELF symbols.
	ELF ELF `yaml:"elf"`
	// ABIPkgDiff configures the libabigail comparison.
	ABIPkgDiff ABIPkgDiff `yaml:"abipkgdiff"`
}

// ELF configures the comparison of exported ELF symbols of matched
// package pairs (this repo's package and the reference's).
type ELF struct {
	// Enabled turns the comparison on.
	Enabled bool `yaml:"enabled"`
	// Concurrency is how many package pairs are compared at once (>= 1).
	Concurrency int `yaml:"concurrency"`
}

// ABIPkgDiff configures running libabigail's abipkgdiff on matched
// package pairs, when the tool is installed.
type ABIPkgDiff struct {
	// Enabled turns it on; it needs a compat reference.
	Enabled bool `yaml:"enabled"`
	// Debuginfo names configured repos holding the debuginfo packages of
	// both sides. In YAML it is one string of comma-separated names
	// ("alma-debug, rhel-debug"); empty: none.
	Debuginfo RepoNames `yaml:"debuginfo"`
}

// RepoNames is a list of repo names written in YAML as one string of
// comma-separated names. Spaces around names are dropped.
type RepoNames []string

// String joins the names with ", ".
func (n RepoNames) String() string { return strings.Join(n, ", ") }

// ParseRepoNames splits a comma-separated list of names. An empty (or
// blank) string gives nil; empty items (",,", a trailing ",") are kept as
// "" so that Validate can report them.
func ParseRepoNames(s string) RepoNames {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out RepoNames
	for _, part := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(part))
	}
	return out
}

// Mode is a compat mode.
type Mode string

// The compat modes.
const (
	ModeOff      Mode = "off"
	ModeAnnotate Mode = "annotate"
	ModeFilter   Mode = "filter"
)

// Modes returns every valid Mode.
func Modes() []Mode { return []Mode{ModeOff, ModeAnnotate, ModeFilter} }

// The divergence classes (the fixed vocabulary of DESIGN.md).
const (
	ClassABIChanged     = "abi-changed"
	ClassABIExtended    = "abi-extended"
	ClassPatched        = "patched"
	ClassVersionDiffers = "version-differs"
	ClassNotInReference = "not-in-reference"
)

// Classes returns every valid class name.
func Classes() []string {
	return []string{ClassABIChanged, ClassABIExtended, ClassPatched, ClassVersionDiffers, ClassNotInReference}
}

// Per-repo defaults, used by Default and for keys a repo entry omits.
const (
	DefaultMetadataTTL = Duration(10 * time.Minute)
	DefaultTimeout     = Duration(30 * time.Second)
	DefaultMode        = ModeOff
	// DefaultMinRate is dnf's own default minrate.
	DefaultMinRate        = ByteSize(1000)
	DefaultELFConcurrency = 2
)

// DefaultAnnotate returns the classes annotated when compat.annotate is
// omitted.
func DefaultAnnotate() []string {
	return []string{ClassABIChanged, ClassABIExtended, ClassPatched}
}

// DefaultFilter returns the classes filtered when compat.filter is omitted.
func DefaultFilter() []string { return []string{ClassABIChanged} }

// DefaultLimits returns the limits used when the file omits them.
func DefaultLimits() Limits {
	return Limits{
		MaxMetadataSize:     512 * MiB,
		MaxRepomdSize:       8 * MiB,
		MaxDecompressedSize: 4 * GiB,
		MaxURLLength:        4096,
		MaxHeaderBytes:      16384,
		MaxXZDictionary:     64 * MiB,
		MaxZstdWindow:       8 * MiB,
		MaxXMLElement:       16 * MiB,
	}
}

// NewRepo returns a repo with the given name and URL and every other key at
// its per-repo default.
func NewRepo(name, url string) Repo {
	return Repo{
		Name:        name,
		URL:         url,
		MetadataTTL: DefaultMetadataTTL,
		Compat: Compat{
			Mode:     DefaultMode,
			Annotate: DefaultAnnotate(),
			Filter:   DefaultFilter(),
			ELF:      ELF{Enabled: true, Concurrency: DefaultELFConcurrency},
		},
		Timeout: DefaultTimeout,
		MinRate: DefaultMinRate,
	}
}

// Default returns the built-in configuration, the content of
// config.example.yaml: loopback listeners, storage in ./data bounded to
// 50GiB, and the public AlmaLinux, Rocky Linux and CentOS Stream
// repositories. Each call returns a fresh value.
func Default() Config {
	return Config{
		Listen:  "127.0.0.1:8080",
		Admin:   Admin{Listen: "127.0.0.1:8081"},
		Log:     Log{Level: LogInfo},
		Storage: Storage{Dir: "./data", MaxSize: 50 * GiB},
		Limits:  DefaultLimits(),
		Repos: []Repo{
			NewRepo("almalinux", "https://repo.almalinux.org/almalinux/"),
			NewRepo("rocky", "https://dl.rockylinux.org/pub/rocky/"),
			NewRepo("centos-stream", "https://mirror.stream.centos.org/"),
		},
	}
}

// Repo returns the repo with the given name.
func (c Config) Repo(name string) (Repo, bool) {
	for _, r := range c.Repos {
		if r.Name == name {
			return r, true
		}
	}
	return Repo{}, false
}

// Redacted returns a deep copy of c with secrets (admin token, passwords,
// header values) replaced by "REDACTED", for logs and the dashboard.
func (c Config) Redacted() Config {
	const mask = "REDACTED"
	c.RuleFiles = slices.Clone(c.RuleFiles)
	c.TrustedProxies = slices.Clone(c.TrustedProxies)
	c.Repos = slices.Clone(c.Repos)
	if c.Admin.Token != "" {
		c.Admin.Token = mask
	}
	for i := range c.Repos {
		r := &c.Repos[i]
		r.Mirrors = slices.Clone(r.Mirrors)
		r.Compat.Annotate = slices.Clone(r.Compat.Annotate)
		r.Compat.Filter = slices.Clone(r.Compat.Filter)
		r.Compat.VendorMarkers = slices.Clone(r.Compat.VendorMarkers)
		r.Compat.ABIPkgDiff.Debuginfo = slices.Clone(r.Compat.ABIPkgDiff.Debuginfo)
		if r.Password != "" {
			r.Password = mask
		}
		r.Headers = maps.Clone(r.Headers)
		for k := range r.Headers {
			r.Headers[k] = mask
		}
	}
	return c
}
