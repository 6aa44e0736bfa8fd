// Command synthrepo writes the metadata of a synthetic rpm-md repository:
// repodata/repomd.xml and gzip-compressed primary, filelists and other
// files describing -n made-up packages. No RPM file is written: the repo is
// for `dnf makecache`, which reads metadata only. The output is the same for
// the same -n.
//
//	synthrepo -n 20000 DIR
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

const epoch = 1704067200 // 2024-01-01, for every timestamp

func main() {
	n := flag.Int("n", 20000, "number of packages")
	flag.Parse()
	if flag.NArg() != 1 || *n < 1 || *n > 1000000 {
		fmt.Fprintln(os.Stderr, "usage: synthrepo [-n 1..1000000] DIR")
		os.Exit(2)
	}
	if err := write(flag.Arg(0), *n); err != nil {
		fmt.Fprintln(os.Stderr, "synthrepo:", err)
		os.Exit(1)
	}
}

type pkg struct {
	name, ver, rel, arch, pkgid string
}

func pkgs(n int) []pkg {
	ps := make([]pkg, n)
	arches := []string{"x86_64", "noarch"}
	for i := range ps {
		p := pkg{
			name: fmt.Sprintf("synth-%06d", i),
			ver:  fmt.Sprintf("1.%d.%d", i%7, i%13),
			rel:  fmt.Sprintf("%d.el9", 1+i%3),
			arch: arches[i%len(arches)],
		}
		sum := sha256.Sum256([]byte(p.name + "-" + p.ver + "-" + p.rel + "." + p.arch))
		p.pkgid = hex.EncodeToString(sum[:])
		ps[i] = p
	}
	return ps
}

func primary(w io.Writer, ps []pkg) {
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"+
		"<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"%d\">\n", len(ps))
	for i, p := range ps {
		size := 20000 + (i*7919)%500000
		fmt.Fprintf(w, `<package type="rpm">
  <name>%[1]s</name>
  <arch>%[4]s</arch>
  <version epoch="0" ver="%[2]s" rel="%[3]s"/>
  <checksum type="sha256" pkgid="YES">%[5]s</checksum>
  <summary>Synthetic package %[1]s for benchmarks</summary>
  <description>%[1]s is a made-up package. Its metadata has the shape of a real one so that dnf spends the time it would on a distribution repository: parsing, solv conversion, file lists.</description>
  <packager>dnfproxy bench</packager>
  <url>https://example.invalid/%[1]s</url>
  <time file="%[6]d" build="%[6]d"/>
  <size package="%[7]d" installed="%[8]d" archive="%[9]d"/>
  <location href="Packages/%[1]s-%[2]s-%[3]s.%[4]s.rpm"/>
  <format>
    <rpm:license>MIT</rpm:license>
    <rpm:vendor>bench</rpm:vendor>
    <rpm:group>Unspecified</rpm:group>
    <rpm:buildhost>bench.example.invalid</rpm:buildhost>
    <rpm:sourcerpm>%[1]s-%[2]s-%[3]s.src.rpm</rpm:sourcerpm>
    <rpm:header-range start="4504" end="%[10]d"/>
    <rpm:provides>
      <rpm:entry name="%[1]s" flags="EQ" epoch="0" ver="%[2]s" rel="%[3]s"/>
      <rpm:entry name="lib%[1]s.so.1()(64bit)"/>
    </rpm:provides>
    <rpm:requires>
      <rpm:entry name="lib%[11]s.so.1()(64bit)"/>
      <rpm:entry name="rtld(GNU_HASH)"/>
    </rpm:requires>
    <file>/usr/bin/%[1]s</file>
  </format>
</package>
`, p.name, p.ver, p.rel, p.arch, p.pkgid, epoch, size, size*3, size*3+512, 4504+size/20,
			ps[(i*31+1)%len(ps)].name)
	}
	io.WriteString(w, "</metadata>\n")
}

func filelists(w io.Writer, ps []pkg) {
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"+
		"<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"%d\">\n", len(ps))
	for _, p := range ps {
		fmt.Fprintf(w, `<package pkgid="%[1]s" name="%[2]s" arch="%[3]s">
  <version epoch="0" ver="%[4]s" rel="%[5]s"/>
  <file>/usr/bin/%[2]s</file>
  <file>/usr/lib64/lib%[2]s.so.1</file>
  <file>/usr/lib64/lib%[2]s.so.1.0.0</file>
  <file type="dir">/usr/share/doc/%[2]s</file>
  <file>/usr/share/doc/%[2]s/README</file>
  <file>/usr/share/man/man1/%[2]s.1.gz</file>
</package>
`, p.pkgid, p.name, p.arch, p.ver, p.rel)
	}
	io.WriteString(w, "</filelists>\n")
}

func other(w io.Writer, ps []pkg) {
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"+
		"<otherdata xmlns=\"http://linux.duke.edu/metadata/other\" packages=\"%d\">\n", len(ps))
	for _, p := range ps {
		fmt.Fprintf(w, `<package pkgid="%[1]s" name="%[2]s" arch="%[3]s">
  <version epoch="0" ver="%[4]s" rel="%[5]s"/>
  <changelog author="Bench &lt;bench@example.invalid&gt; - %[4]s-%[5]s" date="%[6]d">- Rebuilt for the benchmark</changelog>
</package>
`, p.pkgid, p.name, p.arch, p.ver, p.rel, epoch)
	}
	io.WriteString(w, "</otherdata>\n")
}

type record struct {
	typ, href      string
	sum, openSum   string
	size, openSize int
}

// writeGz compresses what gen writes into repodata/<sum>-<typ>.xml.gz.
func writeGz(dir, typ string, gen func(io.Writer)) (record, error) {
	var raw bytes.Buffer
	gen(&raw)
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return record{}, err
	}
	zw.ModTime = time.Unix(epoch, 0)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return record{}, err
	}
	if err := zw.Close(); err != nil {
		return record{}, err
	}
	open := sha256.Sum256(raw.Bytes())
	sum := sha256.Sum256(gz.Bytes())
	r := record{
		typ: typ, sum: hex.EncodeToString(sum[:]), openSum: hex.EncodeToString(open[:]),
		size: gz.Len(), openSize: raw.Len(),
	}
	r.href = "repodata/" + r.sum + "-" + typ + ".xml.gz"
	return r, os.WriteFile(filepath.Join(dir, r.href), gz.Bytes(), 0o644)
}

func write(dir string, n int) error {
	if err := os.MkdirAll(filepath.Join(dir, "repodata"), 0o755); err != nil {
		return err
	}
	ps := pkgs(n)
	var recs []record
	for _, g := range []struct {
		typ string
		gen func(io.Writer, []pkg)
	}{{"primary", primary}, {"filelists", filelists}, {"other", other}} {
		r, err := writeGz(dir, g.typ, func(w io.Writer) { g.gen(w, ps) })
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"+
		"<repomd xmlns=\"http://linux.duke.edu/metadata/repo\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n"+
		"  <revision>%d</revision>\n", epoch)
	for _, r := range recs {
		fmt.Fprintf(&b, `  <data type="%s">
    <checksum type="sha256">%s</checksum>
    <open-checksum type="sha256">%s</open-checksum>
    <location href="%s"/>
    <timestamp>%d</timestamp>
    <size>%d</size>
    <open-size>%d</open-size>
  </data>
`, r.typ, r.sum, r.openSum, r.href, epoch, r.size, r.openSize)
	}
	b.WriteString("</repomd>\n")
	return os.WriteFile(filepath.Join(dir, "repodata", "repomd.xml"), b.Bytes(), 0o644)
}
