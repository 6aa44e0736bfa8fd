package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Environment variables that override the file, applied by Load after the
// file and before validation. A variable that is unset or empty changes
// nothing.
const (
	EnvListen      = "DNFPROXY_LISTEN"
	EnvAdminListen = "DNFPROXY_ADMIN_LISTEN"
	EnvAdminToken  = "DNFPROXY_ADMIN_TOKEN"
	EnvStorageDir  = "DNFPROXY_STORAGE_DIR"
)

var envOverrides = []struct {
	env, key string
	field    func(*Config) *string
}{
	{EnvListen, "listen", func(c *Config) *string { return &c.Listen }},
	{EnvAdminListen, "admin.listen", func(c *Config) *string { return &c.Admin.Listen }},
	{EnvAdminToken, "admin.token", func(c *Config) *string { return &c.Admin.Token }},
	{EnvStorageDir, "storage.dir", func(c *Config) *string { return &c.Storage.Dir }},
}

// Load returns the configuration in the YAML file at path, or the built-in
// Default() when path is "".
//
// Order: defaults, then the file, then the environment (DNFPROXY_LISTEN,
// DNFPROXY_ADMIN_LISTEN, DNFPROXY_ADMIN_TOKEN, DNFPROXY_STORAGE_DIR), then
// Validate and CheckFiles.
//
// Top-level keys the file omits keep their defaults. A "repos" list in the
// file replaces the default repos entirely; within one repo entry, omitted
// keys take the per-repo defaults (metadata_ttl 10m, timeout 30s, compat
// mode off, the DefaultAnnotate and DefaultFilter classes). An explicitly
// empty list (annotate: []) means none. A url or mirror without a trailing
// "/" gets one. Empty lists and maps are returned as nil.
//
// Every error line starts with the file name (and the line when known):
//
//	dnfproxy.yaml:12: repos[1].compat.mode: "fitler" is not one of off, annotate, filter
//
// All problems are reported at once, joined with errors.Join.
func Load(path string) (Config, error) {
	src := path
	c := Default()
	var idx *keyIndex
	if path == "" {
		src = "built-in configuration"
	} else {
		data, err := os.ReadFile(path)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return Config{}, fmt.Errorf("%s: cannot read configuration: %w", path, err)
		}
		c, idx, err = decode(path, data)
		if err != nil {
			return Config{}, err
		}
	}
	fromEnv := applyEnv(&c)
	var errs []error
	for _, e := range unjoin(errors.Join(c.Validate(), c.CheckFiles())) {
		errs = append(errs, locate(src, e, idx, fromEnv))
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// applyEnv applies the environment overrides and returns, for each key it
// set, the variable that set it.
func applyEnv(c *Config) map[string]string {
	set := map[string]string{}
	for _, o := range envOverrides {
		if v := os.Getenv(o.env); v != "" {
			*o.field(c) = v
			set[o.key] = o.env
		}
	}
	return set
}

// fileConfig is Config as a file spells it. Repos is a pointer so that an
// omitted list (nil) differs from an empty one.
type fileConfig struct {
	Listen         string      `yaml:"listen"`
	TrustedProxies []string    `yaml:"trusted_proxies"`
	Admin          Admin       `yaml:"admin"`
	Log            Log         `yaml:"log"`
	Storage        Storage     `yaml:"storage"`
	Signing        Signing     `yaml:"signing"`
	Limits         Limits      `yaml:"limits"`
	RuleFiles      []string    `yaml:"rule_files"`
	Repos          *[]fileRepo `yaml:"repos"`
}

// fileRepo is Repo as a file spells it: keys with a non-zero default are
// pointers so that "omitted" can be told from "zero". A test keeps its
// keys equal to Repo's.
type fileRepo struct {
	Name        string            `yaml:"name"`
	URL         string            `yaml:"url"`
	Mirrors     []string          `yaml:"mirrors"`
	Metalink    string            `yaml:"metalink"`
	Mirrorlist  string            `yaml:"mirrorlist"`
	MetadataTTL *Duration         `yaml:"metadata_ttl"`
	Compat      fileCompat        `yaml:"compat"`
	Timeout     *Duration         `yaml:"timeout"`
	MinRate     *ByteSize         `yaml:"minrate"`
	CAFile      string            `yaml:"ca_file"`
	ClientCert  string            `yaml:"client_cert"`
	ClientKey   string            `yaml:"client_key"`
	Username    string            `yaml:"username"`
	Password    string            `yaml:"password"`
	Headers     map[string]string `yaml:"headers"`
}

type fileCompat struct {
	Mode          *Mode      `yaml:"mode"`
	Reference     string     `yaml:"reference"`
	Annotate      *[]string  `yaml:"annotate"`
	Filter        *[]string  `yaml:"filter"`
	VendorMarkers []string   `yaml:"vendor_markers"`
	ELF           fileELF    `yaml:"elf"`
	ABIPkgDiff    ABIPkgDiff `yaml:"abipkgdiff"`
}

type fileELF struct {
	Enabled     *bool `yaml:"enabled"`
	Concurrency *int  `yaml:"concurrency"`
}

func (f fileRepo) repo() Repo {
	r := NewRepo(f.Name, withSlash(f.URL))
	for _, m := range f.Mirrors {
		r.Mirrors = append(r.Mirrors, withSlash(m))
	}
	if f.MetadataTTL != nil {
		r.MetadataTTL = *f.MetadataTTL
	}
	if f.Timeout != nil {
		r.Timeout = *f.Timeout
	}
	if f.MinRate != nil {
		r.MinRate = *f.MinRate
	}
	r.Metalink, r.Mirrorlist = f.Metalink, f.Mirrorlist
	if f.Compat.Mode != nil {
		r.Compat.Mode = *f.Compat.Mode
	}
	r.Compat.Reference = f.Compat.Reference
	if f.Compat.Annotate != nil {
		r.Compat.Annotate = nilIfEmpty(*f.Compat.Annotate)
	}
	if f.Compat.Filter != nil {
		r.Compat.Filter = nilIfEmpty(*f.Compat.Filter)
	}
	r.Compat.VendorMarkers = nilIfEmpty(f.Compat.VendorMarkers)
	if f.Compat.ELF.Enabled != nil {
		r.Compat.ELF.Enabled = *f.Compat.ELF.Enabled
	}
	if f.Compat.ELF.Concurrency != nil {
		r.Compat.ELF.Concurrency = *f.Compat.ELF.Concurrency
	}
	r.Compat.ABIPkgDiff = f.Compat.ABIPkgDiff
	r.CAFile, r.ClientCert, r.ClientKey = f.CAFile, f.ClientCert, f.ClientKey
	r.Username, r.Password = f.Username, f.Password
	if len(f.Headers) > 0 {
		r.Headers = f.Headers
	}
	return r
}

func withSlash(u string) string {
	if u != "" && !strings.HasSuffix(u, "/") {
		return u + "/"
	}
	return u
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// decode parses one configuration file over the defaults. It does not
// validate.
func decode(name string, data []byte) (Config, *keyIndex, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Config{}, nil, syntaxError(name, err)
	}
	idx := indexKeys(&root)

	d := Default()
	fc := fileConfig{
		Listen:    d.Listen,
		Log:       d.Log,
		Admin:     d.Admin,
		Storage:   d.Storage,
		Signing:   d.Signing,
		Limits:    d.Limits,
		RuleFiles: d.RuleFiles,
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&fc)
	var te *yaml.TypeError
	switch {
	case errors.Is(err, io.EOF): // empty file: all defaults
	case errors.As(err, &te):
		errs := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			errs = append(errs, errors.New(describeTypeError(name, msg, idx)))
		}
		return Config{}, nil, errors.Join(errs...)
	case err != nil:
		return Config{}, nil, syntaxError(name, err)
	default:
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			return Config{}, nil, fmt.Errorf("%s:%d: only one YAML document is allowed", name, extra.Line)
		}
	}

	c := Config{
		Listen:         fc.Listen,
		TrustedProxies: nilIfEmpty(fc.TrustedProxies),
		Log:            fc.Log,
		Admin:          fc.Admin,
		Storage:        fc.Storage,
		Signing:        fc.Signing,
		Limits:         fc.Limits,
		RuleFiles:      nilIfEmpty(fc.RuleFiles),
		Repos:          d.Repos,
	}
	if fc.Repos != nil {
		c.Repos = nil
		for _, fr := range *fc.Repos {
			c.Repos = append(c.Repos, fr.repo())
		}
	}
	return c, idx, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxError rewrites "yaml: line 3: msg" as "name:3: msg".
func syntaxError(name string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s:%s: %s", name, m[1], msg[len(m[0]):])
	}
	return fmt.Errorf("%s: %s", name, strings.TrimPrefix(msg, "yaml: "))
}

var (
	reUnknown = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)
	reType    = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
	reOwn     = regexp.MustCompile(`^line (\d+), column (\d+): (.*)$`) // see typeError
	reLine    = regexp.MustCompile(`^line (\d+): (.*)$`)
)

// fileTypes are the struct types a file maps onto, by the name yaml.v3
// uses in its messages, to list the valid keys next to an unknown one.
var fileTypes = map[string]reflect.Type{}

func init() {
	for _, v := range []any{fileConfig{}, Admin{}, Log{}, Storage{}, Signing{}, Limits{}, fileRepo{}, fileCompat{}, fileELF{}, ABIPkgDiff{}} {
		t := reflect.TypeOf(v)
		fileTypes[t.String()] = t
	}
}

// yamlKeys returns the yaml keys of a struct type, in field order.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if k, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// describeTypeError turns one of yaml.v3's per-value messages into
// "name:line: key: what is wrong".
func describeTypeError(name, msg string, idx *keyIndex) string {
	if m := reUnknown.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		key := idx.keyNamed(line, m[2])
		if key == "" {
			key = m[2]
		}
		s := fmt.Sprintf("%s:%d: %s: unknown key", name, line, key)
		if t, ok := fileTypes[m[3]]; ok {
			s += " (valid keys here: " + strings.Join(yamlKeys(t), ", ") + ")"
		}
		return s
	}
	if m := reType.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		v := idx.valueOf(line, m[2], m[3])
		got := describeTag(m[2])
		if v.kind == yaml.ScalarNode {
			got += " " + strconv.Quote(v.value) // yaml.v3 shortens long values
		} else if m[3] != "" {
			got += " " + strconv.Quote(m[3])
		}
		return fmt.Sprintf("%s:%d: %sexpected %s, got %s", name, line, keyPrefix(v.path), describeGoType(m[4]), got)
	}
	if m := reOwn.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		column, _ := strconv.Atoi(m[2])
		return fmt.Sprintf("%s:%d: %s%s", name, line, keyPrefix(idx.keyAt(line, column)), m[3])
	}
	if m := reLine.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s:%s: %s", name, m[1], m[2])
	}
	return name + ": " + msg
}

func keyPrefix(key string) string {
	if key == "" {
		return ""
	}
	return key + ": "
}

func describeTag(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "null"
	}
	return tag
}

func describeGoType(t string) string {
	t = strings.TrimPrefix(t, "*")
	switch t {
	case "string", "config.Mode", "config.LogLevel":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64":
		return "an integer"
	case "[]string":
		return "a list of strings"
	case "map[string]string":
		return "a mapping of names to strings"
	case "[]config.fileRepo":
		return "a list of repos"
	}
	if _, ok := fileTypes[t]; ok {
		return "a mapping"
	}
	return t
}

// keyIndex records where keys and values are in a file, to name the key
// of a problem that yaml.v3 only reports by line.
type keyIndex struct {
	keys   map[string]int // key path ("repos[1].compat.mode") -> line of its key
	values []valueNode    // every value, in document order
}

// valueNode is one value of the file and the key path it is the value of.
type valueNode struct {
	path         string
	line, column int
	kind         yaml.Kind
	value        string
}

func indexKeys(root *yaml.Node) *keyIndex {
	idx := &keyIndex{keys: map[string]int{}}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n.Kind != yaml.DocumentNode && path != "" {
			idx.values = append(idx.values, valueNode{path, n.Line, n.Column, n.Kind, n.Value})
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				if _, dup := idx.keys[p]; !dup {
					idx.keys[p] = n.Content[i].Line
				}
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				idx.keys[p] = c.Line
				walk(c, p)
			}
		}
	}
	walk(root, "")
	return idx
}

// line returns the line of key, or of its nearest ancestor in the file.
func (idx *keyIndex) line(key string) (int, bool) {
	if idx == nil {
		return 0, false
	}
	for key != "" {
		if l, ok := idx.keys[key]; ok {
			return l, true
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0, false
}

// keyNamed returns the path of the key called name on line.
func (idx *keyIndex) keyNamed(line int, name string) string {
	var found []string
	for k, l := range idx.keys {
		if l == line && (k == name || strings.HasSuffix(k, "."+name)) {
			found = append(found, k)
		}
	}
	slices.Sort(found)
	if len(found) == 0 {
		return ""
	}
	return found[0]
}

// keyAt returns the key of the value at line and column.
func (idx *keyIndex) keyAt(line, column int) string {
	for _, v := range idx.values {
		if v.line == line && v.column == column {
			return v.path
		}
	}
	return ""
}

// valueOf finds the value on line that yaml.v3 describes by its tag and
// (possibly shortened) text: the only match, else the deepest when the
// matches are nested in one another ("- name: [x]"). It returns the zero
// valueNode when it cannot tell.
func (idx *keyIndex) valueOf(line int, tag, text string) valueNode {
	kind := yaml.ScalarNode
	switch tag {
	case "!!seq":
		kind = yaml.SequenceNode
	case "!!map":
		kind = yaml.MappingNode
	}
	var found []valueNode
	for _, v := range idx.values {
		if v.line != line || v.kind != kind {
			continue
		}
		if kind == yaml.ScalarNode {
			if short, ok := strings.CutSuffix(text, "..."); ok && len(v.value) > 10 {
				if !strings.HasPrefix(v.value, short) {
					continue
				}
			} else if v.value != text {
				continue
			}
		}
		found = append(found, v)
	}
	if len(found) == 0 {
		return valueNode{}
	}
	deepest := found[0]
	for _, v := range found {
		if len(v.path) > len(deepest.path) {
			deepest = v
		}
	}
	for _, v := range found {
		if !isAncestorOrSelf(v.path, deepest.path) {
			return valueNode{}
		}
	}
	return deepest
}

func isAncestorOrSelf(a, b string) bool {
	return a == b || strings.HasPrefix(b, a) && (b[len(a)] == '.' || b[len(a)] == '[')
}

// locate prefixes one validation error with the source and, when the key
// came from the file, its line; a key set by the environment names the
// variable instead.
func locate(src string, err error, idx *keyIndex, fromEnv map[string]string) error {
	var ke *keyError
	if !errors.As(err, &ke) {
		return fmt.Errorf("%s: %w", src, err)
	}
	if env, ok := fromEnv[ke.key]; ok {
		return fmt.Errorf("%s: %w (set by %s)", src, err, env)
	}
	if l, ok := idx.line(ke.key); ok {
		return fmt.Errorf("%s:%d: %w", src, l, err)
	}
	return fmt.Errorf("%s: %w", src, err)
}

// unjoin returns the errors joined in err (nil: none).
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}
