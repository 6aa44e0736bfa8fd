package metadata

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// ModularPackages reads an uncompressed modules.yaml (a stream of YAML
// documents) and returns the NEVRAs ("name-epoch:version-release.arch")
// that modulemd documents list as their artifacts. Modular packages are
// only usable as part of their module stream, so views annotate them and
// never filter them one by one.
func ModularPackages(r io.Reader) (map[string]bool, error) {
	dec := yaml.NewDecoder(r)
	out := map[string]bool{}
	for i := 0; ; i++ {
		var doc struct {
			Document string `yaml:"document"`
			Data     struct {
				Artifacts struct {
					RPMs []string `yaml:"rpms"`
				} `yaml:"artifacts"`
			} `yaml:"data"`
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
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
