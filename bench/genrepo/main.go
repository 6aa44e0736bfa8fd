// Command genrepo writes a synthetic rpm-md repository shaped like RHEL 9
// AppStream, for benchmarking the metadata rewriter, and measures a rewrite.
//
//	genrepo [-n 30000] [-modules M] [-groups G] DIR
//	                                 write DIR/repodata: gzip-compressed
//	                                 primary, filelists, other and repomd.xml;
//	                                 with -modules, M module streams: their
//	                                 packages get module_el9 releases and
//	                                 DIR/modules.yaml lists them (modulemd v2
//	                                 and modulemd-defaults documents); with
//	                                 -groups, DIR/comps.xml has G groups. Both
//	                                 files are left for modifyrepo_c to add
//	                                 (--mdtype=modules, --mdtype=group), as a
//	                                 compose does
//	genrepo -measure [-annotate 5] DIR
//	                                 rewrite DIR's metadata (gz → gz) with
//	                                 -annotate percent of packages annotated,
//	                                 then only decompress and recompress the
//	                                 same files with the same libraries;
//	                                 print both times, their ratio and the
//	                                 process's peak RSS (VmHWM)
//
// Packages have realistic provides (sonames with version nodes), requires
// (glibc symbol versions, rpmlib, pre-requirements), file lists with a
// heavy tail (a few packages with thousands of files) and changelogs. No
// RPM file is written. The output is a function of -n.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dnfproxy/dnfproxy/metadata"
)

const epoch = 1704067200 // 2024-01-01, the base of every timestamp

func main() {
	n := flag.Int("n", 30000, "number of packages")
	measure := flag.Bool("measure", false, "measure a rewrite of the repo in DIR instead of writing one")
	annotate := flag.Int("annotate", 5, "with -measure: percent of packages annotated")
	modules := flag.Int("modules", 0, "module streams: write DIR/modules.yaml for modifyrepo_c")
	groups := flag.Int("groups", 0, "comps groups: write DIR/comps.xml for modifyrepo_c")
	flag.Parse()
	if flag.NArg() != 1 || *n < 1 || *n > 1000000 || *annotate < 0 || *annotate > 100 ||
		*modules < 0 || *modules > *n/10 || *groups < 0 || *groups > 10000 {
		fmt.Fprintln(os.Stderr, "usage: genrepo [-n 1..1000000] [-modules 0..n/10] [-groups 0..10000] DIR | genrepo -measure [-annotate PCT] DIR")
		os.Exit(2)
	}
	var err error
	if *measure {
		err = measureRewrite(flag.Arg(0), *annotate)
	} else {
		err = GenerateExtras(flag.Arg(0), *n, *modules, *groups)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genrepo:", err)
		os.Exit(1)
	}
}

// Generate writes the repository of n packages into dir/repodata.
func Generate(dir string, n int) error { return GenerateExtras(dir, n, 0, 0) }

// GenerateExtras writes the repository of n packages into dir/repodata,
// with modules module streams (dir/modules.yaml) and groups comps groups
// (dir/comps.xml) left beside it for modifyrepo_c.
func GenerateExtras(dir string, n, modules, groups int) error {
	if err := os.MkdirAll(filepath.Join(dir, "repodata"), 0o755); err != nil {
		return err
	}
	pkgs := makePackages(n)
	streams := assignModules(pkgs, modules)
	if modules > 0 {
		if err := writeFile(filepath.Join(dir, "modules.yaml"), func(w io.Writer) error { return writeModules(w, pkgs, streams) }); err != nil {
			return err
		}
	}
	if groups > 0 {
		if err := writeFile(filepath.Join(dir, "comps.xml"), func(w io.Writer) error { return writeComps(w, pkgs, groups) }); err != nil {
			return err
		}
	}
	type file struct {
		kind  string
		write func(w io.Writer, ps []pkg) error
	}
	var records []string
	for _, f := range []file{{"primary", writePrimary}, {"filelists", writeFilelists}, {"other", writeOther}} {
		tmp := filepath.Join(dir, "repodata", f.kind+".tmp")
		out, err := os.Create(tmp)
		if err != nil {
			return err
		}
		fw, err := metadata.NewFileWriter(out, metadata.Gzip)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(fw, 256<<10)
		err = f.write(bw, pkgs)
		if err == nil {
			err = bw.Flush()
		}
		if err == nil {
			err = fw.Close()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		info := fw.Info()
		href := info.Href(f.kind, ".xml")
		if err := os.Rename(tmp, filepath.Join(dir, href)); err != nil {
			return err
		}
		records = append(records, fmt.Sprintf(`  <data type="%s">
    <checksum type="sha256">%s</checksum>
    <open-checksum type="sha256">%s</open-checksum>
    <location href="%s"/>
    <timestamp>%d</timestamp>
    <size>%d</size>
    <open-size>%d</open-size>
  </data>
`, f.kind, info.Checksum.Value, info.OpenChecksum.Value, href, epoch, info.Size, info.OpenSize))
	}
	repomd := `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>` + strconv.Itoa(epoch) + `</revision>
` + strings.Join(records, "") + "</repomd>\n"
	return os.WriteFile(filepath.Join(dir, "repodata", "repomd.xml"), []byte(repomd), 0o644)
}

type pkg struct {
	name, ver, rel, arch, pkgid string
	lib                         string // soname stem, "" for no library
	files                       int
	changelogs                  int
	r                           uint64 // per-package random seed
}

var (
	stems = []string{"python3", "perl", "ruby", "nodejs", "php", "golang", "rust", "qt5", "gtk3", "kf5",
		"libreoffice", "texlive", "java", "gstreamer1", "httpd", "nginx", "postgresql", "mariadb", "redis", "maven",
		"ghc", "ocaml", "gcc-toolset-13", "llvm", "mesa", "pipewire", "samba", "freeipa", "cockpit", "podman"}
	licenses = []string{"MIT", "GPL-2.0-or-later", "LGPL-2.1-or-later", "Apache-2.0", "BSD-3-Clause",
		"GPL-3.0-or-later WITH GCC-exception-3.1", "(GPL-2.0-only OR MPL-1.1) AND LGPL-2.1-or-later"}
	words = strings.Fields(`the a library for and of to with support module bindings tools development files
		runtime data plugin extension documentation server client interface implementation package provides
		compatibility utilities headers shared static high performance framework toolkit protocol`)
	glibcNodes = []string{"GLIBC_2.2.5", "GLIBC_2.3", "GLIBC_2.3.4", "GLIBC_2.4", "GLIBC_2.14", "GLIBC_2.17",
		"GLIBC_2.28", "GLIBC_2.32", "GLIBC_2.33", "GLIBC_2.34"}
	dirs = []string{"/usr/bin", "/usr/lib64", "/usr/share/doc", "/usr/share/man/man1", "/usr/share/locale/de/LC_MESSAGES",
		"/usr/lib/python3.9/site-packages", "/usr/share/licenses", "/usr/include", "/usr/libexec", "/etc"}
)

func makePackages(n int) []pkg {
	rng := rand.New(rand.NewPCG(uint64(n), 9))
	ps := make([]pkg, n)
	for i := range ps {
		stem := stems[rng.IntN(len(stems))]
		p := pkg{
			name: fmt.Sprintf("%s-%s%d", stem, words[rng.IntN(len(words))], i),
			ver:  fmt.Sprintf("%d.%d.%d", rng.IntN(12), rng.IntN(40), rng.IntN(20)),
			rel:  fmt.Sprintf("%d.el9", 1+rng.IntN(9)),
			arch: []string{"x86_64", "x86_64", "noarch", "i686"}[rng.IntN(4)],
			r:    rng.Uint64(),
		}
		if rng.IntN(100) < 15 {
			p.rel += "_" + strconv.Itoa(rng.IntN(4))
		}
		if rng.IntN(3) == 0 {
			p.lib = fmt.Sprintf("lib%s%d", words[rng.IntN(len(words))], i)
		}
		// File counts: mostly a few dozen, with a tail of big packages.
		switch x := rng.IntN(1000); {
		case x < 3:
			p.files = 2000 + rng.IntN(3000)
		case x < 40:
			p.files = 200 + rng.IntN(400)
		default:
			p.files = 2 + rng.IntN(25)
		}
		p.changelogs = 1 + rng.IntN(6)
		sum := fmt.Sprintf("%016x%016x%016x%016x", rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64())
		p.pkgid = sum
		ps[i] = p
	}
	return ps
}

func (p *pkg) rng() *rand.Rand { return rand.New(rand.NewPCG(p.r, 1)) }

func sentence(rng *rand.Rand, n int) string {
	ws := make([]string, n)
	for i := range ws {
		ws[i] = words[rng.IntN(len(words))]
	}
	return strings.Join(ws, " ")
}

func writePrimary(w io.Writer, ps []pkg) error {
	bw := &errWriter{w: w}
	bw.printf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"%d\">\n", len(ps))
	for i := range ps {
		p := &ps[i]
		rng := p.rng()
		size := 20000 + rng.IntN(4<<20)
		bw.printf(`<package type="rpm">
  <name>%s</name>
  <arch>%s</arch>
  <version epoch="0" ver="%s" rel="%s"/>
  <checksum type="sha256" pkgid="YES">%s</checksum>
  <summary>%s</summary>
  <description>%s.
%s &amp; %s.

%s.</description>
  <packager>Red Hat, Inc. &lt;http://bugzilla.redhat.com/bugzilla&gt;</packager>
  <url>https://example.invalid/%s</url>
  <time file="%d" build="%d"/>
  <size package="%d" installed="%d" archive="%d"/>
  <location href="Packages/%c/%s-%s-%s.%s.rpm"/>
  <format>
    <rpm:license>%s</rpm:license>
    <rpm:vendor>Red Hat, Inc.</rpm:vendor>
    <rpm:group>Unspecified</rpm:group>
    <rpm:buildhost>x86-64-%02d.build.eng.rdu2.redhat.com</rpm:buildhost>
    <rpm:sourcerpm>%s-%s-%s.src.rpm</rpm:sourcerpm>
    <rpm:header-range start="4504" end="%d"/>
    <rpm:provides>
`, p.name, p.arch, p.ver, p.rel, p.pkgid, sentence(rng, 6), sentence(rng, 14), sentence(rng, 12), sentence(rng, 10), sentence(rng, 16),
			p.name, epoch-rng.IntN(1e7), epoch-rng.IntN(1e7), size, size*3, size*3+rng.IntN(4096),
			p.name[0], p.name, p.ver, p.rel, p.arch,
			licenses[rng.IntN(len(licenses))], rng.IntN(40), p.name, p.ver, p.rel, 4504+size/50)
		bw.printf(`      <rpm:entry name="%s" flags="EQ" epoch="0" ver="%s" rel="%s"/>
      <rpm:entry name="%s(%s)" flags="EQ" epoch="0" ver="%s" rel="%s"/>
`, p.name, p.ver, p.rel, p.name, p.arch, p.ver, p.rel)
		if p.lib != "" {
			bw.printf("      <rpm:entry name=\"%s.so.1()(64bit)\"/>\n", p.lib)
			for v := range 1 + rng.IntN(6) {
				bw.printf("      <rpm:entry name=\"%s.so.1(%s_1.%d)(64bit)\"/>\n", p.lib, strings.ToUpper(p.lib[3:]), v)
			}
		}
		for range rng.IntN(4) {
			bw.printf("      <rpm:entry name=\"bundled(%s)\" flags=\"EQ\" epoch=\"0\" ver=\"%d.%d\"/>\n", words[rng.IntN(len(words))], rng.IntN(9), rng.IntN(30))
		}
		bw.printf("    </rpm:provides>\n    <rpm:requires>\n")
		if rng.IntN(4) == 0 {
			bw.printf("      <rpm:entry name=\"/bin/sh\" pre=\"1\"/>\n      <rpm:entry name=\"systemd\" pre=\"1\"/>\n")
		}
		for range 2 + rng.IntN(10) {
			bw.printf("      <rpm:entry name=\"libc.so.6(%s)(64bit)\"/>\n", glibcNodes[rng.IntN(len(glibcNodes))])
		}
		for range rng.IntN(8) {
			q := &ps[rng.IntN(len(ps))]
			if q.lib != "" {
				bw.printf("      <rpm:entry name=\"%s.so.1()(64bit)\"/>\n", q.lib)
			} else {
				bw.printf("      <rpm:entry name=\"%s\" flags=\"GE\" epoch=\"0\" ver=\"%s\"/>\n", q.name, q.ver)
			}
		}
		bw.printf("      <rpm:entry name=\"rpmlib(CompressedFileNames)\" flags=\"LE\" epoch=\"0\" ver=\"3.0.4\" rel=\"1\"/>\n    </rpm:requires>\n")
		if rng.IntN(10) == 0 {
			bw.printf("    <rpm:obsoletes>\n      <rpm:entry name=\"%s-compat\" flags=\"LT\" epoch=\"0\" ver=\"%s\"/>\n    </rpm:obsoletes>\n", p.name, p.ver)
		}
		if rng.IntN(5) == 0 {
			bw.printf("    <file>/usr/bin/%s</file>\n", p.name)
		}
		bw.printf("  </format>\n</package>\n")
	}
	bw.printf("</metadata>\n")
	return bw.err
}

func writeFilelists(w io.Writer, ps []pkg) error {
	bw := &errWriter{w: w}
	bw.printf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"%d\">\n", len(ps))
	for i := range ps {
		p := &ps[i]
		rng := p.rng()
		bw.printf("<package pkgid=\"%s\" name=\"%s\" arch=\"%s\">\n  <version epoch=\"0\" ver=\"%s\" rel=\"%s\"/>\n", p.pkgid, p.name, p.arch, p.ver, p.rel)
		bw.printf("  <file type=\"dir\">/usr/share/doc/%s</file>\n", p.name)
		for f := range p.files {
			d := dirs[rng.IntN(len(dirs))]
			bw.printf("  <file>%s/%s/%s-%d.%s</file>\n", d, p.name, words[rng.IntN(len(words))], f, []string{"so", "py", "h", "gz", "mo", "txt"}[rng.IntN(6)])
		}
		bw.printf("</package>\n")
	}
	bw.printf("</filelists>\n")
	return bw.err
}

func writeOther(w io.Writer, ps []pkg) error {
	bw := &errWriter{w: w}
	bw.printf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<otherdata xmlns=\"http://linux.duke.edu/metadata/other\" packages=\"%d\">\n", len(ps))
	for i := range ps {
		p := &ps[i]
		rng := p.rng()
		bw.printf("<package pkgid=\"%s\" name=\"%s\" arch=\"%s\">\n  <version epoch=\"0\" ver=\"%s\" rel=\"%s\"/>\n", p.pkgid, p.name, p.arch, p.ver, p.rel)
		for c := range p.changelogs {
			bw.printf("  <changelog author=\"Packager %d &lt;pkg%d@example.invalid&gt; - %s-%d\" date=\"%d\">- %s\n- Resolves: RHEL-%d</changelog>\n",
				rng.IntN(200), rng.IntN(200), p.ver, c+1, epoch-(p.changelogs-c)*86400*30, sentence(rng, 8), 10000+rng.IntN(50000))
		}
		bw.printf("</package>\n")
	}
	bw.printf("</otherdata>\n")
	return bw.err
}

// stream is one module stream: a modulemd document and its packages.
type stream struct {
	name, stream, context string
	version               int64
	pkgs                  []int // indices into the package list
}

// assignModules makes m module streams of 8 to 24 packages each, taken
// from packages not in another stream, and gives those packages module
// releases (N.module_el9+ID+HASH), as modular builds in AppStream have.
func assignModules(ps []pkg, m int) []stream {
	if m == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(len(ps)), uint64(m)))
	taken := make([]bool, len(ps))
	out := make([]stream, m)
	for s := range out {
		st := stream{
			name:    stems[s%len(stems)],
			stream:  strconv.Itoa(1 + s/len(stems)),
			context: fmt.Sprintf("%08x", rng.Uint32()),
			version: 9020020240000000 + int64(rng.IntN(999999)),
		}
		build, hash := 100+rng.IntN(9000), rng.Uint32()
		for range 8 + rng.IntN(17) {
			i := rng.IntN(len(ps))
			if taken[i] {
				continue
			}
			taken[i] = true
			p := &ps[i]
			p.rel = fmt.Sprintf("%d.module_el9+%d+%08x", 1+rng.IntN(9), build, hash)
			st.pkgs = append(st.pkgs, i)
		}
		out[s] = st
	}
	return out
}

// writeModules writes a modules.yaml: one modulemd v2 document per stream
// (profiles, api, components, artifacts) and a modulemd-defaults document
// per module name naming its first stream.
func writeModules(w io.Writer, ps []pkg, streams []stream) error {
	bw := &errWriter{w: w}
	seen := map[string]bool{}
	for _, st := range streams {
		if !seen[st.name] {
			seen[st.name] = true
			bw.printf("---\ndocument: modulemd-defaults\nversion: 1\ndata:\n  module: %s\n  stream: %q\n  profiles:\n    %q: [common]\n...\n", st.name, st.stream, st.stream)
		}
		bw.printf(`---
document: modulemd
version: 2
data:
  name: %s
  stream: %q
  version: %d
  context: %s
  arch: x86_64
  summary: %s module
  description: >-
    %s.
  license:
    module:
    - MIT
  dependencies:
  - buildrequires:
      platform: [el9]
    requires:
      platform: [el9]
  profiles:
    common:
      rpms:
`, st.name, st.stream, st.version, st.context, st.name, sentence(rand.New(rand.NewPCG(uint64(st.version), 2)), 20))
		for _, i := range st.pkgs[:min(3, len(st.pkgs))] {
			bw.printf("      - %s\n", ps[i].name)
		}
		bw.printf("  api:\n    rpms:\n")
		for _, i := range st.pkgs {
			bw.printf("    - %s\n", ps[i].name)
		}
		bw.printf("  components:\n    rpms:\n")
		for k, i := range st.pkgs {
			bw.printf("      %s:\n        rationale: %s\n        ref: stream-%s-%s-rhel-9.4.0\n        buildorder: %d\n        arches: [aarch64, ppc64le, s390x, x86_64]\n",
				ps[i].name, words[k%len(words)], st.name, st.stream, 10*(k%4))
		}
		bw.printf("  artifacts:\n    rpms:\n")
		for _, i := range st.pkgs {
			p := &ps[i]
			bw.printf("    - %s-0:%s-%s.src\n    - %s-0:%s-%s.%s\n", p.name, p.ver, p.rel, p.name, p.ver, p.rel, p.arch)
		}
		bw.printf("...\n")
	}
	return bw.err
}

// writeComps writes a comps.xml of g groups of 10 to 60 package names,
// one category holding them all and one environment.
func writeComps(w io.Writer, ps []pkg, g int) error {
	rng := rand.New(rand.NewPCG(uint64(len(ps)), uint64(g)+7))
	bw := &errWriter{w: w}
	bw.printf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE comps PUBLIC \"-//Red Hat, Inc.//DTD Comps info//EN\" \"comps.dtd\">\n<comps>\n")
	types := []string{"mandatory", "default", "default", "optional"}
	for k := range g {
		bw.printf("  <group>\n    <id>group-%d</id>\n    <name>%s</name>\n    <description>%s.</description>\n    <default>%t</default>\n    <uservisible>%t</uservisible>\n    <packagelist>\n",
			k, sentence(rng, 3), sentence(rng, 12), k%3 == 0, k%4 != 0)
		for range 10 + rng.IntN(51) {
			bw.printf("      <packagereq type=\"%s\">%s</packagereq>\n", types[rng.IntN(len(types))], ps[rng.IntN(len(ps))].name)
		}
		bw.printf("    </packagelist>\n  </group>\n")
	}
	bw.printf("  <category>\n    <id>all</id>\n    <name>Everything</name>\n    <description>Every group.</description>\n    <display_order>10</display_order>\n    <grouplist>\n")
	for k := range g {
		bw.printf("      <groupid>group-%d</groupid>\n", k)
	}
	bw.printf("    </grouplist>\n  </category>\n  <environment>\n    <id>server-product-environment</id>\n    <name>Server</name>\n    <description>A server.</description>\n    <display_order>1</display_order>\n    <grouplist>\n")
	for k := range min(g, 8) {
		bw.printf("      <groupid>group-%d</groupid>\n", k)
	}
	bw.printf("    </grouplist>\n  </environment>\n</comps>\n")
	return bw.err
}

// writeFile writes name through a buffer.
func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// measureRewrite times a rewrite of dir's repo against a plain
// recompression and reports the peak RSS of the process.
func measureRewrite(dir string, pct int) error {
	md, err := metadata.ParseRepomd(mustRead(filepath.Join(dir, "repodata", "repomd.xml")))
	if err != nil {
		return err
	}
	open := func(kind string) (*os.File, metadata.Codec, error) {
		rec, ok := md.Record(kind)
		if !ok {
			return nil, "", fmt.Errorf("no %s record", kind)
		}
		f, err := os.Open(filepath.Join(dir, rec.Href))
		return f, metadata.CodecOf(rec.Href), err
	}
	const limit = 4 << 30
	n := 0
	decide := func(id metadata.PackageID, pkgid string) metadata.Decision {
		n++
		if pct > 0 && n%(100/pct) == 0 {
			return metadata.Decision{Action: metadata.ActionAnnotate, Findings: []metadata.Finding{
				{Class: metadata.ClassABIChanged, Reason: "soname version node removed", Link: "https://example.invalid/abi"}}}
		}
		return metadata.Decision{}
	}

	start, cpuStart := time.Now(), cpuTime()
	f, codec, err := open("primary")
	if err != nil {
		return err
	}
	plan, err := metadata.NewPlan(f, codec, limit, decide)
	f.Close()
	if err != nil {
		return err
	}
	planWall, planCPU := time.Since(start), cpuTime()-cpuStart

	start, cpuStart = time.Now(), cpuTime()
	var openBytes int64
	for _, kind := range []metadata.FileKind{metadata.KindPrimary, metadata.KindFilelists, metadata.KindOther} {
		f, codec, err := open(string(kind))
		if err != nil {
			return err
		}
		res, err := plan.Rewrite(kind, f, codec, io.Discard, metadata.Gzip, limit)
		f.Close()
		if err != nil {
			return err
		}
		openBytes += res.OpenSize
	}
	rewrite, rewriteCPU := time.Since(start), cpuTime()-cpuStart
	hwmRewrite := vmHWM()

	start, cpuStart = time.Now(), cpuTime()
	for _, kind := range []string{"primary", "filelists", "other"} {
		f, codec, err := open(kind)
		if err != nil {
			return err
		}
		rc, err := metadata.Decompress(f, codec, limit)
		if err != nil {
			return err
		}
		zw, err := metadata.Compress(io.Discard, metadata.Gzip)
		if err != nil {
			return err
		}
		if _, err := io.Copy(zw, rc); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		f.Close()
	}
	baseline, baselineCPU := time.Since(start), cpuTime()-cpuStart
	fmt.Printf("packages %d, annotated %d, uncompressed XML %.1f MB\n", plan.Packages, plan.Annotated, float64(openBytes)/1e6)
	mbs := func(d time.Duration) float64 { return float64(openBytes) / 1e6 / d.Seconds() }
	fmt.Printf("rewrite   wall %v (%.0f MB/s), CPU %v (%.0f MB/s)\n", rewrite.Round(time.Millisecond), mbs(rewrite), rewriteCPU.Round(time.Millisecond), mbs(rewriteCPU))
	fmt.Printf("baseline  wall %v (%.0f MB/s), CPU %v (%.0f MB/s): decompress+recompress only\n", baseline.Round(time.Millisecond), mbs(baseline), baselineCPU.Round(time.Millisecond), mbs(baselineCPU))
	fmt.Printf("NewPlan   wall %v, CPU %v (a pass over primary.xml; PlanOf skips it)\n", planWall.Round(time.Millisecond), planCPU.Round(time.Millisecond))
	fmt.Printf("ratio     wall %.2f, CPU %.2f (target <= 1.5); with NewPlan wall %.2f, CPU %.2f\n",
		rewrite.Seconds()/baseline.Seconds(), rewriteCPU.Seconds()/baselineCPU.Seconds(),
		(rewrite+planWall).Seconds()/baseline.Seconds(), (rewriteCPU+planCPU).Seconds()/baselineCPU.Seconds())
	fmt.Printf("VmHWM after rewrite %s (target <= 128 MiB)\n", hwmRewrite)
	return nil
}

func mustRead(name string) []byte {
	data, err := os.ReadFile(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genrepo:", err)
		os.Exit(1)
	}
	return data
}

// cpuTime returns the user+system CPU time of the process so far. On a
// shared machine it measures the work better than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmHWM returns the VmHWM line of /proc/self/status (peak resident set).
func vmHWM() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for line := range bytes.Lines(data) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			return strings.Join(strings.Fields(string(v)), " ")
		}
	}
	return "unknown"
}
