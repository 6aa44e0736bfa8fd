package metadata

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestFilterUpdateinfo(t *testing.T) {
	in, err := os.ReadFile("testdata/updateinfo/updateinfo.xml")
	if err != nil {
		t.Fatal(err)
	}
	drop := func(p PackageID) bool { return p.Name == "dnfpt-lib" && strings.Contains(p.Release, ".alma.") }
	var out bytes.Buffer
	n, err := FilterUpdateinfo(bytes.NewReader(in), &out, drop)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("dropped %d entries, want 2", n)
	}
	got := out.String()
	if strings.Contains(got, `name="dnfpt-lib"`) || strings.Contains(got, "dnfpt-lib-1.0-1.el9.alma.1.noarch.rpm") {
		t.Fatalf("filtered package still listed:\n%s", got)
	}
	for _, keep := range []string{
		`<package name="dnfpt-app" version="1.0" release="1.el9" epoch="0" arch="noarch" src="dnfpt-app-1.0-1.el9.src.rpm">`,
		"<description>Fixes &amp; more &lt;stuff&gt;.</description>",
		"<id>ALBA-2024:0002</id>",
		`<?xml version="1.0" encoding="UTF-8"?>`,
	} {
		if !strings.Contains(got, keep) {
			t.Errorf("output lost %q", keep)
		}
	}
	// Only the dropped elements differ: removing them from the input by
	// hand gives the output exactly.
	want := string(in)
	for _, el := range dropElements(t, want, `<package name="dnfpt-lib"`) {
		want = strings.Replace(want, el, "", 1)
	}
	if got != want {
		t.Fatalf("output differs beyond the dropped elements:\n%s", got)
	}

	// Keep-all is the identity.
	out.Reset()
	if n, err := FilterUpdateinfo(bytes.NewReader(in), &out, func(PackageID) bool { return false }); err != nil || n != 0 || !bytes.Equal(out.Bytes(), in) {
		t.Fatalf("keep-all: n=%d err=%v identical=%v", n, err, bytes.Equal(out.Bytes(), in))
	}
}

// dropElements finds the whole elements starting with prefix.
func dropElements(t *testing.T, doc, prefix string) []string {
	var els []string
	for rest := doc; ; {
		i := strings.Index(rest, prefix)
		if i < 0 {
			return els
		}
		rest = rest[i:]
		end := strings.Index(rest, "</package>") + len("</package>")
		if self := strings.Index(rest, "/>"); self >= 0 && self < strings.Index(rest, ">")+1 {
			end = self + 2
		}
		els = append(els, rest[:end])
		rest = rest[end:]
	}
}

func TestFilterUpdateinfoRejectsMalformed(t *testing.T) {
	for _, in := range []string{"", "<notupdates/>", "<updates><update>", "<updates></updatez>"} {
		if _, err := FilterUpdateinfo(strings.NewReader(in), &bytes.Buffer{}, func(PackageID) bool { return true }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err %v, want ErrMalformed", in, err)
		}
	}
}

func TestModularPackages(t *testing.T) {
	f, err := os.Open("testdata/updateinfo/modules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ModularPackages(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []PackageID{
		{Name: "dnfpt-lib", Epoch: "0", Version: "1.0", Release: "1.module_el9+1+abc", Arch: "noarch"},
		{Name: "dnfpt-app", Version: "1.0", Release: "1.module_el9+1+abc", Arch: "noarch"},
	} {
		if !got[ModularKey(id)] {
			t.Errorf("%s not modular; have %v", ModularKey(id), got)
		}
	}
	if len(got) != 2 {
		t.Errorf("%d modular packages, want 2: %v", len(got), got)
	}
	if _, err := ModularPackages(strings.NewReader("document: modulemd\ndata: [")); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad YAML: %v", err)
	}
}

// hugeUpdateinfo streams an updateinfo.xml whose one advisory has a text
// node, or a filtered <package> element, of n bytes, without holding it.
func hugeUpdateinfo(n int64, where string) io.Reader {
	head := `<?xml version="1.0" encoding="UTF-8"?>` + "\n<updates><update><id>A-1</id><description>"
	mid := "</description><pkglist><collection><package name=\"big\" version=\"1\" release=\"1\" epoch=\"0\" arch=\"noarch\"><filename>"
	tail := "</filename></package></collection></pkglist></update></updates>\n"
	fill := io.LimitReader(repeatReader('x'), n)
	if where == "description" {
		return io.MultiReader(strings.NewReader(head), fill, strings.NewReader(mid+"big.rpm"+tail))
	}
	return io.MultiReader(strings.NewReader(head+"short"+mid), fill, strings.NewReader(tail))
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestFilterUpdateinfoElementLimit: a text node or a dropped <package>
// over MaxElement is ErrTooLarge, and the filter allocates a small
// multiple of the limit however large the node (encoding/xml alone buffers
// a whole text node, and the splicer held it once more). Within the limit
// the same shape passes.
func TestFilterUpdateinfoElementLimit(t *testing.T) {
	const limit = 1 << 20
	lim := Limits{MaxElement: limit}
	dropBig := func(p PackageID) bool { return p.Name == "big" }
	for _, where := range []string{"description", "dropped package"} {
		t.Run(where, func(t *testing.T) {
			var err error
			alloc := allocBytes(func() {
				_, err = lim.FilterUpdateinfo(hugeUpdateinfo(64<<20, where), io.Discard, dropBig)
			})
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "over 1048576 bytes") {
				t.Fatalf("64 MiB node with a 1 MiB limit: err %v, want ErrTooLarge naming the limit", err)
			}
			if alloc > 32*limit { // holding the 64 MiB node once would be twice that
				t.Errorf("allocated %d MiB for a 1 MiB limit", alloc>>20)
			}
			n, err := lim.FilterUpdateinfo(hugeUpdateinfo(limit/2, where), io.Discard, dropBig)
			if err != nil || n != 1 {
				t.Fatalf("half-limit node: dropped %d, err %v; want 1, nil", n, err)
			}
		})
	}
}

func allocBytes(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
