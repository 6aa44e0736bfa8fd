package metadata

// Rules files are a data format of DESIGN.md that admins write by hand, not
// dnfproxy's configuration, so they are parsed here rather than in
// internal/config. The parser walks yaml.v3's node tree instead of decoding
// with KnownFields: every problem must be reported at once with its file,
// rule index, rule name and key, which a decoder stopping at the first
// unknown field cannot do.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Rule is one known divergence, an entry of a rules file (DESIGN.md,
// "Known-divergence rules file").
type Rule struct {
	Name   string    `yaml:"name"`
	Match  RuleMatch `yaml:"match"`
	Class  Class     `yaml:"class,omitempty"` // empty means ClassABIChanged
	Reason string    `yaml:"reason"`
	Link   string    `yaml:"link,omitempty"`
}

// RuleMatch selects the packages a Rule applies to. Every field given must
// match.
type RuleMatch struct {
	Name    string   `yaml:"name"`              // glob (path.Match) on the package name; required
	Arch    []string `yaml:"arch,omitempty"`    // the package's arch is one of these
	Release string   `yaml:"release,omitempty"` // glob on the release
	EVR     string   `yaml:"evr,omitempty"`     // "<op> [epoch:]version[-release]", op one of = < <= > >=
}

// RuleError is one problem in a rules file. LoadRules, ParseRules and
// NewRuleSet return every problem they find, joined with errors.Join.
type RuleError struct {
	File  string // the file name as given; empty for rules built in Go
	Index int    // position in the file's rules list; -1 for the file as a whole
	Rule  string // the rule's name, when it has one
	Key   string // the key concerned, such as "match.evr"; empty for the whole rule or file
	Err   error
}

// Error formats e as
// `rules.yaml: rules[2] (openssl-fips): match.evr: ">== 1.0": unknown operator`.
func (e *RuleError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	if e.Index >= 0 {
		fmt.Fprintf(&b, "rules[%d]", e.Index)
		if e.Rule != "" {
			fmt.Fprintf(&b, " (%s)", e.Rule)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *RuleError) Unwrap() error { return e.Err }

// ruleClasses is the vocabulary of DESIGN.md.
var ruleClasses = []Class{ClassABIChanged, ClassABIExtended, ClassPatched, ClassVersionDiffers, ClassNotInReference}

// evrOperators are the comparisons a rule's match.evr may use.
var evrOperators = []string{"=", "<", "<=", ">", ">="}

// RuleSet is a validated, ordered list of rules. Its methods are safe for
// concurrent use; it never changes after it is built (reloading rules makes
// a new RuleSet). A nil *RuleSet holds no rules.
type RuleSet struct {
	rules   []compiledRule
	version string
}

type compiledRule struct {
	Rule
	op  string // "" when the rule has no evr
	evr EVR
}

// sourcedRule is a rule with where it came from, for error messages.
type sourcedRule struct {
	Rule
	file  string
	index int
}

// LoadRules reads the rules files at paths, in order, and builds one
// RuleSet of their rules in file order. Rule names must be unique across all
// files. Every problem in every file is reported; errors name the file, the
// rule and the key. With no paths it returns an empty RuleSet.
func LoadRules(paths ...string) (*RuleSet, error) {
	var all []sourcedRule
	var errs []error
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			if pe, ok := err.(*fs.PathError); ok {
				err = fmt.Errorf("cannot %s: %w", pe.Op, pe.Err)
			}
			errs = append(errs, &RuleError{File: p, Index: -1, Err: err})
			continue
		}
		rules, perrs := parseRules(p, data)
		all = append(all, rules...)
		errs = append(errs, perrs...)
	}
	rs, rerrs := newRuleSet(all)
	if errs = append(errs, rerrs...); len(errs) > 0 {
		return nil, joinRuleErrors(errs, paths)
	}
	return rs, nil
}

// ParseRules parses one rules file; file names it in errors. The YAML is
// strict: unknown keys, repeated keys, aliases and more than one document
// are errors. A rule without a class gets ClassABIChanged. It returns the
// rules only when the whole file is valid (names unique within the file);
// otherwise it returns every problem, each a *RuleError, joined.
func ParseRules(file string, data []byte) ([]Rule, error) {
	rules, errs := parseRules(file, data)
	rs, rerrs := newRuleSet(rules)
	if errs = append(errs, rerrs...); len(errs) > 0 {
		return nil, joinRuleErrors(errs, []string{file})
	}
	return rs.Rules(), nil
}

// joinRuleErrors joins errs in the order a reader expects: by file (in the
// order of files), then by rule, file-level problems first.
func joinRuleErrors(errs []error, files []string) error {
	rank := func(err error) (int, int) {
		var re *RuleError
		if !errors.As(err, &re) {
			return len(files), -1
		}
		f := slices.Index(files, re.File)
		if f < 0 {
			f = len(files)
		}
		return f, re.Index
	}
	slices.SortStableFunc(errs, func(a, b error) int {
		fa, ia := rank(a)
		fb, ib := rank(b)
		if fa != fb {
			return fa - fb
		}
		return ia - ib
	})
	return errors.Join(errs...)
}

// NewRuleSet validates rules built in Go (as ParseRules validates a file)
// and returns them as a RuleSet, in order.
func NewRuleSet(rules ...Rule) (*RuleSet, error) {
	src := make([]sourcedRule, len(rules))
	for i, r := range rules {
		src[i] = sourcedRule{Rule: r, index: i}
	}
	rs, errs := newRuleSet(src)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rs, nil
}

// newRuleSet checks and compiles rules; it returns the problems unjoined.
func newRuleSet(rules []sourcedRule) (*RuleSet, []error) {
	rs := &RuleSet{}
	var errs []error
	seen := map[string]sourcedRule{}
	for _, r := range rules {
		c, rerrs := compileRule(r)
		errs = append(errs, rerrs...)
		if r.Name != "" {
			if prev, dup := seen[r.Name]; dup {
				where := fmt.Sprintf("rules[%d]", prev.index)
				if prev.file != r.file {
					where = prev.file + ": " + where
				}
				errs = append(errs, r.errorf("name", "%q is also the name of %s", r.Name, where))
			} else {
				seen[r.Name] = r
			}
		}
		rs.rules = append(rs.rules, c)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	rs.version = rulesVersion(rs.rules)
	return rs, nil
}

func (r sourcedRule) errorf(key, format string, args ...any) *RuleError {
	return &RuleError{File: r.file, Index: r.index, Rule: r.Name, Key: key, Err: fmt.Errorf(format, args...)}
}

// compileRule checks the content of a rule and prepares it for matching.
func compileRule(r sourcedRule) (compiledRule, []error) {
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, r.errorf(key, format, args...)) }

	if strings.TrimSpace(r.Name) == "" {
		bad("name", "required")
	} else if msg := checkText(r.Name); msg != "" {
		bad("name", "%q: %s", r.Name, msg)
	}
	if r.Match.Name == "" {
		bad("match.name", "required")
	} else if msg := checkGlob(r.Match.Name); msg != "" {
		bad("match.name", "%q: %s", r.Match.Name, msg)
	}
	for i, a := range r.Match.Arch {
		if a == "" || strings.IndexFunc(a, isSpaceOrControl) >= 0 {
			bad(fmt.Sprintf("match.arch[%d]", i), "%q: must be a non-empty word", a)
		}
	}
	if r.Match.Release != "" {
		if msg := checkGlob(r.Match.Release); msg != "" {
			bad("match.release", "%q: %s", r.Match.Release, msg)
		}
	}
	c := compiledRule{Rule: r.Rule}
	c.Match.Arch = slices.Clone(r.Match.Arch)
	if r.Match.EVR != "" {
		op, evr, err := parseEVRCondition(r.Match.EVR)
		if err != nil {
			bad("match.evr", "%q: %v", r.Match.EVR, err)
		}
		c.op, c.evr = op, evr
	}
	if c.Class == "" {
		c.Class = ClassABIChanged
	}
	if !slices.Contains(ruleClasses, c.Class) {
		bad("class", "%q: unknown class (one of %s)", c.Class, strings.Join(ruleClasses, ", "))
	}
	// A folded YAML string (reason: >) ends with a newline that is not
	// part of the reason.
	c.Reason = strings.TrimSpace(r.Reason)
	if c.Reason == "" {
		bad("reason", "required")
	} else if msg := checkText(c.Reason); msg != "" {
		bad("reason", "%q: %s", c.Reason, msg)
	}
	if r.Link != "" {
		if u, err := url.Parse(r.Link); err != nil || u.Scheme == "" || u.Host == "" || strings.IndexFunc(r.Link, isSpaceOrControl) >= 0 {
			bad("link", "%q: not an absolute URL", r.Link)
		}
	}
	return c, errs
}

// checkText returns why s cannot appear in a one-line annotation, or "".
// Reasons and names end up in primary.xml, where control characters are not
// even valid XML.
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "must be one line without control characters"
	}
	return ""
}

// checkGlob returns why pattern is not a usable path.Match glob, or "".
func checkGlob(pattern string) string {
	if strings.IndexFunc(pattern, isSpaceOrControl) >= 0 {
		return "must not contain spaces or control characters"
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return "invalid glob"
	}
	return ""
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// parseEVRCondition parses "<op> EVR"; spaces around the operator are
// optional.
func parseEVRCondition(s string) (string, EVR, error) {
	s = strings.TrimSpace(s)
	end := strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune("<>=!", r) })
	if end < 0 {
		end = len(s)
	}
	op := s[:end]
	switch {
	case op == "":
		return "", EVR{}, fmt.Errorf("missing operator (one of %s)", strings.Join(evrOperators, " "))
	case !slices.Contains(evrOperators, op):
		return "", EVR{}, errors.New("unknown operator")
	}
	evr, err := ParseEVR(strings.TrimSpace(s[end:]))
	if err != nil {
		return "", EVR{}, err
	}
	return op, evr, nil
}

// Match returns a Finding for every rule that matches p, in rule order.
func (rs *RuleSet) Match(p PackageID) []Finding {
	if rs == nil {
		return nil
	}
	var out []Finding
	for i := range rs.rules {
		r := &rs.rules[i]
		if r.matches(p) {
			out = append(out, Finding{Class: r.Class, Reason: r.Reason, Link: r.Link, Rule: r.Name})
		}
	}
	return out
}

func (r *compiledRule) matches(p PackageID) bool {
	if ok, _ := path.Match(r.Match.Name, p.Name); !ok {
		return false
	}
	if len(r.Match.Arch) > 0 && !slices.Contains(r.Match.Arch, p.Arch) {
		return false
	}
	if r.Match.Release != "" {
		if ok, _ := path.Match(r.Match.Release, p.Release); !ok {
			return false
		}
	}
	if r.op == "" {
		return true
	}
	c := CompareEVR(p.EVR(), r.evr)
	switch r.op {
	case "=":
		return c == 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return false
}

// Rules returns a copy of the rules, in order, with their default class
// filled in.
func (rs *RuleSet) Rules() []Rule {
	if rs == nil {
		return nil
	}
	out := make([]Rule, len(rs.rules))
	for i, r := range rs.rules {
		out[i] = r.Rule
		out[i].Match.Arch = slices.Clone(r.Match.Arch)
	}
	return out
}

// Len returns the number of rules.
func (rs *RuleSet) Len() int {
	if rs == nil {
		return 0
	}
	return len(rs.rules)
}

// Version identifies what the rules say: the hex SHA-256 of a canonical
// encoding of the rules in order (default class filled in). The same rules
// give the same version across runs and machines, whatever the files'
// names, comments or layout; any change to a rule, or to their order,
// changes it. Rewritten metadata is cached under it.
func (rs *RuleSet) Version() string {
	if rs == nil {
		return rulesVersion(nil)
	}
	return rs.version
}

func rulesVersion(rules []compiledRule) string {
	h := sha256.New()
	io.WriteString(h, "dnfproxy rules v1\n")
	enc := json.NewEncoder(h)
	for _, r := range rules {
		// json.Encoder writes struct fields in declaration order and
		// escapes strings the same way every time.
		if err := enc.Encode(r.Rule); err != nil {
			panic(err) // strings and slices of strings always encode
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Decide turns a package's findings into the action of a view in mode
// ("annotate" or "filter"; any other mode, such as "off" or "raw", decides
// ActionNone). In filter mode the package is dropped (ActionFilter) when a
// finding's class is in filter. Otherwise, in both modes, it is annotated
// when a finding's class is in annotate. The Decision's Findings are those
// of the classes acted on, in their order; with ActionNone there are none.
func Decide(findings []Finding, annotate, filter []Class, mode string) Decision {
	if mode == string(ActionFilter) {
		if fs := findingsOf(findings, filter); len(fs) > 0 {
			return Decision{Action: ActionFilter, Findings: fs}
		}
	}
	if mode == string(ActionFilter) || mode == string(ActionAnnotate) {
		if fs := findingsOf(findings, annotate); len(fs) > 0 {
			return Decision{Action: ActionAnnotate, Findings: fs}
		}
	}
	return Decision{Action: ActionNone}
}

func findingsOf(findings []Finding, classes []Class) []Finding {
	var out []Finding
	for _, f := range findings {
		if slices.Contains(classes, f.Class) {
			out = append(out, f)
		}
	}
	return out
}

// parseRules reads the YAML of one rules file into rules, reporting
// structural problems (syntax, unknown or repeated keys, wrong types). The
// content of each rule is checked later, by compileRule.
func parseRules(file string, data []byte) ([]sourcedRule, []error) {
	fileErr := func(key string, err error) []error {
		return []error{&RuleError{File: file, Index: -1, Key: key, Err: err}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty file: no rules
		}
		return nil, fileErr("", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fileErr("", errors.New("more than one YAML document"))
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(root) {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fileErr("", fmt.Errorf("line %d: want a mapping with the key \"rules\"", root.Line))
	}
	var errs []error
	var list *yaml.Node
	for k, v := range mappingPairs(root, func(key string, err error) { errs = append(errs, fileErr(key, err)...) }) {
		if k != "rules" {
			errs = append(errs, fileErr(k, errors.New("unknown key"))...)
			continue
		}
		list = v
	}
	if list == nil || isNull(list) {
		return nil, errs
	}
	if list.Kind != yaml.SequenceNode {
		return nil, append(errs, fileErr("rules", fmt.Errorf("line %d: must be a list of rules", list.Line))...)
	}
	var rules []sourcedRule
	for i, item := range list.Content {
		r := sourcedRule{file: file, index: i}
		// A rule with structural problems is still returned, so that
		// its content is checked too; the caller reports all of them.
		rerrs, isRule := decodeRule(&r, item)
		errs = append(errs, rerrs...)
		if isRule {
			rules = append(rules, r)
		}
	}
	return rules, errs
}

// decodeRule fills r from a rule's YAML node. It reports whether n is a
// rule at all (a mapping).
func decodeRule(r *sourcedRule, n *yaml.Node) ([]error, bool) {
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, r.errorf(key, format, args...)) }
	if n.Kind != yaml.MappingNode {
		bad("", "line %d: a rule must be a mapping", n.Line)
		return errs, false
	}
	// The name first, so that every error can mention it.
	for k, v := range mappingPairs(n, nil) {
		if k == "name" && v.Kind == yaml.ScalarNode && !isNull(v) {
			r.Name = v.Value
		}
	}
	scalar := func(key string, v *yaml.Node, dst *string) {
		switch {
		case isNull(v):
		case v.Kind == yaml.ScalarNode:
			*dst = v.Value
		default:
			bad(key, "line %d: must be a string", v.Line)
		}
	}
	for k, v := range mappingPairs(n, func(key string, err error) { bad(key, "%v", err) }) {
		switch k {
		case "name":
			scalar(k, v, &r.Name)
		case "class":
			scalar(k, v, &r.Class)
		case "reason":
			scalar(k, v, &r.Reason)
		case "link":
			scalar(k, v, &r.Link)
		case "match":
			if isNull(v) {
				continue
			}
			if v.Kind != yaml.MappingNode {
				bad(k, "line %d: must be a mapping", v.Line)
				continue
			}
			for mk, mv := range mappingPairs(v, func(key string, err error) { bad("match."+key, "%v", err) }) {
				key := "match." + mk
				switch mk {
				case "name":
					scalar(key, mv, &r.Match.Name)
				case "release":
					scalar(key, mv, &r.Match.Release)
				case "evr":
					scalar(key, mv, &r.Match.EVR)
				case "arch":
					if isNull(mv) {
						continue
					}
					if mv.Kind != yaml.SequenceNode {
						bad(key, "line %d: must be a list of strings", mv.Line)
						continue
					}
					for _, a := range mv.Content {
						if a.Kind != yaml.ScalarNode || isNull(a) {
							bad(key, "line %d: must be a list of strings", a.Line)
							continue
						}
						r.Match.Arch = append(r.Match.Arch, a.Value)
					}
				default:
					bad(key, "unknown key")
				}
			}
		default:
			bad(k, "unknown key")
		}
	}
	return errs, true
}

// mappingPairs iterates over the key/value pairs of a mapping node with a
// plain string key, reporting other keys, repeated keys and aliases to
// report (when not nil) and skipping them.
func mappingPairs(n *yaml.Node, report func(key string, err error)) func(yield func(string, *yaml.Node) bool) {
	return func(yield func(string, *yaml.Node) bool) {
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			var err error
			switch {
			case k.Kind != yaml.ScalarNode:
				err = fmt.Errorf("line %d: key must be a string", k.Line)
			case seen[k.Value]:
				err = fmt.Errorf("line %d: repeated key", k.Line)
			case v.Kind == yaml.AliasNode || k.Kind == yaml.AliasNode:
				err = fmt.Errorf("line %d: YAML aliases are not supported", v.Line)
			}
			if err != nil {
				if report != nil {
					report(k.Value, err)
				}
				continue
			}
			seen[k.Value] = true
			if !yield(k.Value, v) {
				return
			}
		}
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}
