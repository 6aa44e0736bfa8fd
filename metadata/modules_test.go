package metadata_test

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/metadata"
	"github.com/dnfproxy/dnfproxy/metadata/bombs"
	"go.yaml.in/yaml/v3"
)

// refModularPackages is the former ModularPackages, one yaml.Decoder over
// the whole stream, kept as the reference of TestModularPackagesCorpora.
func refModularPackages(r io.Reader) (map[string]bool, error) {
	dec := yaml.NewDecoder(r)
	out := map[string]bool{}
	for {
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
			return nil, err
		}
		if doc.Document != "modulemd" {
			continue
		}
		for _, a := range doc.Data.Artifacts.RPMs {
			if !strings.Contains(a, ":") { // the epoch modulemd may leave out
				if rel := strings.LastIndex(a, "-"); rel > 0 {
					if ver := strings.LastIndex(a[:rel], "-"); ver > 0 {
						a = a[:ver+1] + "0:" + a[ver+1:]
					}
				}
			}
			out[a] = true
		}
	}
}

func TestModularPackagesCorpora(t *testing.T) {
	for _, tc := range []struct {
		file  string
		codec metadata.Codec
		min   int
	}{
		{"pulp-fixtures/rpm/assets-modularity/modules.yaml", metadata.None, 10},
		{"osbuild/test/data/testrepos/appstream/repodata/ffe6aa44abe8480c2f7a59b9e92f251f10018e1e79ac33e2807260dd03955592-modules.yaml.xz", metadata.Xz, 1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			zr, err := metadata.Decompress(bytes.NewReader(readFile(t, corpus(t, tc.file))), tc.codec, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := metadata.ModularPackages(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			want, err := refModularPackages(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, want) || len(got) < tc.min {
				t.Errorf("%d modular packages, the whole-stream decoder %d", len(got), len(want))
			}
		})
	}
}

func TestModularPackagesDocuments(t *testing.T) {
	const in = "document: modulemd\ndata:\n  description: |\n    text\n    ---not a marker\n  artifacts:\n    rpms: [a-1-1.noarch]\n" +
		"--- # a comment\ndocument: modulemd-defaults\n...\n---\ndocument: modulemd\ndata: {artifacts: {rpms: [b-2:1-1.x86_64]}}\n"
	got, err := metadata.ModularPackages(strings.NewReader(in))
	if err != nil || !maps.Equal(got, map[string]bool{"a-0:1-1.noarch": true, "b-2:1-1.x86_64": true}) {
		t.Errorf("got %v, %v", got, err)
	}
	// One document past the limit, in one long line or many.
	for name, r := range map[string]func() io.Reader{
		"long line":  func() io.Reader { return bombs.Fill([]byte("---\ndocument: modulemd\nx: "), 'x', 64<<20, nil) },
		"many lines": func() io.Reader { return bombs.Fill([]byte("---\ndocument: modulemd\nx: |\n"), '\n', 64<<20, nil) },
	} {
		var err error
		alloc := allocDuring(func() { _, err = metadata.Limits{MaxElement: 1 << 20}.ModularPackages(r()) })
		if !errors.Is(err, metadata.ErrTooLarge) || alloc > 4<<20 {
			t.Errorf("%s: %v after allocating %d KiB; want ErrTooLarge within 4 MiB", name, err, alloc>>10)
		}
	}
}

func FuzzModularPackages(f *testing.F) {
	f.Add([]byte("---\ndocument: modulemd\ndata: {artifacts: {rpms: [a-1-1.noarch]}}\n...\n---\ndocument: modulemd-defaults\n"))
	f.Add([]byte("document: modulemd\ndata:\n  artifacts:\n    rpms:\n    - b-2:1-1.x86_64\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := metadata.Limits{MaxElement: 256}.ModularPackages(bytes.NewReader(data))
		if err != nil {
			if got != nil || !errors.Is(err, metadata.ErrMalformed) && !errors.Is(err, metadata.ErrTooLarge) {
				t.Fatalf("ModularPackages = %v, %v", got, err)
			}
			return
		}
		for k := range got {
			if !strings.Contains(k, ":") && strings.Count(k, "-") >= 2 {
				t.Fatalf("key %q lacks the epoch", k)
			}
		}
	})
}
