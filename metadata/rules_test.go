package metadata_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// Each testdata/rules/bad-*.yaml lists, in "# want: " comment lines, the
// exact error lines ParseRules must return for it.
func TestParseRulesInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/rules/bad-*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/rules/bad-*.yaml")
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			data := readFile(t, file)
			var want []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					want = append(want, w)
				}
			}
			if len(want) == 0 {
				t.Fatal("no # want: lines")
			}
			rules, err := metadata.ParseRules(name, data)
			if err == nil {
				t.Fatalf("ParseRules accepted it: %+v", rules)
			}
			if rules != nil {
				t.Errorf("ParseRules returned rules with an error: %+v", rules)
			}
			got := strings.Split(err.Error(), "\n")
			if !slices.Equal(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
			}
			var re *metadata.RuleError
			if !errors.As(err, &re) || re.File != name {
				t.Errorf("error is not a *RuleError naming %s: %#v", name, err)
			}
			// LoadRules reports the same, naming the path.
			_, lerr := metadata.LoadRules(file)
			if lerr == nil || !strings.HasPrefix(lerr.Error(), file+": ") {
				t.Errorf("LoadRules(%s) = %v", file, lerr)
			}
		})
	}
}

func TestParseRulesValid(t *testing.T) {
	for _, c := range []struct {
		file  string
		names []string
	}{
		{"design-example.yaml", []string{"example-openssl-fips"}},
		{"valid-all-keys.yaml", []string{"alma-patched", "rocky-patched", "kernel-kabi", "openssl-fips", "glibc-extended", "extra-tool", "version-bump", "123"}},
		{"valid-empty.yaml", nil},
		{"valid-comment-only.yaml", nil},
	} {
		t.Run(c.file, func(t *testing.T) {
			rules, err := metadata.ParseRules(c.file, readFile(t, filepath.Join("testdata/rules", c.file)))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range rules {
				names = append(names, r.Name)
			}
			if !slices.Equal(names, c.names) {
				t.Errorf("rule names %q, want %q", names, c.names)
			}
		})
	}

	rules, err := metadata.ParseRules("design-example.yaml", readFile(t, "testdata/rules/design-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := metadata.Rule{
		Name: "example-openssl-fips",
		Match: metadata.RuleMatch{
			Name: "openssl*", Arch: []string{"x86_64"}, Release: "*.alma*", EVR: ">= 1:3.0.7-24.el9",
		},
		Class:  metadata.ClassABIChanged,
		Reason: "why it diverges",
		Link:   "https://...",
	}
	if !reflect.DeepEqual(rules, []metadata.Rule{want}) {
		t.Errorf("design example:\n%+v\nwant\n%+v", rules, want)
	}

	// The default class, and a folded reason's final newline is not part of it.
	rules, err = metadata.ParseRules("x.yaml", []byte("rules:\n- name: a\n  match: {name: a}\n  reason: >\n    one\n    line\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rules[0].Class != metadata.ClassABIChanged {
		t.Errorf("default class %q", rules[0].Class)
	}
}

func TestLoadRules(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	b := filepath.Join(dir, "b.yaml")
	writeRulesFile(t, a, "rules:\n- name: one\n  match: {name: a}\n  reason: r\n- name: two\n  match: {name: b}\n  reason: r\n")
	writeRulesFile(t, b, "rules:\n- name: three\n  match: {name: c}\n  reason: r\n")

	rs, err := metadata.LoadRules(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rs.Rules() {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"one", "two", "three"}) || rs.Len() != 3 {
		t.Errorf("rules %q", names)
	}

	// Names are unique across files, and every file's problems are told.
	writeRulesFile(t, b, "rules:\n- name: three\n  match: {name: c}\n  reason: r\n- name: one\n  match: {name: c}\n  reason: r\n")
	bad := filepath.Join(dir, "bad.yaml")
	writeRulesFile(t, bad, "rules:\n- name: x\n  match: {name: c}\n")
	_, err = metadata.LoadRules(a, b, filepath.Join(dir, "missing.yaml"), bad)
	want := []string{
		b + `: rules[1] (one): name: "one" is also the name of ` + a + ": rules[0]",
		filepath.Join(dir, "missing.yaml") + ": cannot open: no such file or directory",
		bad + ": rules[0] (x): reason: required",
	}
	if err == nil || !slices.Equal(strings.Split(err.Error(), "\n"), want) {
		t.Errorf("LoadRules errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}

	// No files: no rules, and still a version.
	rs, err = metadata.LoadRules()
	if err != nil || rs.Len() != 0 || rs.Match(metadata.PackageID{Name: "a"}) != nil || rs.Version() == "" {
		t.Errorf("LoadRules() = %+v, %v", rs, err)
	}
	var nilSet *metadata.RuleSet
	if nilSet.Version() != rs.Version() || nilSet.Match(metadata.PackageID{Name: "a"}) != nil {
		t.Error("a nil RuleSet differs from an empty one")
	}
}

func writeRulesFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNewRuleSet(t *testing.T) {
	_, err := metadata.NewRuleSet(
		metadata.Rule{Name: "a", Match: metadata.RuleMatch{Name: "a"}, Reason: "r"},
		metadata.Rule{Name: "a", Match: metadata.RuleMatch{Name: "[", EVR: "~ 1"}, Class: "x", Reason: "r"},
	)
	want := []string{
		`rules[1] (a): match.name: "[": invalid glob`,
		`rules[1] (a): match.evr: "~ 1": missing operator (one of = < <= > >=)`,
		`rules[1] (a): class: "x": unknown class (one of abi-changed, abi-extended, patched, version-differs, not-in-reference)`,
		`rules[1] (a): name: "a" is also the name of rules[0]`,
	}
	if err == nil || !slices.Equal(strings.Split(err.Error(), "\n"), want) {
		t.Errorf("NewRuleSet errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func rulePkg(nevra string) metadata.PackageID {
	// name-[epoch:]version-release.arch
	rest, arch, _ := strings.Cut(nevra, "@")
	i := strings.LastIndex(rest, "-")
	j := strings.LastIndex(rest[:i], "-")
	evr, err := metadata.ParseEVR(rest[j+1:])
	if err != nil {
		panic(err)
	}
	return metadata.PackageID{Name: rest[:j], Arch: arch, Epoch: evr.Epoch, Version: evr.Version, Release: evr.Release}
}

func TestRuleSetMatch(t *testing.T) {
	rs, err := metadata.LoadRules("testdata/rules/valid-all-keys.yaml", "testdata/rules/design-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pkg  string // name-[epoch:]version-release@arch
		want []string
	}{
		{"bash-5.1.8-6.el9@x86_64", []string{"123"}},
		{"bash-0:5.1.8-6.el9@x86_64", []string{"123"}},   // explicit epoch 0
		{"bash-1:5.1.8-6.el9@x86_64", nil},               // epoch 1 > 0:5.1.8
		{"bash-5.1.8~rc1-1.el9@x86_64", []string{"123"}}, // tilde: older
		{"bash-5.1.8^git1-1.el9@x86_64", nil},            // caret: newer
		{"bash-5.1.8-6.el9_2.alma.1@x86_64", []string{"alma-patched", "123"}},
		{"zlib-1.2.11-40.el9.rocky.0.1@x86_64", []string{"rocky-patched"}},
		{"zlib-1.2.11-40.el9@x86_64", nil},
		{"zlib-1.2.11-40.el9.almalinux@x86_64", []string{"alma-patched"}}, // the glob says "*.alma*"

		// Arch lists.
		{"kernel-5.14.0-284.el9@x86_64", []string{"kernel-kabi"}},
		{"kernel-core-5.14.0-284.el9@aarch64", []string{"kernel-kabi"}},
		{"kernel-5.14.0-284.el9@ppc64le", nil},
		{"kernel-5.14.0-362.el9@x86_64", nil},                     // not < itself
		{"kernel-5.14.0-362.el8@x86_64", []string{"kernel-kabi"}}, // release compared
		{"kernel-5.14.0-362.el9.alma.1@x86_64", []string{"alma-patched"}},

		// The release-less "=" matches any release of that version; a
		// full EVR only itself.
		{"openssl-libs-1:3.0.7-24.el9_2.alma.1@x86_64", []string{"alma-patched", "openssl-fips", "example-openssl-fips"}},
		{"openssl-libs-1:3.0.7-24.el9_2.alma.2@x86_64", []string{"alma-patched", "example-openssl-fips"}},
		{"openssl-libs-3.0.7-24.el9_2.alma.1@x86_64", []string{"alma-patched"}}, // epoch 0 < 1
		{"openssl-libs-1:3.0.7-24.el9_2.alma.1@i686", []string{"alma-patched", "openssl-fips"}},
		{"openssl-1:3.0.7-23.el9.alma.1@x86_64", []string{"alma-patched"}}, // < 24.el9
		{"openssl-1:3.0.8-1.el9.alma.1@x86_64", []string{"alma-patched", "example-openssl-fips"}},

		{"glibc-common-2.34-60.el9@x86_64", []string{"glibc-extended"}},
		{"glibc-2.34-60.el9@x86_64", nil}, // "glibc-[a-z]*" needs the dash
		{"glibc-devel-2.33-1.el9@x86_64", nil},
		{"glibc-devel-2.34~pre-1.el9@x86_64", nil},
		{"dnfpt-extra-1.0-1.el9@noarch", []string{"extra-tool"}},
		{"dnfpt-tool-2.0-1.el9@noarch", []string{"version-bump"}},
		{"dnfpt-tool-1.0-9.el9@noarch", nil}, // "> 1.0" with no release
	} {
		p := rulePkg(c.pkg)
		var got []string
		for _, f := range rs.Match(p) {
			got = append(got, f.Rule)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Match(%s) = %q, want %q", c.pkg, got, c.want)
		}
	}

	// A finding carries its rule's class, reason and link.
	fs := rs.Match(rulePkg("kernel-5.14.0-1.el9@x86_64"))
	want := []metadata.Finding{{
		Class:  metadata.ClassABIChanged,
		Reason: "kABI symbols differ from RHEL's build, so third-party kmods may not load.",
		Link:   "https://example.org/kabi",
		Rule:   "kernel-kabi",
	}}
	if !reflect.DeepEqual(fs, want) {
		t.Errorf("findings %+v, want %+v", fs, want)
	}
}

func TestRuleSetMatchOperators(t *testing.T) {
	for _, c := range []struct {
		evr     string
		matches []string // of the packages below
	}{
		{"= 1.0", []string{"1.0-1", "1.0-2"}},
		{"= 1.0-1", []string{"1.0-1"}},
		{"< 1.0", []string{"0.5-1", "1.0~rc1-1"}},
		{"<= 1.0-1", []string{"0.5-1", "1.0~rc1-1", "1.0-1"}},
		{"> 1.0-1", []string{"1.0-2", "1.0^1-1", "1.1-1", "1:0.5-1"}},
		{">= 1.0", []string{"1.0-1", "1.0-2", "1.0^1-1", "1.1-1", "1:0.5-1"}},
		{">= 1:0", []string{"1:0.5-1"}},
		{">=1.1", []string{"1.1-1", "1:0.5-1"}}, // no spaces needed
		{"  <   0:1.0~rc1  ", []string{"0.5-1"}},
	} {
		rs, err := metadata.NewRuleSet(metadata.Rule{Name: "r", Match: metadata.RuleMatch{Name: "p", EVR: c.evr}, Reason: "r"})
		if err != nil {
			t.Fatalf("evr %q: %v", c.evr, err)
		}
		var got []string
		for _, v := range []string{"0.5-1", "1.0~rc1-1", "1.0-1", "1.0-2", "1.0^1-1", "1.1-1", "1:0.5-1"} {
			if len(rs.Match(rulePkg("p-"+v+"@noarch"))) > 0 {
				got = append(got, v)
			}
		}
		if !slices.Equal(got, c.matches) {
			t.Errorf("evr %q matches %q, want %q", c.evr, got, c.matches)
		}
	}
}

func TestRuleSetVersion(t *testing.T) {
	base := "rules:\n- name: a\n  match: {name: \"openssl*\", arch: [x86_64], release: \"*.alma*\", evr: \">= 1.0\"}\n  class: patched\n  reason: r\n  link: https://x/\n- name: b\n  match: {name: b}\n  reason: r\n"
	version := func(text string) string {
		t.Helper()
		rules, err := metadata.ParseRules("v.yaml", []byte(text))
		if err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		rs, err := metadata.NewRuleSet(rules...)
		if err != nil {
			t.Fatal(err)
		}
		return rs.Version()
	}
	v := version(base)
	if len(v) != 64 || strings.Trim(v, "0123456789abcdef") != "" {
		t.Fatalf("version %q is not a hex SHA-256", v)
	}
	// The same rules, whatever the file looks like or is called.
	for _, same := range []string{
		base,
		"# a comment\n" + base,
		"rules:\n  - name: a\n    match:\n      name: openssl*\n      arch:\n        - x86_64\n      release: '*.alma*'\n      evr: '>= 1.0'\n    class: patched\n    reason: r\n    link: https://x/\n  - name: b\n    class: abi-changed\n    reason: r\n    match: {name: b}\n",
	} {
		if got := version(same); got != v {
			t.Errorf("version of\n%s\n= %s, want %s", same, got, v)
		}
	}
	rs, err := metadata.LoadRules(tempRulesFile(t, base))
	if err != nil || rs.Version() != v {
		t.Errorf("LoadRules version %s, %v; want %s", rs.Version(), err, v)
	}

	// Any change makes another version.
	seen := map[string]string{v: "base"}
	for _, change := range [][2]string{
		{"name: a", "name: a2"},
		{"openssl*", "openssl"},
		{"[x86_64]", "[x86_64, aarch64]"},
		{"[x86_64]", "[]"},
		{`"*.alma*"`, `"*.rocky*"`},
		{`">= 1.0"`, `"> 1.0"`},
		{`">= 1.0"`, `">= 1.0-1"`},
		{"class: patched", "class: abi-extended"},
		{"reason: r\n  link", "reason: r.\n  link"},
		{"link: https://x/", "link: https://y/"},
		{"  link: https://x/\n", ""},
		{"- name: b\n  match: {name: b}\n  reason: r\n", ""},
	} {
		text := strings.Replace(base, change[0], change[1], 1)
		if text == base {
			t.Fatalf("change %q does not apply", change)
		}
		got := version(text)
		if prev, dup := seen[got]; dup {
			t.Errorf("change %q gives the version of %s", change, prev)
		}
		seen[got] = change[0] + " -> " + change[1]
	}
	// Order matters: findings come in rule order.
	swapped := "rules:\n- name: b\n  match: {name: b}\n  reason: r\n- name: a\n  match: {name: \"openssl*\", arch: [x86_64], release: \"*.alma*\", evr: \">= 1.0\"}\n  class: patched\n  reason: r\n  link: https://x/\n"
	if version(swapped) == v {
		t.Error("reordering the rules keeps the version")
	}
}

func tempRulesFile(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "rules.yaml")
	writeRulesFile(t, name, content)
	return name
}

func TestDecide(t *testing.T) {
	changed := metadata.Finding{Class: metadata.ClassABIChanged, Reason: "c", Rule: "r1"}
	extended := metadata.Finding{Class: metadata.ClassABIExtended, Reason: "e", Rule: "r2"}
	patched := metadata.Finding{Class: metadata.ClassPatched, Reason: "p", Rule: "r3"}
	notInRef := metadata.Finding{Class: metadata.ClassNotInReference, Reason: "n"}
	annotate := []metadata.Class{metadata.ClassABIChanged, metadata.ClassABIExtended, metadata.ClassPatched}
	filter := []metadata.Class{metadata.ClassABIChanged}

	for _, c := range []struct {
		name     string
		findings []metadata.Finding
		mode     string
		annotate []metadata.Class
		action   metadata.Action
		kept     []metadata.Finding
	}{
		{"no findings", nil, "filter", annotate, metadata.ActionNone, nil},
		{"filter drops", []metadata.Finding{patched, changed}, "filter", annotate, metadata.ActionFilter, []metadata.Finding{changed}},
		{"filter annotates the rest", []metadata.Finding{patched, extended}, "filter", annotate, metadata.ActionAnnotate, []metadata.Finding{patched, extended}},
		{"annotate mode never drops", []metadata.Finding{changed, patched}, "annotate", annotate, metadata.ActionAnnotate, []metadata.Finding{changed, patched}},
		{"unlisted class is ignored", []metadata.Finding{notInRef}, "annotate", annotate, metadata.ActionNone, nil},
		{"only acted-on classes kept", []metadata.Finding{notInRef, extended, notInRef}, "annotate", annotate, metadata.ActionAnnotate, []metadata.Finding{extended}},
		{"same class twice", []metadata.Finding{changed, changed}, "filter", annotate, metadata.ActionFilter, []metadata.Finding{changed, changed}},
		{"filter class not annotated", []metadata.Finding{changed}, "annotate", []metadata.Class{metadata.ClassPatched}, metadata.ActionNone, nil},
		{"filtered even if not annotated", []metadata.Finding{changed}, "filter", nil, metadata.ActionFilter, []metadata.Finding{changed}},
		{"off", []metadata.Finding{changed}, "off", annotate, metadata.ActionNone, nil},
		{"raw", []metadata.Finding{changed}, "raw", annotate, metadata.ActionNone, nil},
	} {
		got := metadata.Decide(c.findings, c.annotate, filter, c.mode)
		if got.Action != c.action || !reflect.DeepEqual(got.Findings, c.kept) {
			t.Errorf("%s: Decide = %+v, want %s %+v", c.name, got, c.action, c.kept)
		}
	}
}

func FuzzParseRules(f *testing.F) {
	files, _ := filepath.Glob("testdata/rules/*.yaml")
	if len(files) == 0 {
		f.Fatal("no testdata/rules/*.yaml")
	}
	for _, file := range files {
		f.Add(readFile(f, file))
	}
	classes := []metadata.Class{
		metadata.ClassABIChanged, metadata.ClassABIExtended, metadata.ClassPatched,
		metadata.ClassVersionDiffers, metadata.ClassNotInReference,
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := metadata.ParseRules("f.yaml", data)
		if err != nil {
			if rules != nil {
				t.Fatalf("rules %+v with error %v", rules, err)
			}
			var re *metadata.RuleError
			if !errors.As(err, &re) || !strings.HasPrefix(err.Error(), "f.yaml: ") {
				t.Fatalf("error %q is not a *RuleError naming the file", err)
			}
			return
		}
		names := map[string]bool{}
		for _, r := range rules {
			if strings.TrimSpace(r.Name) == "" || r.Match.Name == "" || r.Reason == "" || !slices.Contains(classes, r.Class) {
				t.Fatalf("accepted rule %+v", r)
			}
			if names[r.Name] {
				t.Fatalf("accepted name %q twice", r.Name)
			}
			names[r.Name] = true
		}
		// The accepted rules build a set that matches without panicking,
		// and parsing is a function of the bytes.
		rs, err := metadata.NewRuleSet(rules...)
		if err != nil {
			t.Fatalf("NewRuleSet of accepted rules: %v", err)
		}
		for _, r := range rules {
			rs.Match(metadata.PackageID{Name: r.Match.Name, Arch: "x86_64", Version: "1.0", Release: r.Match.Release})
		}
		again, _ := metadata.ParseRules("f.yaml", data)
		rs2, _ := metadata.NewRuleSet(again...)
		if rs2.Version() != rs.Version() {
			t.Fatal("two parses give two versions")
		}
	})
}
