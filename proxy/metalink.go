package proxy

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/xml"
	"fmt"
	"hash"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// serveMetalink answers <root>repodata/repomd.xml.metalink: a metalink
// (version 3.0, the form dnf's metalink= reads) that lists the proxy's own
// repomd.xml of the view asked for, with its size and hashes, so a client
// configured with metalink= keeps hash pinning of repomd.xml.
func (s *Server) serveMetalink(c *gin.Context, re *repoEntry, v, root string) error {
	ctx := c.Request.Context()
	var body []byte
	var mod time.Time
	var newest int64
	if v == ViewRaw {
		g, result, err := re.gens.Current(ctx, root)
		if err != nil {
			return err
		}
		c.Set(logResult, result)
		body, mod = g.Repomd, g.Created
		for _, r := range g.MD().Records {
			newest = max(newest, r.Timestamp)
		}
	} else {
		vg, result, err := s.views.Get(ctx, re.name, root, v)
		if err != nil {
			return err
		}
		c.Set(logResult, result)
		body, mod = vg.Repomd, vg.Created
		newest = vg.Created.Unix()
	}
	prefix := re.name
	if t, _ := parseTarget(c.Request.URL.EscapedPath(), c.Request.URL.Path); t.view != ViewDefault {
		prefix += "@" + t.view
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: c.Request.Host, Path: "/" + prefix + "/" + root + "repodata/repomd.xml"}
	doc := metalinkDoc(body, newest, u.String())
	serveMetadata(c, "repomd.xml.metalink", mod, doc)
	return nil
}

// metalinkDoc renders the metalink of one repomd.xml served at loc.
func metalinkDoc(repomd []byte, timestamp int64, loc string) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	b.WriteString(`<metalink version="3.0" xmlns="http://www.metalinker.org/" type="dynamic" generator="dnfproxy" xmlns:mm0="http://fedorahosted.org/mirrormanager">` + "\n")
	b.WriteString(" <files>\n  <file name=\"repomd.xml\">\n")
	fmt.Fprintf(&b, "   <mm0:timestamp>%d</mm0:timestamp>\n   <size>%d</size>\n   <verification>\n", timestamp, len(repomd))
	for _, h := range []struct {
		name string
		new  func() hash.Hash
	}{{"md5", md5.New}, {"sha1", sha1.New}, {"sha256", sha256.New}, {"sha512", sha512.New}} {
		hh := h.new()
		hh.Write(repomd)
		fmt.Fprintf(&b, "    <hash type=%q>%x</hash>\n", h.name, hh.Sum(nil))
	}
	b.WriteString("   </verification>\n   <resources maxconnections=\"1\">\n")
	b.WriteString("    <url protocol=\"" + strings.SplitN(loc, ":", 2)[0] + "\" type=\"" + strings.SplitN(loc, ":", 2)[0] + "\" preference=\"100\">")
	xml.EscapeText(&writerString{&b}, []byte(loc))
	b.WriteString("</url>\n   </resources>\n  </file>\n </files>\n</metalink>\n")
	return []byte(b.String())
}

type writerString struct{ b *strings.Builder }

func (w *writerString) Write(p []byte) (int, error) { return w.b.Write(p) }
