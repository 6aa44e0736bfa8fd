package metadata

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// ErrMalformed marks metadata that does not parse or is inconsistent.
var ErrMalformed = errors.New("malformed metadata")

// Checksum is a typed digest as rpm-md writes it ("sha256" + hex).
type Checksum struct {
	Type  string // normalised: sha1, sha224, sha256, sha384, sha512, md5
	Value string // lower-case hex
}

// String renders the checksum as "type:hex".
func (c Checksum) String() string {
	if c.Type == "" {
		return ""
	}
	return c.Type + ":" + c.Value
}

// IsZero reports whether no checksum is set.
func (c Checksum) IsZero() bool { return c.Type == "" }

// NewChecksum validates a checksum as found in rpm-md ("sha" means sha1).
func NewChecksum(typ, value string) (Checksum, error) {
	t := strings.ToLower(strings.TrimSpace(typ))
	if t == "sha" {
		t = "sha1"
	}
	want, ok := digestHexLen[t]
	if !ok {
		return Checksum{}, fmt.Errorf("%w: unsupported checksum type %q", ErrMalformed, typ)
	}
	v := strings.ToLower(strings.TrimSpace(value))
	if len(v) != want || !isHex(v) {
		return Checksum{}, fmt.Errorf("%w: bad %s checksum %q", ErrMalformed, t, value)
	}
	return Checksum{Type: t, Value: v}, nil
}

var digestHexLen = map[string]int{"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Record is one <data> entry of repomd.xml.
type Record struct {
	Type         string
	Href         string // location relative to the repo root, e.g. repodata/x-primary.xml.gz
	Checksum     Checksum
	OpenChecksum Checksum // of the uncompressed content; may be zero
	Size         int64    // -1 when repomd does not say
	OpenSize     int64    // -1 when repomd does not say
	Timestamp    int64    // seconds; 0 when repomd does not say (or not as a time)
}

// Repomd is a parsed repomd.xml.
type Repomd struct {
	Revision string
	Records  []Record
}

// Record returns the record of the given type, if any.
func (r *Repomd) Record(typ string) (Record, bool) {
	for _, rec := range r.Records {
		if rec.Type == typ {
			return rec, true
		}
	}
	return Record{}, false
}

type xmlRepomd struct {
	XMLName  xml.Name  `xml:"repomd"`
	Revision string    `xml:"revision"`
	Data     []xmlData `xml:"data"`
}

type xmlSum struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type xmlData struct {
	Type         string  `xml:"type,attr"`
	Checksum     *xmlSum `xml:"checksum"`
	OpenChecksum *xmlSum `xml:"open-checksum"`
	Location     struct {
		Href string `xml:"href,attr"`
		Base string `xml:"base,attr"`
	} `xml:"location"`
	Timestamp string `xml:"timestamp"`
	Size      string `xml:"size"`
	OpenSize  string `xml:"open-size"`
}

// ParseRepomd parses repomd.xml. Every record must have a type, a safe
// relative href (see CleanHref) and a valid checksum; types must be unique.
func ParseRepomd(data []byte) (*Repomd, error) {
	var x xmlRepomd
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("%w: repomd.xml: %v", ErrMalformed, err)
	}
	// Decode stops at the end of the first element. librepo's parser (as any
	// XML parser) rejects a document with more after it, so we must too:
	// otherwise the proxy would publish a repomd.xml that dnf refuses.
	if err := expectEnd(dec); err != nil {
		return nil, fmt.Errorf("%w: repomd.xml: %v", ErrMalformed, err)
	}
	md := &Repomd{Revision: strings.TrimSpace(x.Revision)}
	seen := map[string]bool{}
	for i, d := range x.Data {
		where := fmt.Sprintf("repomd.xml data[%d] (%s)", i, d.Type)
		if d.Type == "" {
			return nil, fmt.Errorf("%w: %s: no type", ErrMalformed, where)
		}
		if seen[d.Type] {
			return nil, fmt.Errorf("%w: %s: duplicate type", ErrMalformed, where)
		}
		seen[d.Type] = true
		href, err := CleanHref(d.Location.Href)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: location: %v", ErrMalformed, where, err)
		}
		if d.Location.Base != "" {
			return nil, fmt.Errorf("%w: %s: xml:base locations are not supported", ErrMalformed, where)
		}
		if d.Checksum == nil {
			return nil, fmt.Errorf("%w: %s: no checksum", ErrMalformed, where)
		}
		rec := Record{Type: d.Type, Href: href, Size: -1, OpenSize: -1}
		if rec.Checksum, err = NewChecksum(d.Checksum.Type, d.Checksum.Value); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if d.OpenChecksum != nil {
			if rec.OpenChecksum, err = NewChecksum(d.OpenChecksum.Type, d.OpenChecksum.Value); err != nil {
				return nil, fmt.Errorf("%s: open-checksum: %w", where, err)
			}
		}
		// The timestamp is informational: old yum wrote fractions of a
		// second ("1355315696.84"), and librepo and dnf take such repos, so
		// anything that is not a time is read as none. Sizes are checked.
		rec.Timestamp, _ = ParseTimestamp(d.Timestamp)
		for _, f := range []struct {
			s   string
			dst *int64
		}{{d.Size, &rec.Size}, {d.OpenSize, &rec.OpenSize}} {
			s := strings.TrimSpace(f.s)
			if s == "" {
				continue
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: %s: bad number %q", ErrMalformed, where, s)
			}
			*f.dst = n
		}
		md.Records = append(md.Records, rec)
	}
	if len(md.Records) == 0 {
		return nil, fmt.Errorf("%w: repomd.xml lists no data", ErrMalformed)
	}
	return md, nil
}

// ParseTimestamp reads a repomd.xml <timestamp>: whole seconds since the
// epoch, or seconds with a fraction as old yum wrote them, truncated. ok is
// false (and the time 0) for anything else, which callers treat as no
// timestamp.
func ParseTimestamp(s string) (sec int64, ok bool) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return max(n, 0), n >= 0
	}
	whole, frac, found := strings.Cut(s, ".")
	if !found || whole == "" || !isDigits(whole) || !isDigits(frac) {
		return 0, false
	}
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// expectEnd reads the rest of a document whose root element dec has
// decoded and fails unless only white space, comments and processing
// instructions follow.
func expectEnd(dec *xml.Decoder) error {
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case xml.Comment, xml.ProcInst:
		case xml.CharData:
			if len(bytes.TrimSpace(tok)) != 0 {
				return errors.New("text after the root element")
			}
		default:
			return errors.New("content after the root element")
		}
	}
}

// CleanHref checks a location href from metadata: relative, no "..", no
// empty or "." segments, no backslashes or control characters. It returns
// the href unchanged when it is safe.
func CleanHref(href string) (string, error) {
	if href == "" {
		return "", errors.New("empty href")
	}
	if strings.ContainsAny(href, "\\?#") || strings.Contains(href, "://") {
		return "", fmt.Errorf("href %q is not a plain relative path", href)
	}
	for _, r := range href {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("href %q has a control character", href)
		}
	}
	if strings.HasPrefix(href, "/") || path.Clean(href) != href {
		return "", fmt.Errorf("href %q is not a clean relative path", href)
	}
	for _, seg := range strings.Split(href, "/") {
		if seg == ".." || seg == "." || seg == "" {
			return "", fmt.Errorf("href %q escapes its root", href)
		}
	}
	return href, nil
}

// ReadLimited reads all of r, failing once more than limit bytes arrive.
func ReadLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: larger than the %d-byte limit", ErrTooLarge, limit)
	}
	return data, nil
}

// ResolveLocation says where a package of primary.xml lives, given its
// <location xml:base="base" href="href"/> and the URLs the repo root is
// served from upstream (its url and mirrors, each naming the root
// directory). createrepo_c --baseurl writes such bases; clients join base
// and href with one slash (librepo's path concatenation, not RFC 3986
// resolution), and so does ResolveLocation.
//
// With no base, or a base that puts the package below one of roots, inside
// is true and rel is the package's path relative to the root, checked with
// CleanHref. Otherwise inside is false: the package lives elsewhere, the
// client fetches it from there directly, and the proxy must not (it is not
// an open proxy). A base is compared by scheme, host (case and default port
// aside) and cleaned path; one with a query, a fragment or user info, or
// that is not absolute, is never inside. err is set only for an href that
// is unsafe on its own.
func ResolveLocation(base, href string, roots []string) (rel string, inside bool, err error) {
	if base == "" {
		rel, err := CleanHref(href)
		return rel, err == nil, err
	}
	if strings.ContainsAny(href, "?#\\") || strings.Contains(href, "://") || strings.HasPrefix(href, "/") {
		return "", false, fmt.Errorf("href %q is not a plain relative path", href)
	}
	b, err := url.Parse(base)
	if err != nil || !b.IsAbs() || b.Host == "" || b.User != nil || b.RawQuery != "" || b.Fragment != "" || b.ForceQuery {
		return "", false, nil
	}
	full := path.Clean("/" + strings.Trim(b.Path, "/") + "/" + href)
	for _, root := range roots {
		r, err := url.Parse(root)
		if err != nil || !r.IsAbs() || !strings.EqualFold(r.Scheme, b.Scheme) || hostKey(r) != hostKey(b) {
			continue
		}
		prefix := path.Clean("/"+strings.Trim(r.Path, "/")) + "/"
		if prefix == "//" {
			prefix = "/"
		}
		if rest, ok := strings.CutPrefix(full, prefix); ok {
			if rel, err := CleanHref(rest); err == nil {
				return rel, true, nil
			}
		}
	}
	return "", false, nil
}

// hostKey is a URL's host in lower case without the scheme's default port.
func hostKey(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	switch {
	case port == "",
		port == "80" && strings.EqualFold(u.Scheme, "http"),
		port == "443" && strings.EqualFold(u.Scheme, "https"):
		return host
	}
	return host + ":" + port
}

// NewHash returns a hash for a checksum type as rpm-md and metalinks name
// them ("sha" is sha1), or an error for a type no verification can use.
// It is the one table of checksum types: fills, metalink verification and
// the tests use it.
func NewHash(typ string) (hash.Hash, error) {
	switch typ {
	case "md5":
		return md5.New(), nil
	case "sha1", "sha":
		return sha1.New(), nil
	case "sha224":
		return sha256.New224(), nil
	case "sha256":
		return sha256.New(), nil
	case "sha384":
		return sha512.New384(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unsupported checksum type %q", typ)
}
