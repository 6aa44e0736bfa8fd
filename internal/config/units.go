package config

import (
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a number of bytes. In YAML it is written with a unit:
// "50GiB", "512MiB", "8MiB", "1.5GB" or a plain number of bytes.
// Binary units (KiB, MiB, GiB, TiB) and decimal units (KB, MB, GB, TB)
// are accepted; the unit is case-insensitive ("gib" works too) and may be
// separated from the number by spaces. The value must be a whole number
// of bytes between 0 and math.MaxInt64.
type ByteSize int64

// Binary size units.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

// byteUnits lists the accepted units, keyed by their lower-case spelling.
var byteUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kib": int64(KiB),
	"mib": int64(MiB),
	"gib": int64(GiB),
	"tib": int64(TiB),
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
}

// ParseByteSize parses a size such as "50GiB", "512 MiB", "1.5GB" or
// "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit, e.g. \"512MiB\"", s)
	}
	mult, ok := byteUnits[unit]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", s, strings.TrimSpace(t[i:]))
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid size %q: %q is not a number", s, num)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("invalid size %q: larger than %d bytes", s, int64(math.MaxInt64))
	}
	return ByteSize(n.Int64()), nil
}

// String formats the size with the largest unit that divides it exactly
// ("50GiB", "512MiB", "2GB"), or as plain bytes ("1023"). ParseByteSize
// accepts every string String returns.
func (b ByteSize) String() string {
	if b > 0 {
		for _, u := range []struct {
			size int64
			name string
		}{
			{int64(TiB), "TiB"}, {1e12, "TB"}, {int64(GiB), "GiB"}, {1e9, "GB"},
			{int64(MiB), "MiB"}, {1e6, "MB"}, {int64(KiB), "KiB"}, {1e3, "KB"},
		} {
			if int64(b)%u.size == 0 {
				return fmt.Sprintf("%d%s", int64(b)/u.size, u.name)
			}
		}
	}
	return fmt.Sprintf("%d", int64(b))
}

// MarshalYAML writes the size as String does.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// UnmarshalYAML reads a size written as ParseByteSize accepts.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "expected a size such as \"512MiB\"")
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return typeError(n, err.Error())
	}
	*b = v
	return nil
}

// Duration is a time.Duration written in YAML the way time.ParseDuration
// reads it ("10m", "30s", "1h30m"). A bare number without a unit is
// rejected, so that "600" is not silently taken as 600 nanoseconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.String but drops zero trailing
// units: "10m" rather than "10m0s", "1h" rather than "1h0m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalYAML writes the duration as String does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration such as "10m".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "expected a duration such as \"10m\"")
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return typeError(n, fmt.Sprintf("invalid duration %q: want a number with a unit, e.g. \"30s\", \"10m\", \"1h\"", n.Value))
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the names as one comma-separated string.
func (n RepoNames) MarshalYAML() (any, error) { return n.String(), nil }

// UnmarshalYAML reads a comma-separated string of names.
func (n *RepoNames) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return typeError(node, `expected one string of comma-separated repo names, e.g. "alma-debug, rhel-debug"`)
	}
	*n = ParseRepoNames(node.Value)
	return nil
}

// typeError reports a problem with a YAML value as a yaml.TypeError, so
// that the decoder collects it with the others. The position lets Load
// name the key.
func typeError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d, column %d: %s", n.Line, n.Column, msg)}}
}
