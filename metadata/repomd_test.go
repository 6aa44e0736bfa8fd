package metadata_test

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// fixedTime is the revision and, with --set-timestamp-to-revision, every
// timestamp of the generated repomd.xml.
const fixedTime = testenv.SourceDateEpoch

var (
	xmlTypes = []string{"primary", "filelists", "other"}
	dbTypes  = []string{"primary_db", "filelists_db", "other_db"}
	zckTypes = []string{"primary_zck", "filelists_zck", "other_zck"}
)

// TestParseRepomdCreaterepo parses repomd.xml as createrepo_c writes it in
// each flavour and checks every record against the file it names: size and
// checksum by hashing the file, open-size and open-checksum by decompressing
// it with Decompress.
func TestParseRepomdCreaterepo(t *testing.T) {
	type want struct {
		types  []string                  // in repomd order
		codecs map[string]metadata.Codec // by record type
	}
	codecs := func(xml, db metadata.Codec, withZck bool) map[string]metadata.Codec {
		m := map[string]metadata.Codec{}
		for _, typ := range xmlTypes {
			m[typ] = xml
		}
		for _, typ := range dbTypes {
			m[typ] = db
		}
		if withZck {
			for _, typ := range zckTypes {
				m[typ] = metadata.Zck
			}
		}
		return m
	}
	cat := func(lists ...[]string) []string { return slices.Concat(lists...) }
	tests := []struct {
		name string
		args []string
		sum  string // checksum type createrepo_c should use
		want want
	}{
		{"gz", []string{"--general-compress-type=gz"}, "sha256",
			want{cat(xmlTypes, dbTypes), codecs(metadata.Gzip, metadata.Gzip, false)}},
		{"gz-no-database", []string{"--general-compress-type=gz", "--no-database"}, "sha256",
			want{xmlTypes, codecs(metadata.Gzip, "", false)}},
		{"xz", []string{"--general-compress-type=xz"}, "sha256",
			want{cat(xmlTypes, dbTypes), codecs(metadata.Xz, metadata.Xz, false)}},
		{"xz-no-database", []string{"--general-compress-type=xz", "--no-database"}, "sha256",
			want{xmlTypes, codecs(metadata.Xz, "", false)}},
		{"zstd", []string{"--general-compress-type=zstd"}, "sha256",
			want{cat(xmlTypes, dbTypes), codecs(metadata.Zstd, metadata.Zstd, false)}},
		{"zstd-no-database", []string{"--general-compress-type=zstd", "--no-database"}, "sha256",
			want{xmlTypes, codecs(metadata.Zstd, "", false)}},
		{"bz2", []string{"--general-compress-type=bz2"}, "sha256",
			want{cat(xmlTypes, dbTypes), codecs(metadata.Bzip2, metadata.Bzip2, false)}},
		{"bz2-no-database", []string{"--general-compress-type=bz2", "--no-database"}, "sha256",
			want{xmlTypes, codecs(metadata.Bzip2, "", false)}},
		{"zck", []string{"--zck"}, "sha256",
			want{cat(xmlTypes, dbTypes, zckTypes), codecs(metadata.Gzip, metadata.Bzip2, true)}},
		{"zck-no-database", []string{"--zck", "--no-database"}, "sha256",
			want{cat(xmlTypes, zckTypes), codecs(metadata.Gzip, "", true)}},
		{"sha1", []string{"--checksum=sha1", "--no-database"}, "sha1",
			want{xmlTypes, codecs(metadata.Gzip, "", false)}},
		{"sha512", []string{"--checksum=sha512", "--no-database"}, "sha512",
			want{xmlTypes, codecs(metadata.Gzip, "", false)}},
		{"sha512-xz-database", []string{"--checksum=sha512", "--general-compress-type=xz"}, "sha512",
			want{cat(xmlTypes, dbTypes), codecs(metadata.Xz, metadata.Xz, false)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{
				"--revision=" + strconv.Itoa(fixedTime), "--set-timestamp-to-revision",
			}, tt.args...)
			if strings.Contains(tt.name, "zstd") && !createrepoAccepts(t, args...) {
				// createrepo_c < 1.0 cannot write zstd; TestDecompressReferenceTools
				// covers the zstd codec with the zstd tool instead.
				t.Skip("this createrepo_c cannot write zstd metadata")
			}
			dir, md := makeRepo(t, testenv.InitialRPMs(), args...)
			if md.Revision != strconv.Itoa(fixedTime) {
				t.Errorf("Revision = %q, want %d", md.Revision, fixedTime)
			}
			var types []string
			for _, rec := range md.Records {
				types = append(types, rec.Type)
			}
			if !slices.Equal(types, tt.want.types) {
				t.Fatalf("record types = %q, want %q", types, tt.want.types)
			}
			for _, rec := range md.Records {
				checkRecord(t, dir, rec, tt.sum, tt.want.codecs[rec.Type])
				got, ok := md.Record(rec.Type)
				if !ok || got != rec {
					t.Errorf("Record(%q) = %+v, %v; want %+v", rec.Type, got, ok, rec)
				}
			}
			// The zchunk files hold the same XML as the classic ones.
			for i, typ := range xmlTypes {
				if z, ok := md.Record(zckTypes[i]); ok {
					x, _ := md.Record(typ)
					if z.OpenChecksum != x.OpenChecksum || z.OpenSize != x.OpenSize {
						t.Errorf("%s open %v/%d != %s open %v/%d", z.Type, z.OpenChecksum, z.OpenSize, typ, x.OpenChecksum, x.OpenSize)
					}
				}
			}
			if _, ok := md.Record("updateinfo"); ok {
				t.Errorf("Record(updateinfo) found a record createrepo_c did not write")
			}
		})
	}
}

// checkRecord verifies one record against the file it names.
func checkRecord(t *testing.T, dir string, rec metadata.Record, sumType string, codec metadata.Codec) {
	t.Helper()
	if !strings.HasPrefix(rec.Href, "repodata/"+rec.Checksum.Value+"-") {
		t.Errorf("%s: href %q does not carry its checksum (unique-md-filenames)", rec.Type, rec.Href)
	}
	if got := metadata.CodecOf(rec.Href); got != codec {
		t.Errorf("%s: CodecOf(%q) = %q, want %q", rec.Type, rec.Href, got, codec)
	}
	// createrepo_c 0.17 gives the zchunk records the current time even with
	// --set-timestamp-to-revision.
	if rec.Timestamp != fixedTime && !(codec == metadata.Zck && rec.Timestamp > fixedTime) {
		t.Errorf("%s: Timestamp = %d, want %d", rec.Type, rec.Timestamp, fixedTime)
	}
	if rec.Checksum.Type != sumType || rec.OpenChecksum.Type != sumType {
		t.Errorf("%s: checksum types %q/%q, want %q", rec.Type, rec.Checksum.Type, rec.OpenChecksum.Type, sumType)
	}
	data := readFile(t, filepath.Join(dir, filepath.FromSlash(rec.Href)))
	if rec.Size != int64(len(data)) {
		t.Errorf("%s: Size = %d, file has %d bytes", rec.Type, rec.Size, len(data))
	}
	if got := sumOf(t, rec.Checksum.Type, data); got != rec.Checksum {
		t.Errorf("%s: Checksum = %v, file hashes to %v", rec.Type, rec.Checksum, got)
	}
	if codec == metadata.Zck {
		// Decompress does not read zchunk (the proxy passes .zck files
		// through); it must say so rather than return garbage.
		if _, err := metadata.Decompress(bytes.NewReader(data), codec, 1<<30); !errors.Is(err, metadata.ErrMalformed) {
			t.Errorf("%s: Decompress(zck) error = %v, want ErrMalformed", rec.Type, err)
		}
		return
	}
	zr, err := metadata.Decompress(bytes.NewReader(data), codec, 1<<30)
	if err != nil {
		t.Fatalf("%s: Decompress: %v", rec.Type, err)
	}
	open, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: reading decompressed %s: %v", rec.Type, rec.Href, err)
	}
	if err := zr.Close(); err != nil {
		t.Errorf("%s: Close: %v", rec.Type, err)
	}
	if rec.OpenSize != int64(len(open)) {
		t.Errorf("%s: OpenSize = %d, decompressed %d bytes", rec.Type, rec.OpenSize, len(open))
	}
	if got := sumOf(t, rec.OpenChecksum.Type, open); got != rec.OpenChecksum {
		t.Errorf("%s: OpenChecksum = %v, decompressed content hashes to %v", rec.Type, rec.OpenChecksum, got)
	}
	// An exact limit is enough; one byte less is not.
	for _, tc := range []struct {
		limit   int64
		wantErr error
	}{{int64(len(open)), nil}, {int64(len(open)) - 1, metadata.ErrTooLarge}} {
		zr, err := metadata.Decompress(bytes.NewReader(data), codec, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, zr)
		zr.Close()
		if !errors.Is(err, tc.wantErr) && (err != nil || tc.wantErr != nil) {
			t.Errorf("%s: Decompress with limit %d: error %v, want %v", rec.Type, tc.limit, err, tc.wantErr)
		}
	}
}

// A minimal valid repomd.xml; the rejection cases below each break one thing.
const goodRepomd = `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>7</revision>
  <data type="primary">
    <checksum type="sha256">9b8e1ec7712ab35f558635331fcb00b87690a04f7afa86f59276ac9bd2e35627</checksum>
    <open-checksum type="sha256">3edc55c8fec8346cfb9afe1e2326ff8c0704baf732ddca5964575345db085600</open-checksum>
    <location href="repodata/p.xml.gz"/>
    <timestamp>1795342181</timestamp>
    <size>1046</size>
    <open-size>4639</open-size>
  </data>
</repomd>
`

const (
	sum256  = "9b8e1ec7712ab35f558635331fcb00b87690a04f7afa86f59276ac9bd2e35627"
	open256 = "3edc55c8fec8346cfb9afe1e2326ff8c0704baf732ddca5964575345db085600"
)

func TestParseRepomdMinimal(t *testing.T) {
	md, err := metadata.ParseRepomd([]byte(goodRepomd))
	if err != nil {
		t.Fatal(err)
	}
	want := metadata.Record{
		Type: "primary", Href: "repodata/p.xml.gz",
		Checksum:     metadata.Checksum{Type: "sha256", Value: sum256},
		OpenChecksum: metadata.Checksum{Type: "sha256", Value: open256},
		Size:         1046, OpenSize: 4639, Timestamp: 1795342181,
	}
	if md.Revision != "7" || len(md.Records) != 1 || md.Records[0] != want {
		t.Errorf("ParseRepomd = %+v, want revision 7 and %+v", md, want)
	}
}

func TestParseRepomdAccepts(t *testing.T) {
	tests := []struct {
		name  string
		old   string // replaced in goodRepomd
		new   string
		check func(*testing.T, metadata.Record)
	}{
		{"upper-case hex and spaces", sum256 + "<", " " + strings.ToUpper(sum256) + "\n<", func(t *testing.T, r metadata.Record) {
			if r.Checksum.Value != sum256 {
				t.Errorf("Checksum.Value = %q, want it lower-cased and trimmed", r.Checksum.Value)
			}
		}},
		{"sha means sha1", `<checksum type="sha256">` + sum256, `<checksum type="sha">` + sum256[:40], func(t *testing.T, r metadata.Record) {
			if r.Checksum.Type != "sha1" {
				t.Errorf("Checksum.Type = %q, want sha1", r.Checksum.Type)
			}
		}},
		{"no sizes", "<size>1046</size>\n    <open-size>4639</open-size>", "", func(t *testing.T, r metadata.Record) {
			if r.Size != -1 || r.OpenSize != -1 {
				t.Errorf("Size, OpenSize = %d, %d; want -1, -1", r.Size, r.OpenSize)
			}
		}},
		{"no open-checksum", `<open-checksum type="sha256">` + open256 + `</open-checksum>`, "", func(t *testing.T, r metadata.Record) {
			if !r.OpenChecksum.IsZero() || r.OpenChecksum.String() != "" {
				t.Errorf("OpenChecksum = %v, want zero", r.OpenChecksum)
			}
		}},
		{"unknown elements", "<revision>", "<tags><content>x</content></tags><revision>", nil},
		// Old yum wrote fractional timestamps (librepo's repo_yum_02):
		// librepo and dnf accept them.
		{"fractional timestamp", "<timestamp>1795342181", "<timestamp>1795342181.84", func(t *testing.T, r metadata.Record) {
			if r.Timestamp != 1795342181 {
				t.Errorf("Timestamp = %d, want 1795342181 (truncated)", r.Timestamp)
			}
		}},
		{"timestamp not a time", "<timestamp>1795342181", "<timestamp>yesterday", func(t *testing.T, r metadata.Record) {
			if r.Timestamp != 0 {
				t.Errorf("Timestamp = %d, want 0 (none)", r.Timestamp)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.Replace(goodRepomd, tt.old, tt.new, 1)
			if in == goodRepomd {
				t.Fatalf("test case does not change the input: %q not found", tt.old)
			}
			md, err := metadata.ParseRepomd([]byte(in))
			if err != nil {
				t.Fatalf("ParseRepomd: %v", err)
			}
			if tt.check != nil {
				tt.check(t, md.Records[0])
			}
		})
	}
}

func TestParseRepomdRejects(t *testing.T) {
	dup := strings.Replace(goodRepomd, "</repomd>", `<data type="primary">
    <checksum type="sha256">`+sum256+`</checksum>
    <location href="repodata/q.xml.gz"/>
  </data>
</repomd>`, 1)
	tests := []struct {
		name string
		old  string // replaced in goodRepomd; "" means use new as the whole input
		new  string
	}{
		{"empty input", "", ""},
		{"whitespace only", "", " \n"},
		{"empty repomd", "", `<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision></repomd>`},
		{"other root element", "", `<metadata><data type="primary"/></metadata>`},
		{"not xml", "", "{\"repomd\": true}"},
		{"truncated", "", goodRepomd[:len(goodRepomd)/2]},
		{"unclosed element", "</data>", ""},
		{"mismatched tags", "</size>", "</sizes>"},
		{"bad entity", "<revision>7", "<revision>&bogus;"},
		{"junk after the document", "</repomd>\n", "</repomd>\n<html>mirror footer</html>\n"},
		{"second root element", "</repomd>\n", "</repomd>\n<repomd><data type=\"x\"/></repomd>\n"},
		{"no type", `<data type="primary">`, `<data>`},
		{"missing checksum", `<checksum type="sha256">` + sum256 + `</checksum>`, ""},
		{"empty checksum", sum256, ""},
		{"short hex", sum256, sum256[:63]},
		{"long hex", sum256, sum256 + "0"},
		{"sha1 length for sha256", sum256, sum256[:40]},
		{"non-hex digit", sum256, "g" + sum256[1:]},
		{"unknown checksum type", `<checksum type="sha256">`, `<checksum type="crc32">`},
		{"no checksum type", `<checksum type="sha256">`, `<checksum>`},
		{"bad open-checksum", open256, open256[1:]},
		{"duplicate type", "", dup},
		{"no location", `<location href="repodata/p.xml.gz"/>`, ""},
		{"empty href", `href="repodata/p.xml.gz"`, `href=""`},
		{"dot-dot href", `href="repodata/p.xml.gz"`, `href="../p.xml.gz"`},
		{"inner dot-dot href", `href="repodata/p.xml.gz"`, `href="repodata/../../p.xml.gz"`},
		{"absolute href", `href="repodata/p.xml.gz"`, `href="/etc/passwd"`},
		{"url href", `href="repodata/p.xml.gz"`, `href="http://evil.example/p.xml.gz"`},
		{"xml:base location", `<location href`, `<location xml:base="http://mirror.example/" href`},
		{"negative size", "<size>1046", "<size>-1"},
		{"non-numeric open-size", "<open-size>4639", "<open-size>12k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.new
			if tt.old != "" {
				in = strings.Replace(goodRepomd, tt.old, tt.new, 1)
				if in == goodRepomd {
					t.Fatalf("test case does not change the input: %q not found", tt.old)
				}
			}
			md, err := metadata.ParseRepomd([]byte(in))
			if !errors.Is(err, metadata.ErrMalformed) {
				t.Fatalf("ParseRepomd = %+v, %v; want ErrMalformed", md, err)
			}
			if md != nil {
				t.Errorf("ParseRepomd returned %+v with its error", md)
			}
		})
	}
}

func TestNewChecksum(t *testing.T) {
	tests := []struct {
		typ, value string
		want       metadata.Checksum // zero: an error is expected
	}{
		{"md5", strings.Repeat("a", 32), metadata.Checksum{Type: "md5", Value: strings.Repeat("a", 32)}},
		{"sha", strings.Repeat("b", 40), metadata.Checksum{Type: "sha1", Value: strings.Repeat("b", 40)}},
		{"SHA1", strings.Repeat("B", 40), metadata.Checksum{Type: "sha1", Value: strings.Repeat("b", 40)}},
		{"sha224", strings.Repeat("c", 56), metadata.Checksum{Type: "sha224", Value: strings.Repeat("c", 56)}},
		{" sha256 ", "\n" + sum256 + "\t", metadata.Checksum{Type: "sha256", Value: sum256}},
		{"sha384", strings.Repeat("d", 96), metadata.Checksum{Type: "sha384", Value: strings.Repeat("d", 96)}},
		{"sha512", strings.Repeat("e", 128), metadata.Checksum{Type: "sha512", Value: strings.Repeat("e", 128)}},
		{"sha256", sum256[:32], metadata.Checksum{}},
		{"sha256", "0x" + sum256[2:], metadata.Checksum{}},
		{"sha256", sum256[:32] + " " + sum256[33:], metadata.Checksum{}},
		{"sha3-256", sum256, metadata.Checksum{}},
		{"", sum256, metadata.Checksum{}},
		{"sha512", "", metadata.Checksum{}},
	}
	for _, tt := range tests {
		got, err := metadata.NewChecksum(tt.typ, tt.value)
		if tt.want.IsZero() {
			if !errors.Is(err, metadata.ErrMalformed) || !got.IsZero() {
				t.Errorf("NewChecksum(%q, %q) = %v, %v; want ErrMalformed", tt.typ, tt.value, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NewChecksum(%q, %q) = %v, %v; want %v", tt.typ, tt.value, got, err, tt.want)
		}
		if s := got.String(); s != tt.want.Type+":"+tt.want.Value {
			t.Errorf("String() = %q", s)
		}
	}
}

func TestCleanHref(t *testing.T) {
	accepted := []string{
		"repodata/repomd.xml",
		"repodata/9b8e1ec7-primary.xml.gz",
		"Packages/d/dnfpt-lib-1.0-1.el9.noarch.rpm",
		"x.rpm",
		"Packages/c++-libs-1:2.0~rc1^git-1.el9.x86_64.rpm",
		"a..b/c...rpm",
		"..a/b..",
		".hidden/file",
		"with space/ü.rpm",
	}
	for _, href := range accepted {
		got, err := metadata.CleanHref(href)
		if err != nil || got != href {
			t.Errorf("CleanHref(%q) = %q, %v; want it unchanged", href, got, err)
		}
	}
	rejected := []string{
		"",
		"..",
		"../x.rpm",
		"Packages/../../x.rpm",
		"Packages/..",
		".",
		"./x.rpm",
		"Packages/./x.rpm",
		"Packages//x.rpm",
		"Packages/",
		"/x.rpm",
		"//evil.example/x.rpm",
		`Packages\x.rpm`,
		`..\..\x.rpm`,
		"Packages/x.rpm\x00",
		"Packages/x\n.rpm",
		"Packages/x\r.rpm",
		"Packages/x\t.rpm",
		"Packages/x\x7f.rpm",
		"http://evil.example/x.rpm",
		"https://evil.example/x.rpm",
		"file:///etc/passwd",
		"x.rpm?dl=1",
		"x.rpm#frag",
	}
	for _, href := range rejected {
		if got, err := metadata.CleanHref(href); err == nil {
			t.Errorf("CleanHref(%q) = %q, nil; want an error", href, got)
		}
	}
}

func TestReadLimited(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 100)
	for _, tc := range []struct {
		limit   int64
		wantErr error
	}{{100, nil}, {1000, nil}, {99, metadata.ErrTooLarge}, {0, metadata.ErrTooLarge}} {
		got, err := metadata.ReadLimited(bytes.NewReader(data), tc.limit)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) || got != nil {
				t.Errorf("ReadLimited(100 bytes, %d) = %d bytes, %v; want %v", tc.limit, len(got), err, tc.wantErr)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("ReadLimited(100 bytes, %d) = %d bytes, %v", tc.limit, len(got), err)
		}
	}
	// A read error is returned, not a partial result.
	boom := errors.New("connection reset")
	got, err := metadata.ReadLimited(io.MultiReader(bytes.NewReader(data), errReader{boom}), 1000)
	if !errors.Is(err, boom) || got != nil {
		t.Errorf("ReadLimited(failing reader) = %d bytes, %v; want %v", len(got), err, boom)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
