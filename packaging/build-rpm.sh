#!/usr/bin/env bash
# Builds the dnfproxy RPM from this source tree: build-rpm.sh OUTDIR [VERSION]
# (make rpm runs it). The Go modules are downloaded first, outside rpmbuild,
# so that rpmbuild itself runs offline (GOPROXY=off) against the module
# cache; the Go build cache is shared with ordinary builds. Prints the path
# of the binary RPM on the last line.
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: build-rpm.sh OUTDIR [VERSION]}"
version="${2:-0.1.0}"
go="${GO:-go}"
gobin="$(command -v "$go")"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
(cd "$src" && "$gobin" mod download)
rpmbuild -bb --quiet \
	--define "_topdir $out" \
	--define "srcroot $src" \
	--define "pkgversion $version" \
	--define "go $gobin" \
	--define "gomodcache $("$gobin" env GOMODCACHE)" \
	--define "gocache $("$gobin" env GOCACHE)" \
	"$src/packaging/dnfproxy.spec" >&2
ls "$out"/RPMS/*/dnfproxy-"$version"-*.rpm | tail -1
