package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// writeConfig writes content to a file in a fresh directory and returns
// its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dnfproxy.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clearEnv makes sure the environment of the test runner does not leak in.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, o := range envOverrides {
		t.Setenv(o.env, "")
	}
}

func TestExampleEqualsDefault(t *testing.T) {
	clearEnv(t)
	got, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatalf("Load(config.example.yaml): %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("config.example.yaml differs from Default():\n got %#v\nwant %#v", got, want)
	}
}

func TestDefault(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	var names []string
	for _, r := range d.Repos {
		names = append(names, r.Name+"="+r.URL)
	}
	want := "almalinux=https://repo.almalinux.org/almalinux/ rocky=https://dl.rockylinux.org/pub/rocky/ centos-stream=https://mirror.stream.centos.org/"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("default repos = %s, want %s", got, want)
	}
	// Each call is independent: changing one result does not change the next.
	d.Repos[0].Compat.Annotate[0] = "changed"
	if Default().Repos[0].Compat.Annotate[0] != ClassABIChanged {
		t.Error("Default() shares slices between calls")
	}
}

func TestLoadWithoutFile(t *testing.T) {
	clearEnv(t)
	got, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("Load(\"\") = %#v, want Default()", got)
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		str  string
	}{
		{"50GiB", 50 * GiB, "50GiB"},
		{"512MiB", 512 * MiB, "512MiB"},
		{"8MiB", 8 * MiB, "8MiB"},
		{"4gib", 4 * GiB, "4GiB"},
		{"2 TiB", 2 * TiB, "2TiB"},
		{"1KiB", KiB, "1KiB"},
		{"1536KiB", 1536 * KiB, "1536KiB"},
		{"1.5GiB", 1536 * MiB, "1536MiB"},
		{"1KB", 1000, "1KB"},
		{"3mb", 3_000_000, "3MB"},
		{"2GB", 2_000_000_000, "2GB"},
		{"1TB", 1_000_000_000_000, "1TB"},
		{"1023", 1023, "1023"},
		{"1048576", MiB, "1MiB"},
		{"123", 123, "123"},
		{"7B", 7, "7"},
		{"0", 0, "0"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseByteSize(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
			if s := got.String(); s != tc.str {
				t.Errorf("String() = %q, want %q", s, tc.str)
			}
			// YAML round trip.
			out, err := yaml.Marshal(struct{ S ByteSize }{got})
			if err != nil {
				t.Fatal(err)
			}
			var back struct{ S ByteSize }
			if err := yaml.Unmarshal(out, &back); err != nil || back.S != got {
				t.Errorf("round trip via %q = %d, %v; want %d", out, back.S, err, got)
			}
		})
	}
	for _, in := range []string{"", "GiB", "-1GiB", "12 parsecs", "1.2.3MiB", "0.5", "9999999TiB", "1e3"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestByteSizeYAMLInteger(t *testing.T) {
	var v struct{ S ByteSize }
	if err := yaml.Unmarshal([]byte("s: 4096\n"), &v); err != nil || v.S != 4*KiB {
		t.Errorf("s: 4096 gave %d, %v", v.S, err)
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"10m", 10 * time.Minute, "10m"},
		{"30s", 30 * time.Second, "30s"},
		{"1h", time.Hour, "1h"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"90m", 90 * time.Minute, "1h30m"},
		{"1h0m5s", time.Hour + 5*time.Second, "1h0m5s"},
		{"1m30s", 90 * time.Second, "1m30s"},
		{"250ms", 250 * time.Millisecond, "250ms"},
		{"0s", 0, "0s"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var v struct{ D Duration }
			if err := yaml.Unmarshal([]byte("d: "+tc.in+"\n"), &v); err != nil || v.D.D() != tc.want {
				t.Fatalf("d: %s gave %v, %v; want %v", tc.in, v.D.D(), err, tc.want)
			}
			if s := v.D.String(); s != tc.str {
				t.Errorf("String() = %q, want %q", s, tc.str)
			}
			out, err := yaml.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if want := "d: " + tc.str + "\n"; string(out) != want {
				t.Errorf("Marshal = %q, want %q", out, want)
			}
			var back struct{ D Duration }
			if err := yaml.Unmarshal(out, &back); err != nil || back.D != v.D {
				t.Errorf("round trip via %q = %v, %v", out, back.D, err)
			}
		})
	}
	for _, in := range []string{"600", "ten minutes", "[10m]"} {
		var v struct{ D Duration }
		if err := yaml.Unmarshal([]byte("d: "+in+"\n"), &v); err == nil {
			t.Errorf("d: %s gave %v, want an error", in, v.D)
		}
	}
}

func TestLoadYAMLErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          []string // substrings of the error, after "<file>:"
	}{
		{"unknown top-level key", "listen: \"127.0.0.1:8080\"\nlissten: x\n",
			[]string{":2: lissten: unknown key (valid keys here: listen, trusted_proxies, admin, log, storage, signing, limits, rule_files, repos)"}},
		{"unknown nested key", "admin:\n  listen: \"127.0.0.1:8081\"\n  tokn: x\n",
			[]string{":3: admin.tokn: unknown key (valid keys here: listen, token)"}},
		{"unknown repo key", "repos:\n  - name: a\n    url: https://a.example/\n  - name: b\n    url: https://b.example/\n    compat:\n      mod: filter\n",
			[]string{":7: repos[1].compat.mod: unknown key (valid keys here: mode, reference, annotate, filter, vendor_markers, elf, abipkgdiff)"}},
		{"unknown keys all reported", "listn: a\nstorage:\n  size: 1\n",
			[]string{":1: listn: unknown key", ":3: storage.size: unknown key"}},
		{"bad size", "storage:\n  max_size: lots\n",
			[]string{":2: storage.max_size: invalid size \"lots\""}},
		{"bad duration", "repos:\n  - name: a\n    url: https://a.example/\n    metadata_ttl: 600\n",
			[]string{":4: repos[0].metadata_ttl: invalid duration \"600\""}},
		{"string for int", "limits:\n  max_url_length: long\n",
			[]string{":2: limits.max_url_length: expected an integer, got a string \"long\""}},
		{"list for string", "listen: [a, b]\n",
			[]string{":1: listen: expected a string, got a list"}},
		{"long value shown whole", "limits:\n  max_header_bytes: lots of header bytes\n",
			[]string{":2: limits.max_header_bytes: expected an integer, got a string \"lots of header bytes\""}},
		{"list for repo name", "repos:\n  - name: [x]\n    url: https://a.example/\n",
			[]string{":2: repos[0].name: expected a string, got a list"}},
		{"mapping in mirrors", "repos:\n  - name: a\n    url: https://a.example/\n    mirrors: [https://b.example/, {c: d}]\n",
			[]string{":4: repos[0].mirrors[1]: expected a string, got a mapping"}},
		{"bad mode type", "repos:\n  - name: a\n    url: https://a.example/\n    compat:\n      mode: [filter]\n",
			[]string{":5: repos[0].compat.mode: expected a string, got a list"}},
		{"mapping for list", "rule_files: {a: b}\n",
			[]string{":1: rule_files: expected a list of strings, got a mapping"}},
		{"scalar for repos", "repos: everything\n",
			[]string{":1: repos: expected a list of repos, got a string \"everything\""}},
		{"duplicate key", "listen: a\nlisten: b\n",
			[]string{`:2: mapping key "listen" already defined at line 1`}},
		{"syntax error", "listen: \"127.0.0.1:8080\nadmin: [\n",
			[]string{"dnfproxy.yaml:"}},
		{"two documents", "listen: \"127.0.0.1:8080\"\n---\nlisten: \"127.0.0.1:9090\"\n",
			[]string{"only one YAML document"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			path := writeConfig(t, tc.content)
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path) {
				t.Errorf("error does not start with the file name %s:\n%s", path, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("Load(missing) = %v, want an error starting with %s", err, path)
	}
}

func TestLoadEmptyFileIsDefault(t *testing.T) {
	clearEnv(t)
	got, err := Load(writeConfig(t, "# nothing here\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("empty file gave %#v, want Default()", got)
	}
}

func TestReposReplaceDefaults(t *testing.T) {
	clearEnv(t)
	c, err := Load(writeConfig(t, `
storage:
  max_size: 1GiB
repos:
  - name: alma9
    url: https://mirror.example/alma   # no trailing slash: Load adds it
    mirrors: [http://other.example/alma]
  - name: rhel9
    url: https://cdn.example/rhel/
    metadata_ttl: 1h
    timeout: 2m
    compat:
      annotate: []
      filter: [abi-changed, patched]
  - name: alma9-compat
    url: https://mirror.example/alma/
    compat:
      mode: annotate
      reference: rhel9
`))
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	elf := ELF{Enabled: true, Concurrency: 2}
	want := Config{
		Listen:  d.Listen,
		Admin:   d.Admin,
		Log:     d.Log,
		Storage: Storage{Dir: "./data", MaxSize: GiB},
		Limits:  d.Limits,
		Repos: []Repo{
			{
				Name: "alma9", URL: "https://mirror.example/alma/", Mirrors: []string{"http://other.example/alma/"},
				MetadataTTL: Duration(10 * time.Minute), Timeout: Duration(30 * time.Second), MinRate: 1000,
				Compat: Compat{Mode: ModeOff, Annotate: []string{"abi-changed", "abi-extended", "patched"}, Filter: []string{"abi-changed"}, ELF: elf},
			},
			{
				Name: "rhel9", URL: "https://cdn.example/rhel/",
				MetadataTTL: Duration(time.Hour), Timeout: Duration(2 * time.Minute), MinRate: 1000,
				Compat: Compat{Mode: ModeOff, Annotate: nil, Filter: []string{"abi-changed", "patched"}, ELF: elf},
			},
			{
				Name: "alma9-compat", URL: "https://mirror.example/alma/",
				MetadataTTL: Duration(10 * time.Minute), Timeout: Duration(30 * time.Second), MinRate: 1000,
				Compat: Compat{Mode: ModeAnnotate, Reference: "rhel9", Annotate: []string{"abi-changed", "abi-extended", "patched"}, Filter: []string{"abi-changed"}, ELF: elf},
			},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load =\n%#v\nwant\n%#v", c, want)
	}
	if got := c.Repos[0].Bases(); !reflect.DeepEqual(got, []string{"https://mirror.example/alma/", "http://other.example/alma/"}) {
		t.Errorf("Bases() = %q", got)
	}
}

func TestLoadAdditions(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, `
trusted_proxies: [10.0.0.0/8]
log:
  level: debug
limits:
  max_xz_dictionary: 128MiB
repos:
  - name: stream
    metalink: "https://mirrors.example/metalink?repo=$root&arch=x86_64"
    minrate: 10KiB
    compat:
      elf:
        enabled: false          # concurrency keeps its default
  - name: stream-debug
    mirrorlist: "https://mirrors.example/mirrorlist?p=$root"
    minrate: 0
  - name: rebuild
    url: https://rebuild.example/
    compat:
      reference: stream
      vendor_markers: ['\.myorg\.\d+']
      elf:
        concurrency: 8
      abipkgdiff:
        enabled: true
        debuginfo: "stream-debug , stream"
`)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.TrustedProxies, []string{"10.0.0.0/8"}) || c.Log.Level != LogDebug || c.Limits.MaxXZDictionary != 128*MiB {
		t.Errorf("top level: trusted_proxies %q, log.level %q, max_xz_dictionary %s", c.TrustedProxies, c.Log.Level, c.Limits.MaxXZDictionary)
	}
	if c.Limits.MaxZstdWindow != 8*MiB || c.Limits.MaxXMLElement != 16*MiB {
		t.Errorf("omitted limits: %s %s", c.Limits.MaxZstdWindow, c.Limits.MaxXMLElement)
	}
	s, sd, rb := c.Repos[0], c.Repos[1], c.Repos[2]
	if s.URL != "" || len(s.Bases()) != 0 || s.MinRate != 10*KiB || s.Compat.ELF != (ELF{Enabled: false, Concurrency: 2}) {
		t.Errorf("stream = %#v", s)
	}
	if got, want := s.MetalinkURL("/9-stream/BaseOS/x86_64/os/"), "https://mirrors.example/metalink?repo=9-stream/BaseOS/x86_64/os&arch=x86_64"; got != want {
		t.Errorf("MetalinkURL = %q, want %q", got, want)
	}
	if got := sd.MirrorlistURL("a/b"); got != "https://mirrors.example/mirrorlist?p=a/b" || sd.MinRate != 0 || sd.MetalinkURL("a/b") != "" {
		t.Errorf("stream-debug: MirrorlistURL = %q, minrate %d", got, sd.MinRate)
	}
	wantCompat := Compat{
		Mode: ModeOff, Reference: "stream", Annotate: DefaultAnnotate(), Filter: DefaultFilter(),
		VendorMarkers: []string{`\.myorg\.\d+`},
		ELF:           ELF{Enabled: true, Concurrency: 8},
		ABIPkgDiff:    ABIPkgDiff{Enabled: true, Debuginfo: RepoNames{"stream-debug", "stream"}},
	}
	if !reflect.DeepEqual(rb.Compat, wantCompat) || rb.MinRate != DefaultMinRate {
		t.Errorf("rebuild.compat = %#v\nwant %#v", rb.Compat, wantCompat)
	}
}

func TestLoadAdditionErrors(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"debuginfo as a list", "repos:\n  - name: a\n    url: https://a.example/\n    compat:\n      abipkgdiff:\n        debuginfo: [a]\n",
			`:6: repos[0].compat.abipkgdiff.debuginfo: expected one string of comma-separated repo names`},
		{"elf enabled not bool", "repos:\n  - name: a\n    url: https://a.example/\n    compat:\n      elf:\n        enabled: maybe\n",
			`:6: repos[0].compat.elf.enabled: expected a boolean, got a string "maybe"`},
		{"unknown log key", "log:\n  lvl: debug\n", `:2: log.lvl: unknown key (valid keys here: level)`},
		{"cycle named by line", "repos:\n  - name: a\n    url: https://a.example/\n    compat: {reference: b}\n  - name: b\n    url: https://b.example/\n    compat: {reference: a}\n",
			`:4: repos[0].compat.reference: reference cycle`},
		{"no url, metalink or mirrorlist", "repos:\n  - name: a\n    mirrors: [https://m.example/]\n",
			`:2: repos[0].url: must not be empty unless metalink or mirrorlist is set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			path := writeConfig(t, tc.content)
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), path+tc.want) {
				t.Errorf("Load = %v\nwant an error containing %s%s", err, path, tc.want)
			}
		})
	}
}

func TestParseLogLevel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want slog.Level
	}{{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"WARN", slog.LevelWarn}, {" error ", slog.LevelError}} {
		if got, err := ParseLogLevel(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseLogLevel(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "warning", "trace", "0"} {
		if _, err := ParseLogLevel(in); !errors.Is(err, ErrLogLevel) {
			t.Errorf("ParseLogLevel(%q) = %v, want ErrLogLevel", in, err)
		}
	}
	if LogWarn.Slog() != slog.LevelWarn || LogLevel("bogus").Slog() != slog.LevelInfo {
		t.Error("LogLevel.Slog")
	}
}

func TestOmittedReposKeepDefaults(t *testing.T) {
	clearEnv(t)
	c, err := Load(writeConfig(t, "admin:\n  token: s3cret\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Admin.Token = "s3cret"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load = %#v, want defaults with the token", c)
	}
}

func TestEnvOverrides(t *testing.T) {
	path := writeConfig(t, "listen: \"127.0.0.1:9000\"\nadmin:\n  token: from-file\n")
	for _, tc := range []struct {
		env  map[string]string
		want func(*Config)
	}{
		{map[string]string{}, func(c *Config) { c.Listen = "127.0.0.1:9000"; c.Admin.Token = "from-file" }},
		{map[string]string{EnvAdminToken: "from-env"}, func(c *Config) { c.Listen = "127.0.0.1:9000"; c.Admin.Token = "from-env" }},
		{map[string]string{EnvListen: ":7000", EnvAdminListen: "127.0.0.1:7001", EnvStorageDir: "/var/cache/dnfproxy"},
			func(c *Config) {
				c.Listen, c.Admin.Listen, c.Storage.Dir = ":7000", "127.0.0.1:7001", "/var/cache/dnfproxy"
				c.Admin.Token = "from-file"
			}},
	} {
		t.Run(strings.Join(sortedKeys(tc.env), ","), func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load = %#v\nwant %#v", got, want)
			}
		})
	}
}

func TestEnvErrorNamesVariable(t *testing.T) {
	clearEnv(t)
	t.Setenv(EnvListen, "nonsense")
	_, err := Load("")
	if err == nil || !strings.Contains(err.Error(), `listen: "nonsense" is not host:port`) || !strings.Contains(err.Error(), "(set by DNFPROXY_LISTEN)") {
		t.Errorf("Load with bad DNFPROXY_LISTEN = %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"listen not host:port", func(c *Config) { c.Listen = "8080" }, []string{`listen: "8080" is not host:port`}},
		{"listen bad port", func(c *Config) { c.Listen = "localhost:http" }, []string{`listen: "localhost:http": port "http" is not a number`}},
		{"admin listen bad", func(c *Config) { c.Admin.Listen = "" }, []string{`admin.listen: "" is not host:port`}},
		{"admin same as listen", func(c *Config) { c.Admin.Listen = c.Listen }, []string{`admin.listen: "127.0.0.1:8080" must differ from listen`}},
		{"admin wildcard same port", func(c *Config) { c.Admin.Listen = ":8080" }, []string{`admin.listen: ":8080" must differ from listen`}},
		{"storage dir empty", func(c *Config) { c.Storage.Dir = "" }, []string{"storage.dir: must not be empty"}},
		{"max size zero", func(c *Config) { c.Storage.MaxSize = 0 }, []string{"storage.max_size: must be greater than 0"}},
		{"limits", func(c *Config) { c.Limits = Limits{} }, []string{
			"limits.max_metadata_size: must be greater than 0", "limits.max_repomd_size: must be greater than 0",
			"limits.max_decompressed_size: must be greater than 0", "limits.max_url_length: must be greater than 0",
			"limits.max_header_bytes: must be greater than 0", "limits.max_xz_dictionary: must be greater than 0",
			"limits.max_zstd_window: must be greater than 0", "limits.max_xml_element: must be greater than 0"}},
		{"empty rule file", func(c *Config) { c.RuleFiles = []string{""} }, []string{"rule_files[0]: must not be empty"}},
		{"no repos", func(c *Config) { c.Repos = nil }, []string{"repos: at least one repo is required"}},
		{"empty name", func(c *Config) { c.Repos[1].Name = "" }, []string{"repos[1].name: must not be empty"}},
		{"duplicate name", func(c *Config) { c.Repos[2].Name = "almalinux" }, []string{`repos[2].name: "almalinux" is already the name of repos[0]`}},
		{"name with @", func(c *Config) { c.Repos[0].Name = "alma@raw" }, []string{`repos[0].name: "alma@raw" may only contain`}},
		{"name with /", func(c *Config) { c.Repos[0].Name = "alma/9" }, []string{`repos[0].name: "alma/9" may only contain`}},
		{"name dotdot", func(c *Config) { c.Repos[0].Name = ".." }, []string{`repos[0].name: ".." may only contain`}},
		{"url empty", func(c *Config) { c.Repos[0].URL = "" }, []string{"repos[0].url: must not be empty"}},
		{"url relative", func(c *Config) { c.Repos[0].URL = "repo.almalinux.org/almalinux/" }, []string{"repos[0].url: \"repo.almalinux.org/almalinux/\" must be an absolute http:// or https:// URL"}},
		{"url ftp", func(c *Config) { c.Repos[0].URL = "ftp://x.example/" }, []string{"repos[0].url: \"ftp://x.example/\" must be an absolute"}},
		{"url no slash", func(c *Config) { c.Repos[1].URL = "https://x.example/pub" }, []string{"repos[1].url: \"https://x.example/pub\" must end with '/'"}},
		{"url query", func(c *Config) { c.Repos[1].URL = "https://x.example/?a=b" }, []string{"repos[1].url: \"https://x.example/?a=b\" must not have a query"}},
		{"url credentials", func(c *Config) { c.Repos[1].URL = "https://u:p@x.example/" }, []string{"repos[1].url: \"https://u:xxxxx@x.example/\" must not contain credentials"}},
		{"mirror bad", func(c *Config) { c.Repos[2].Mirrors = []string{"https://ok.example/", "http:///"} }, []string{`repos[2].mirrors[1]: "http:///" has no host`}},
		{"ttl zero", func(c *Config) { c.Repos[0].MetadataTTL = 0 }, []string{"repos[0].metadata_ttl: must be greater than 0"}},
		{"timeout negative", func(c *Config) { c.Repos[0].Timeout = -1 }, []string{"repos[0].timeout: must be greater than 0"}},
		{"mode typo", func(c *Config) { c.Repos[1].Compat.Mode = "fitler" }, []string{`repos[1].compat.mode: "fitler" is not one of off, annotate, filter`}},
		{"reference self", func(c *Config) { c.Repos[0].Compat.Reference = "almalinux" }, []string{`repos[0].compat.reference: "almalinux" is this repo itself`}},
		{"reference unknown", func(c *Config) { c.Repos[0].Compat.Reference = "rhel" }, []string{`repos[0].compat.reference: "rhel" is not the name of a repo`}},
		{"annotate class", func(c *Config) { c.Repos[0].Compat.Annotate = []string{"patched", "abi-change"} }, []string{`repos[0].compat.annotate[1]: "abi-change" is not one of abi-changed, abi-extended, patched, version-differs, not-in-reference`}},
		{"filter class", func(c *Config) { c.Repos[2].Compat.Filter = []string{"bad"} }, []string{`repos[2].compat.filter[0]: "bad" is not one of`}},
		{"cert without key", func(c *Config) { c.Repos[0].ClientCert = "cert.pem" }, []string{"repos[0].client_key: must be set together with client_cert"}},
		{"key without cert", func(c *Config) { c.Repos[0].ClientKey = "key.pem" }, []string{"repos[0].client_cert: must be set together with client_key"}},
		{"password without user", func(c *Config) { c.Repos[0].Password = "x" }, []string{"repos[0].username: must be set when password is set"}},
		{"bad header", func(c *Config) { c.Repos[0].Headers = map[string]string{"X Token": "a", "X-Ok": "a\r\nb"} }, []string{
			`repos[0].headers.X Token: "X Token" is not a valid HTTP header name`, "repos[0].headers.X-Ok: value must not contain CR, LF or NUL"}},
		{"trusted proxy", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "10.0.0.0/33", "proxy.example"} }, []string{
			`trusted_proxies[1]: "10.0.0.0/33" is not a CIDR`, `trusted_proxies[2]: "proxy.example" is not a CIDR`}},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, []string{`log.level: "verbose" is not one of debug, info, warn, error`}},
		{"log level empty", func(c *Config) { c.Log.Level = "" }, []string{`log.level: "" is not one of`}},
		{"url empty without lists", func(c *Config) { c.Repos[0].URL = ""; c.Repos[0].Mirrors = []string{"https://m.example/"} }, []string{
			"repos[0].url: must not be empty unless metalink or mirrorlist is set"}},
		{"metalink relative", func(c *Config) { c.Repos[0].URL = ""; c.Repos[0].Metalink = "mirrors.example/metalink?repo=$root" }, []string{
			`repos[0].metalink: "mirrors.example/metalink?repo=$root" must be an absolute http:// or https:// URL`}},
		{"mirrorlist no host", func(c *Config) { c.Repos[1].Mirrorlist = "https:///$root" }, []string{`repos[1].mirrorlist: "https:///$root" has no host`}},
		{"metalink and mirrorlist", func(c *Config) {
			c.Repos[2].Metalink, c.Repos[2].Mirrorlist = "https://a.example/metalink?p=$root", "https://a.example/mirrorlist?p=$root"
		}, []string{"repos[2].mirrorlist: must not be set together with metalink"}},
		{"minrate negative", func(c *Config) { c.Repos[0].MinRate = -1 }, []string{"repos[0].minrate: must be 0 (off) or more bytes per second, got -1"}},
		{"vendor markers", func(c *Config) { c.Repos[0].Compat.VendorMarkers = []string{`\.ok\.\d+`, `\.bad(`, ""} }, []string{
			"repos[0].compat.vendor_markers[1]: \"\\\\.bad(\" is not a regular expression: missing closing )",
			"repos[0].compat.vendor_markers[2]: must not be empty"}},
		{"elf concurrency", func(c *Config) { c.Repos[1].Compat.ELF.Concurrency = 0 }, []string{"repos[1].compat.elf.concurrency: must be at least 1, got 0"}},
		{"abipkgdiff without reference", func(c *Config) { c.Repos[0].Compat.ABIPkgDiff.Enabled = true }, []string{
			"repos[0].compat.abipkgdiff.enabled: needs compat.reference"}},
		{"debuginfo names", func(c *Config) { c.Repos[0].Compat.ABIPkgDiff.Debuginfo = ParseRepoNames("rocky, alma-debug,") }, []string{
			`repos[0].compat.abipkgdiff.debuginfo: "alma-debug" is not the name of a repo`,
			`repos[0].compat.abipkgdiff.debuginfo: "rocky, alma-debug, " has an empty name`}},
		{"reference cycle of two", func(c *Config) {
			c.Repos[0].Compat.Reference, c.Repos[1].Compat.Reference = "rocky", "almalinux"
		}, []string{`repos[0].compat.reference: reference cycle (a repo cannot be compared against a repo compared against it): ` +
			`repos[0].compat.reference: "rocky" (repos[1]) -> repos[1].compat.reference: "almalinux" (repos[0])`}},
		{"reference cycle of three", func(c *Config) {
			c.Repos[0].Compat.Reference, c.Repos[1].Compat.Reference, c.Repos[2].Compat.Reference = "centos-stream", "almalinux", "rocky"
		}, []string{`repos[0].compat.reference: reference cycle (a repo cannot be compared against a repo compared against it): ` +
			`repos[0].compat.reference: "centos-stream" (repos[2]) -> repos[2].compat.reference: "rocky" (repos[1]) -> repos[1].compat.reference: "almalinux" (repos[0])`}},
		{"reference chain into a cycle", func(c *Config) {
			c.Repos = append(c.Repos, NewRepo("extra", "https://e.example/"))
			c.Repos[3].Compat.Reference = "rocky" // not in the cycle, leads into it
			c.Repos[1].Compat.Reference, c.Repos[2].Compat.Reference = "centos-stream", "rocky"
		}, []string{`repos[1].compat.reference: reference cycle`}},
		{"every problem at once", func(c *Config) {
			c.Listen = "x"
			c.Storage.Dir = ""
			c.Repos[1].Compat.Mode = "fitler"
			c.Repos[2].URL = "nope"
		}, []string{"listen: ", "storage.dir: ", "repos[1].compat.mode: ", "repos[2].url: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.change(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(lines), len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%s", w, err)
				}
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
	}{
		{"any port", func(c *Config) { c.Listen, c.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0" }},
		{"all interfaces", func(c *Config) { c.Listen, c.Admin.Listen = ":80", "[::1]:8081" }},
		{"same port other hosts", func(c *Config) { c.Listen, c.Admin.Listen = "10.0.0.1:8080", "127.0.0.1:8080" }},
		{"http mirror", func(c *Config) { c.Repos[0].Mirrors = []string{"http://mirror.example/almalinux/"} }},
		{"reference another", func(c *Config) { c.Repos[0].Compat = Compat{Mode: ModeFilter, Reference: "rocky"} }},
		{"all classes", func(c *Config) { c.Repos[0].Compat.Annotate = Classes() }},
		{"metalink instead of url", func(c *Config) {
			c.Repos[0].URL = ""
			c.Repos[0].Metalink = "https://mirrors.example/metalink?repo=$root&arch=x86_64"
			c.Repos[1].Mirrorlist = "http://mirrors.example/mirrorlist/$root"
		}},
		{"trusted proxies", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "fd00::/8", "192.0.2.1", "::1"} }},
		{"log levels", func(c *Config) { c.Log.Level = LogDebug }},
		{"minrate off", func(c *Config) { c.Repos[0].MinRate = 0 }},
		{"elf off with no concurrency", func(c *Config) { c.Repos[0].Compat.ELF = ELF{} }},
		{"reference chain", func(c *Config) {
			c.Repos[0].Compat.Reference, c.Repos[1].Compat.Reference = "rocky", "centos-stream"
		}},
		{"two repos on one reference", func(c *Config) {
			c.Repos[0].Compat.Reference, c.Repos[1].Compat.Reference = "centos-stream", "centos-stream"
		}},
		{"abipkgdiff", func(c *Config) {
			c.Repos[0].Compat.Reference = "rocky"
			c.Repos[0].Compat.ABIPkgDiff = ABIPkgDiff{Enabled: true, Debuginfo: ParseRepoNames("centos-stream, rocky")}
		}},
		{"vendor markers", func(c *Config) { c.Repos[0].Compat.VendorMarkers = []string{`\.myorg\.\d+`} }},
		{"auth", func(c *Config) {
			c.Repos[0].Username, c.Repos[0].Password = "u", "p"
			c.Repos[0].Headers = map[string]string{"X-Auth-Token": "t"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.change(&c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestLoadValidationErrorsHaveFileLineAndKey(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, `listen: "127.0.0.1:8080"
admin:
  listen: "127.0.0.1:8080"
repos:
  - name: alma
    url: https://a.example/
  - name: alma
    url: https://b.example/
    compat:
      mode: fitler
      annotate: [patched, abi-chnaged]
`)
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	want := []string{
		path + `:3: admin.listen: "127.0.0.1:8080" must differ from listen ("127.0.0.1:8080"): the admin API needs its own port`,
		path + `:7: repos[1].name: "alma" is already the name of repos[0]`,
		path + `:10: repos[1].compat.mode: "fitler" is not one of off, annotate, filter`,
		path + `:11: repos[1].compat.annotate[1]: "abi-chnaged" is not one of abi-changed, abi-extended, patched, version-differs, not-in-reference`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("error:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	files := map[string][]byte{
		"rules.yaml": []byte("rules: []\n"),
		"ca.pem":     certPEM,
		"cert.pem":   certPEM,
		"key.pem":    keyPEM,
		"junk.pem":   []byte("not a certificate\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }

	good := Default()
	good.RuleFiles = []string{p("rules.yaml")}
	good.Repos[0].CAFile = p("ca.pem")
	good.Repos[0].ClientCert, good.Repos[0].ClientKey = p("cert.pem"), p("key.pem")
	if err := good.CheckFiles(); err != nil {
		t.Errorf("CheckFiles() on readable files = %v", err)
	}

	bad := Default()
	bad.RuleFiles = []string{p("rules.yaml"), p("missing.yaml")}
	bad.Signing.KeyFile = dir
	bad.Repos[0].CAFile = p("junk.pem")
	bad.Repos[1].ClientCert, bad.Repos[1].ClientKey = p("cert.pem"), p("junk.pem")
	err := bad.CheckFiles()
	if err == nil {
		t.Fatal("CheckFiles() = nil, want errors")
	}
	for _, w := range []string{
		"rule_files[1]: open " + p("missing.yaml") + ": no such file or directory",
		"signing.key_file: " + dir + " is a directory",
		"repos[0].ca_file: " + p("junk.pem") + " holds no PEM certificate",
		"repos[1].client_cert: " + p("cert.pem") + " and " + p("junk.pem") + " are not a usable key pair",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%s", w, err)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 4 {
		t.Errorf("got %d problems, want 4:\n%s", n, err)
	}

	// Load runs CheckFiles.
	clearEnv(t)
	path := writeConfig(t, "rule_files: ["+p("missing.yaml")+"]\n")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path+":1: rule_files[0]: open ") {
		t.Errorf("Load with a missing rule file = %v", err)
	}
}

// selfSigned returns a throwaway certificate and its key, PEM-encoded.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "dnfproxy test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// TestFileRepoMatchesRepo keeps the file-side structs in step with the
// public ones: a key added to Repo must be readable from a file.
func TestFileRepoMatchesRepo(t *testing.T) {
	for _, tc := range []struct{ public, file reflect.Type }{
		{reflect.TypeFor[Repo](), reflect.TypeFor[fileRepo]()},
		{reflect.TypeFor[Compat](), reflect.TypeFor[fileCompat]()},
		{reflect.TypeFor[ELF](), reflect.TypeFor[fileELF]()},
		{reflect.TypeFor[Config](), reflect.TypeFor[fileConfig]()},
	} {
		if got, want := yamlKeys(tc.file), yamlKeys(tc.public); !reflect.DeepEqual(got, want) {
			t.Errorf("%v keys %v, %v keys %v", tc.file, got, tc.public, want)
		}
	}
}

// TestMarshalRoundTrip checks that a Config written as YAML loads back
// unchanged, so tools can generate configuration files.
func TestMarshalRoundTrip(t *testing.T) {
	clearEnv(t)
	c := Default()
	c.Admin.Token = "t"
	c.Repos[0].Mirrors = []string{"https://m.example/almalinux/"}
	c.Repos[0].Headers = map[string]string{"X-Token": "abc"}
	c.Repos[1].Compat = Compat{Mode: ModeFilter, Reference: "almalinux", Filter: []string{ClassPatched}}
	c.Repos[2].MetadataTTL = Duration(90 * time.Second)
	c.Repos[2].URL, c.Repos[2].Metalink = "", "https://mirrors.example/metalink?repo=$root"
	c.Repos[2].MinRate = 0
	c.Repos[0].Compat.VendorMarkers = []string{`\.myorg\.\d+`}
	c.Repos[0].Compat.ELF = ELF{Enabled: false, Concurrency: 7}
	c.Repos[1].Compat.ABIPkgDiff = ABIPkgDiff{Enabled: true, Debuginfo: RepoNames{"almalinux", "centos-stream"}}
	c.TrustedProxies = []string{"10.0.0.0/8"}
	c.Log.Level = LogWarn
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(writeConfig(t, string(out)))
	if err != nil {
		t.Fatalf("Load(Marshal(c)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip changed the config:\n got %#v\nwant %#v\nvia\n%s", got, c, out)
	}
}

func TestRedacted(t *testing.T) {
	c := Default()
	c.Admin.Token = "secret-token"
	c.Repos[0].Username, c.Repos[0].Password = "user", "secret-password"
	c.Repos[0].Headers = map[string]string{"Authorization": "Bearer secret-header"}
	r := c.Redacted()
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "secret") {
		t.Errorf("Redacted() still holds a secret:\n%s", out)
	}
	if c.Repos[0].Headers["Authorization"] != "Bearer secret-header" || c.Admin.Token != "secret-token" {
		t.Error("Redacted() changed the original")
	}
	if r.Repos[0].Username != "user" {
		t.Error("Redacted() hid the user name")
	}
}

func TestRepoLookup(t *testing.T) {
	c := Default()
	if r, ok := c.Repo("rocky"); !ok || r.URL != "https://dl.rockylinux.org/pub/rocky/" {
		t.Errorf("Repo(rocky) = %v, %v", r, ok)
	}
	if _, ok := c.Repo("fedora"); ok {
		t.Error("Repo(fedora) found")
	}
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"50GiB", "1.5 gb", "123", "0.5KiB", "9223372036854775807", "8EiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseByteSize(%q) = %d, negative", s, v)
		}
		back, err := ParseByteSize(v.String())
		if err != nil || back != v {
			t.Fatalf("ParseByteSize(%q) = %d, but %q parses as %d, %v", s, v, v.String(), back, err)
		}
	})
}

// FuzzDecode checks that no file makes decoding panic, and that every
// error names the file.
func FuzzDecode(f *testing.F) {
	data, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("repos:\n  - name: [x]\n    mirrors: [a, {b: c}]\n"))
	f.Add([]byte("listen: &a x\nadmin: {listen: *a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, err := decode("f.yaml", data); err != nil && !strings.HasPrefix(err.Error(), "f.yaml") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}
