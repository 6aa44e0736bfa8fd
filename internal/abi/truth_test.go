package abi

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// truthLib is a shared library's exported interface as binutils' readelf
// sees it, an implementation independent of this package's RPM and ELF
// readers (rpm2cpio and cpio unpack, readelf parses).
type truthLib struct {
	path     string
	symbols  map[string]int64 // name@version -> size (-1 for functions)
	versions map[string]bool
}

var (
	readelfSym    = regexp.MustCompile(`^\s*\d+: [0-9a-f]+\s+(0x[0-9a-f]+|\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)(?:\s+\(\d+\))?\s*$`)
	readelfSoname = regexp.MustCompile(`\(SONAME\)\s+Library soname: \[(.*)\]`)
	readelfVerdef = regexp.MustCompile(`Flags: (\S+)\s+Index: \d+\s+Cnt: \d+\s+Name: (\S+)`)
)

// truthLibraries unpacks the RPM at path and reads its shared libraries
// with readelf, keyed by SONAME (or path), by the rules this package
// documents. It may run on any goroutine.
func truthLibraries(rpmPath string) (map[string]*truthLib, error) {
	dir, err := os.MkdirTemp("", "dnfproxy-truth-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("sh", "-c", `rpm2cpio "$1" | cpio -idm --quiet --no-absolute-filenames`, "sh", rpmPath)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("unpacking %s: %v\n%s", rpmPath, err, out)
	}
	libs := map[string]*truthLib{}
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || fi.Size() < 64 {
			return err
		}
		head := make([]byte, 4)
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		f.Read(head)
		f.Close()
		if string(head) != "\x7fELF" {
			return nil
		}
		rel := "/" + strings.TrimPrefix(p, dir+"/")
		out, err := exec.Command("readelf", "-h", "-l", "-d", "--dyn-syms", "-V", "-W", p).Output()
		if err != nil && len(out) == 0 {
			return fmt.Errorf("readelf %s: %v", rel, err)
		}
		lib, key := parseReadelf(out, rel)
		if lib == nil {
			return nil
		}
		if prev, ok := libs[key]; ok {
			for s, n := range lib.symbols {
				prev.symbols[s] = n
			}
			for v := range lib.versions {
				prev.versions[v] = true
			}
		} else {
			libs[key] = lib
		}
		return nil
	})
	return libs, err
}

// requireTruthTools skips or fails (in CI) without the ground-truth tools.
func requireTruthTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"rpm2cpio", "cpio", "readelf"} {
		testenv.RequireTool(t, tool)
	}
}

func parseReadelf(out []byte, rel string) (*truthLib, string) {
	lib := &truthLib{path: rel, symbols: map[string]int64{}, versions: map[string]bool{}}
	var dyn, pie, interp bool
	soname := ""
	inDynsym, inVerdef := false, false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "Type:") && strings.Contains(line, "DYN ("):
			dyn = true
		case strings.Contains(line, "Requesting program interpreter"):
			interp = true
		case strings.Contains(line, "(FLAGS_1)") && strings.Contains(line, "PIE"):
			pie = true
		case readelfSoname.MatchString(line):
			soname = readelfSoname.FindStringSubmatch(line)[1]
		case strings.HasPrefix(line, "Symbol table '.dynsym'"):
			inDynsym, inVerdef = true, false
		case strings.HasPrefix(line, "Version definition section"):
			inDynsym, inVerdef = false, true
		case strings.HasPrefix(line, "Version needs section") || strings.HasPrefix(line, "Version symbols section"):
			inDynsym, inVerdef = false, false
		case inVerdef && readelfVerdef.MatchString(line):
			m := readelfVerdef.FindStringSubmatch(line)
			if m[1] != "BASE" {
				lib.versions[m[2]] = true
			}
		case inDynsym && readelfSym.MatchString(line):
			m := readelfSym.FindStringSubmatch(line)
			size, _ := strconv.ParseInt(strings.TrimPrefix(m[1], "0x"), map[bool]int{true: 16, false: 10}[strings.HasPrefix(m[1], "0x")], 64)
			typ, bind, vis, ndx, name := m[2], m[3], m[4], m[5], m[6]
			if ndx == "UND" || (bind != "GLOBAL" && bind != "WEAK" && bind != "UNIQUE") || (vis != "DEFAULT" && vis != "PROTECTED") {
				continue
			}
			base, ver := name, ""
			if i := strings.Index(name, "@"); i >= 0 {
				base, ver = name[:i], strings.TrimLeft(name[i:], "@")
			}
			if base == "_init" || base == "_fini" {
				continue
			}
			switch typ {
			case "FUNC", "IFUNC":
				size = -1
			case "OBJECT", "TLS", "COMMON":
				if ndx == "ABS" && size == 0 && base == ver {
					continue // the symbol naming a version node
				}
			default:
				continue
			}
			lib.symbols[base+map[bool]string{true: "@" + ver, false: ""}[ver != ""]] = size
		}
	}
	if !dyn {
		return nil, ""
	}
	if soname == "" && (!isLibDir(rel) || pie || interp) {
		return nil, ""
	}
	if soname != "" {
		return lib, soname
	}
	return lib, rel
}

// truthVerdict compares two packages' readelf views: "abi-changed" when a
// library, symbol or version node is gone or an object changed size,
// "abi-extended" for additions only, "none" otherwise; with the counts.
func truthVerdict(old, nw map[string]*truthLib) (verdict string, removed, added int) {
	resized := 0
	for key, o := range old {
		n, ok := nw[key]
		if !ok {
			if strings.HasPrefix(key, "/") {
				continue // a plugin without SONAME: nothing links against it
			}
			removed++
			continue
		}
		for s, size := range o.symbols {
			ns, ok := n.symbols[s]
			if !ok {
				removed++
			} else if size >= 0 && ns >= 0 && size != ns {
				resized++
			}
		}
		for v := range o.versions {
			if !n.versions[v] {
				removed++
			}
		}
		for s := range n.symbols {
			if _, ok := o.symbols[s]; !ok {
				added++
			}
		}
		for v := range n.versions {
			if !o.versions[v] {
				added++
			}
		}
	}
	for key := range nw {
		if _, ok := old[key]; !ok && !strings.HasPrefix(key, "/") {
			added++
		}
	}
	switch {
	case removed > 0 || resized > 0:
		return "abi-changed", removed + resized, added
	case added > 0:
		return "abi-extended", 0, added
	}
	return "none", 0, 0
}
