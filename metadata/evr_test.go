package metadata_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// versionCases are version strings (no '-' or ':') with rpm's verdict on
// them. TestCompareVersionsRPM recomputes every verdict with the installed
// rpm, so the table cannot drift from rpm; TestCompareVersions runs it
// without rpm.
var versionCases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0},
	{"1.0", "1.1", -1},
	{"1.0", "1.0.1", -1},
	{"2.0", "10.0", -1},
	{"1.0", "1.0.0", -1},
	{"12345678901234567890", "12345678901234567891", -1}, // no overflow

	// Letters: a letter segment is older than a digit segment.
	{"1.0a", "1.0", 1},
	{"1.0a", "1.0.a", 0}, // segments, not bytes, are compared
	{"1.0.a", "1.0.1", -1},
	{"1.0a", "1.0.1", -1},
	{"a", "1", -1},
	{"1.a1", "1.1a", -1},
	{"1.0.0", "1.0.0a", -1},
	{"FC5", "fc4", -1}, // bytewise: upper case first
	{"abc", "abd", -1},
	{"1a", "1b", -1},

	// Leading zeros.
	{"010", "10", 0},
	{"0001", "1", 0},
	{"0", "00", 0},
	{"1.010", "1.9", 1},
	{"1.001", "1.1", 0},
	{"20240101", "2.0", 1},

	// Separators and empty segments.
	{"1.0", "1.0.", 0},
	{"1..0", "1.0", 0},
	{"1_0", "1.0", 0},
	{"1.0+git", "1.0", 1},
	{"1é", "1", 0}, // non-ASCII bytes separate

	// Tilde: before everything, even the end.
	{"1.0~rc1", "1.0", -1},
	{"1.0~rc1", "1.0~rc2", -1},
	{"1.0~~", "1.0~", -1},
	{"1.0~rc1", "1.0~rc1~1", 1},
	{"~", "~~", 1},
	{".", "~", 1},

	// Caret: after the end, before anything else.
	{"1.0^", "1.0", 1},
	{"1.0^git1", "1.0", 1},
	{"1.0^git1", "1.0.1", -1},
	{"1.0^git1", "1.0~rc1", 1},
	{"1.0^git1", "1.0^git2", -1},
	{"1.0^^", "1.0^", 1},
	{"1.0^1", "1.0^", 1},
	{"1.0~^", "1.0~", 1},
	{"^", "~", 1},
	{"1.0~", "1.0^", -1},
	{"1.0~1^2", "1.0~1", 1},
	{"1.0^2~1", "1.0^2", -1},
	{"a.", "a^", -1},
	{"1.0~rc1^git1", "1.0~rc1", 1},
	{"1.0~rc1^git1", "1.0", -1},

	// Release tags of the rebuilds.
	{"1.el9", "1.el9_2", -1},
	{"1.el9_2.alma.1", "1.el9_2", 1},
	{"1.el9_2.alma.1", "1.el9_3", -1},
	{"1.el9_2.alma.1", "2.el9_2", -1},
	{"1.el9_2.alma.2", "1.el9_2.alma.10", -1},
	{"1.el9.rocky.0.1", "1.el9", 1},
	{"5.el9_2.alma", "5.el9_2.1", -1},
	{"24.el9.alma.1", "24.el9_2", -1},
}

// evrCases are EVRs that both have a release (or both lack one), where
// rpm's ordering (rpm.vercmp) and its dependency matching agree.
var evrCases = []struct {
	a, b string
	want int
}{
	{"1.0-1", "1.0-1", 0},
	{"0:1.0-1", "1.0-1", 0},    // missing epoch is 0
	{"00:1.0-1", "0:1.0-1", 0}, // epochs compare as versions
	{"1:1.0-1", "2.0-1", 1},    // epoch wins over version
	{"1:1.0-1", "2:0.1-1", -1},
	{"10:1.0-1", "9:1.0-1", 1},
	{"1.0-10", "1.0-9", 1},
	{"1.0-1.el9_2.alma.1", "1.0-1.el9_2", 1},
	{"1:3.0.7-24.el9", "1:3.0.7-25.el9", -1},
	{"1:3.0.7-24.el9.alma.1", "1:3.0.7-24.el9", 1},
	{"1.0~rc1-1", "1.0-0", -1}, // version before release
	{"1.0", "1.0", 0},
	{"1:1.0", "1.0", 1},
}

func TestCompareVersions(t *testing.T) {
	for _, c := range versionCases {
		if got := metadata.CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := metadata.CompareVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
	// rpm.vercmp refuses empty strings; rpmvercmp itself orders them so.
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "1", -1}, {"", "~", 1}, {"", "^", -1}, {".", "", 0}, {"", "a", -1},
	} {
		if got := metadata.CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// rpmVercmp asks the installed rpm for rpm.vercmp(a, b) of every pair, in
// one rpm run.
func rpmVercmp(t *testing.T, pairs [][2]string) []int {
	t.Helper()
	bin := testenv.RequireTool(t, "rpm")
	var lua strings.Builder
	lua.WriteString("local out = {}\n")
	for _, p := range pairs {
		fmt.Fprintf(&lua, "out[#out+1] = rpm.vercmp(%s, %s)\n", luaString(p[0]), luaString(p[1]))
	}
	lua.WriteString("print(table.concat(out, \" \"))\n")
	script := filepath.Join(t.TempDir(), "vercmp.lua")
	if err := os.WriteFile(script, []byte(lua.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// dofile keeps the strings away from rpm's macro expansion.
	out, err := exec.CommandContext(t.Context(), bin, "--eval", "%{lua: dofile("+luaString(script)+")}").Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) != len(pairs) {
		t.Fatalf("rpm printed %d results for %d pairs: %q", len(fields), len(pairs), out)
	}
	res := make([]int, len(fields))
	for i, f := range fields {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("rpm printed %q", out)
		}
		res[i] = n
	}
	return res
}

// luaString quotes s as a Lua string literal, every byte escaped.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "\\%d", s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func TestCompareVersionsRPM(t *testing.T) {
	var pairs [][2]string
	for _, c := range versionCases {
		pairs = append(pairs, [2]string{c.a, c.b}, [2]string{c.b, c.a})
	}
	want := rpmVercmp(t, pairs)
	for i, p := range pairs {
		if got := metadata.CompareVersions(p[0], p[1]); got != want[i] {
			t.Errorf("CompareVersions(%q, %q) = %d, rpm says %d", p[0], p[1], got, want[i])
		}
	}
	// The table itself must say what rpm says.
	for i, c := range versionCases {
		if want[2*i] != c.want {
			t.Errorf("versionCases: %q vs %q: table says %d, rpm says %d", c.a, c.b, c.want, want[2*i])
		}
	}
}

func TestCompareEVRRPM(t *testing.T) {
	var pairs [][2]string
	for _, c := range evrCases {
		pairs = append(pairs, [2]string{c.a, c.b}, [2]string{c.b, c.a})
	}
	want := rpmVercmp(t, pairs)
	for i, p := range pairs {
		if got := compareEVRStrings(t, p[0], p[1]); got != want[i] {
			t.Errorf("CompareEVR(%q, %q) = %d, rpm says %d", p[0], p[1], got, want[i])
		}
	}
	for i, c := range evrCases {
		if want[2*i] != c.want {
			t.Errorf("evrCases: %q vs %q: table says %d, rpm says %d", c.a, c.b, c.want, want[2*i])
		}
	}
}

func compareEVRStrings(t *testing.T, a, b string) int {
	t.Helper()
	ea, err := metadata.ParseEVR(a)
	if err != nil {
		t.Fatalf("ParseEVR(%q): %v", a, err)
	}
	eb, err := metadata.ParseEVR(b)
	if err != nil {
		t.Fatalf("ParseEVR(%q): %v", b, err)
	}
	return metadata.CompareEVR(ea, eb)
}

func TestCompareEVR(t *testing.T) {
	for _, c := range evrCases {
		if got := compareEVRStrings(t, c.a, c.b); got != c.want {
			t.Errorf("CompareEVR(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := compareEVRStrings(t, c.b, c.a); got != -c.want {
			t.Errorf("CompareEVR(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
	// rpm's dependency rule (rpmdsCompare): a release is compared only
	// when both sides have one, so "foo >= 1.0" matches foo-1.0-5.
	// (rpm.vercmp orders "1.0" before "1.0-5" instead; rules follow the
	// dependency rule, so there is no rpm oracle for these.)
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0-5", 0},
		{"1:1.0", "1:1.0-5.el9", 0},
		{"1.0", "1.1-1", -1},
		{"1.0", "1:0.1-1", -1},
		{"3.0.7", "1:3.0.7-24.el9", -1},
	} {
		if got := compareEVRStrings(t, c.a, c.b); got != c.want {
			t.Errorf("CompareEVR(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := compareEVRStrings(t, c.b, c.a); got != -c.want {
			t.Errorf("CompareEVR(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

func TestParseEVR(t *testing.T) {
	for _, c := range []struct {
		in   string
		want metadata.EVR
	}{
		{"1.0", metadata.EVR{Version: "1.0"}},
		{"1.0-1.el9", metadata.EVR{Version: "1.0", Release: "1.el9"}},
		{"1:3.0.7-24.el9", metadata.EVR{Epoch: "1", Version: "3.0.7", Release: "24.el9"}},
		{"0:1.0~rc1^git2", metadata.EVR{Epoch: "0", Version: "1.0~rc1^git2"}},
		{"2.1+dfsg_1-1.el9_2.alma.1", metadata.EVR{Version: "2.1+dfsg_1", Release: "1.el9_2.alma.1"}},
	} {
		got, err := metadata.ParseEVR(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseEVR(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		if got.String() != c.in {
			t.Errorf("ParseEVR(%q).String() = %q", c.in, got.String())
		}
	}
	for _, in := range []string{
		"", ":1.0", "a:1.0", "1:", "1:-1", "-1", "1.0-", "1.0-1-2", "1:2:3", "1.0 -1", " 1.0",
		"1.0-1\n", "1.0/2", "1.0-a*b", "12345678901:1.0", ">= 1.0",
	} {
		if got, err := metadata.ParseEVR(in); err == nil {
			t.Errorf("ParseEVR(%q) = %+v, want an error", in, got)
		}
	}
}

func FuzzCompareVersions(f *testing.F) {
	for _, c := range versionCases {
		f.Add(c.a, c.b)
	}
	f.Add("", "~")
	f.Add("1.0^", "1.0~")
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, ba := metadata.CompareVersions(a, b), metadata.CompareVersions(b, a)
		if ab < -1 || ab > 1 {
			t.Fatalf("CompareVersions(%q, %q) = %d, not -1, 0 or 1", a, b, ab)
		}
		if ab != -ba {
			t.Fatalf("CompareVersions(%q, %q) = %d but CompareVersions(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		// Reflexive, also for a copy that is not the same string header.
		if c := metadata.CompareVersions(a, strings.Clone(a)); c != 0 {
			t.Fatalf("CompareVersions(%q, itself) = %d", a, c)
		}
		// A trailing separator changes nothing; a trailing tilde makes
		// any version older, a trailing caret newer.
		if c := metadata.CompareVersions(a+".", a); c != 0 {
			t.Fatalf("CompareVersions(%q, %q) = %d", a+".", a, c)
		}
		if c := metadata.CompareVersions(a+"~", a); c != -1 {
			t.Fatalf("CompareVersions(%q, %q) = %d", a+"~", a, c)
		}
		if c := metadata.CompareVersions(a+"^", a); c != 1 {
			t.Fatalf("CompareVersions(%q, %q) = %d", a+"^", a, c)
		}
	})
}
