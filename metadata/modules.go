package metadata

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ModularPackages reads an uncompressed modules.yaml (a stream of YAML
// documents) and returns the NEVRAs ("name-epoch:version-release.arch")
// that modulemd documents list as their artifacts, within the default
// Limits. Modular packages are only usable as part of their module stream,
// so views annotate them and never filter them one by one.
func ModularPackages(r io.Reader) (map[string]bool, error) {
	return Limits{}.ModularPackages(r)
}

// ModularPackages is the package-level ModularPackages within l: a YAML
// document over l.MaxElement bytes is ErrTooLarge (a whole document is
// decoded at once, so that is what bounds the decoder's memory).
func (l Limits) ModularPackages(r io.Reader) (map[string]bool, error) {
	docs := yamlDocs{br: bufio.NewReaderSize(r, 64<<10), max: l.element(), atStart: true}
	out := map[string]bool{}
	for i := 0; ; i++ {
		data, err := docs.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("modules.yaml document %d: %w", i, err)
		}
		var doc struct {
			Document string `yaml:"document"`
			Data     struct {
				Artifacts struct {
					RPMs []string `yaml:"rpms"`
				} `yaml:"artifacts"`
			} `yaml:"data"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("%w: modules.yaml document %d: %v", ErrMalformed, i, err)
		}
		if doc.Document != "modulemd" {
			continue // modulemd-defaults, modulemd-obsoletes, ...
		}
		for _, a := range doc.Data.Artifacts.RPMs {
			out[normalizeNEVRA(a)] = true
		}
	}
}

// yamlDocs cuts a YAML stream into documents at its "---" lines (a
// document start marker ends any block scalar, so this is exact).
type yamlDocs struct {
	br      *bufio.Reader
	max     int64
	pending []byte // the start of the next document, already read
	atStart bool   // the next read starts a line
	eof     bool
}

func (d *yamlDocs) next() ([]byte, error) {
	if d.eof {
		return nil, io.EOF
	}
	doc := d.pending
	d.pending = nil
	for {
		chunk, err := d.br.ReadSlice('\n')
		if len(chunk) > 0 {
			start := d.atStart
			d.atStart = chunk[len(chunk)-1] == '\n'
			if start && isDocStart(chunk) && len(bytes.TrimSpace(doc)) > 0 {
				d.pending = append([]byte(nil), chunk...)
				return doc, nil
			}
			if int64(len(doc)+len(chunk)) > d.max {
				return nil, fmt.Errorf("%w: a document over %d bytes (the limit)", ErrTooLarge, d.max)
			}
			if need := len(doc) + len(chunk); need > cap(doc) { // doubling: append grows big slices by 1.25
				doc = slices.Grow(doc, int(min(max(int64(need), 2*int64(cap(doc))), d.max))-len(doc))
			}
			doc = append(doc, chunk...)
		}
		switch {
		case err == io.EOF:
			d.eof = true
			if len(bytes.TrimSpace(doc)) == 0 {
				return nil, io.EOF
			}
			return doc, nil
		case err != nil && err != bufio.ErrBufferFull:
			return nil, err
		}
	}
}

func isDocStart(line []byte) bool {
	return bytes.HasPrefix(line, []byte("---")) && (len(line) == 3 || isSpaceByte(line[3]))
}

// ModularKey is the key ModularPackages uses for a package.
func ModularKey(p PackageID) string {
	e := p.Epoch
	if e == "" {
		e = "0"
	}
	return p.Name + "-" + e + ":" + p.Version + "-" + p.Release + "." + p.Arch
}

// normalizeNEVRA adds the "0:" epoch modulemd may leave out.
func normalizeNEVRA(s string) string {
	s = strings.TrimSpace(s)
	if strings.Contains(s, ":") {
		return s
	}
	// name-version-release.arch: the epoch goes before the version.
	rel := strings.LastIndex(s, "-")
	if rel <= 0 {
		return s
	}
	ver := strings.LastIndex(s[:rel], "-")
	if ver <= 0 {
		return s
	}
	return s[:ver+1] + "0:" + s[ver+1:]
}
