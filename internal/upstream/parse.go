package upstream

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Hash is one checksum a metalink gives for repomd.xml.
type Hash struct {
	Type  string `json:"type"`  // md5, sha1, sha224, sha256, sha384 or sha512
	Value string `json:"value"` // lowercase hex
}

// hashRank orders the checksum types by strength; 0 is unknown.
var hashRank = map[string]int{"md5": 1, "sha1": 2, "sha224": 3, "sha256": 4, "sha384": 5, "sha512": 6}

// repomdSuffix is what a metalink URL ends with; the rest is the root's base.
const repomdSuffix = "repodata/repomd.xml"

// parsedList is what a metalink or mirrorlist document says.
type parsedList struct {
	bases    []string // root bases, http(s), each ending in "/", by preference
	hashes   []Hash   // best hash of repomd.xml itself, then of each alternate
	metalink bool
}

type xmlHash struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type xmlVerification struct {
	Hashes []xmlHash `xml:"hash"`
}

type xmlMetalink struct {
	XMLName xml.Name
	Files   []struct {
		Name         string          `xml:"name,attr"`
		Verification xmlVerification `xml:"verification"`
		Alternates   []struct {
			Verification xmlVerification `xml:"verification"`
		} `xml:"alternates>alternate"`
		URLs []struct {
			Preference string `xml:"preference,attr"`
			URL        string `xml:",chardata"`
		} `xml:"resources>url"`
	} `xml:"files>file"`
}

// parseMetalink reads a metalink 3.0 document (MirrorManager's, as dnf
// gets it) leniently: what dnf does not need (timestamps, sizes, locations,
// bad preferences, unknown hash types) is skipped, not refused. It is an
// error when the document is not XML or lists no repomd.xml.
func parseMetalink(data []byte) (parsedList, error) {
	var doc xmlMetalink
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	if err := dec.Decode(&doc); err != nil {
		return parsedList{}, fmt.Errorf("metalink: %w", err)
	}
	if doc.XMLName.Local != "metalink" {
		return parsedList{}, fmt.Errorf("metalink: root element is <%s>", doc.XMLName.Local)
	}
	for _, f := range doc.Files {
		if f.Name != "repomd.xml" {
			continue
		}
		out := parsedList{metalink: true}
		if h, ok := bestHash(f.Verification.Hashes); ok {
			out.hashes = append(out.hashes, h)
		}
		for _, alt := range f.Alternates {
			if h, ok := bestHash(alt.Verification.Hashes); ok {
				out.hashes = append(out.hashes, h)
			}
		}
		type pref struct {
			base string
			p    int
		}
		var urls []pref
		seen := map[string]bool{}
		for _, u := range f.URLs {
			// As librepo does, the suffix is cut when it is there, and a URL
			// without it is taken as the base itself.
			base, ok := httpBase(strings.TrimSuffix(strings.TrimSpace(u.URL), repomdSuffix))
			if !ok || seen[base] {
				continue
			}
			seen[base] = true
			p, err := strconv.Atoi(strings.TrimSpace(u.Preference))
			if err != nil || p < 0 {
				p = 0
			}
			urls = append(urls, pref{base, p})
		}
		sort.SliceStable(urls, func(i, j int) bool { return urls[i].p > urls[j].p })
		for _, u := range urls {
			out.bases = append(out.bases, u.base)
		}
		return out, nil
	}
	return parsedList{}, errors.New("metalink: no <file name=\"repomd.xml\">")
}

// bestHash picks the strongest hash of a known type with a well-formed
// value, as librepo does for the metalink and for each alternate.
func bestHash(hs []xmlHash) (Hash, bool) {
	var best Hash
	for _, h := range hs {
		typ := strings.ToLower(strings.TrimSpace(h.Type))
		val := strings.ToLower(strings.TrimSpace(h.Value))
		if hashRank[typ] == 0 || val == "" || hashRank[typ] <= hashRank[best.Type] {
			continue
		}
		best = Hash{Type: typ, Value: val}
	}
	return best, best.Type != ""
}

// httpBase checks that s is an http(s) URL with a host, and returns it
// ending in "/".
func httpBase(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return "", false
	}
	return s, true
}

// parseMirrorlist reads a mirrorlist: one URL a line, "#" comments and
// blank lines skipped, surrounding blanks trimmed. Only http(s) URLs are
// kept (the proxy speaks no ftp or rsync). A document that is a metalink
// (some mirrorlist= URLs answer with one) is read as a metalink.
func parseMirrorlist(data []byte) (parsedList, error) {
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	if bytes.HasPrefix(trimmed, []byte("<")) {
		return parseMetalink(data)
	}
	var out parsedList
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		base, ok := httpBase(line)
		if !ok || seen[base] {
			continue
		}
		seen[base] = true
		out.bases = append(out.bases, base)
	}
	if err := sc.Err(); err != nil {
		return parsedList{}, fmt.Errorf("mirrorlist: %w", err)
	}
	return out, nil
}
