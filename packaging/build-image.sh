#!/usr/bin/env bash
# Builds the dnfproxy OCI image from the Containerfile:
#   build-image.sh TAG [VERSION [CONTEXTDIR]]
# (make image runs it). The build context holds only the static binary
# (CGO_ENABLED=0), the host's CA bundle and the empty storage directory, so
# `FROM scratch` needs no registry. buildah is used when present, else
# podman, with the vfs storage driver (works without overlay support);
# BUILDAH_GLOBAL_FLAGS adds global flags such as "--root DIR --runroot DIR".
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="${1:?usage: build-image.sh TAG [VERSION [CONTEXTDIR]]}"
version="${2:-0.1.0}"
go="${GO:-go}"
if [ -n "${3:-}" ]; then
	ctx="$3"
	mkdir -p "$ctx"
else
	ctx="$(mktemp -d)"
	trap 'rm -rf "$ctx"' EXIT
fi
(cd "$src" && CGO_ENABLED=0 "$go" build -trimpath -ldflags "-s -w -X main.version=$version" -o "$ctx/dnfproxy" ./cmd/dnfproxy)
ca=""
for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
	if [ -s "$f" ]; then ca="$f"; break; fi
done
if [ -z "$ca" ]; then echo "build-image.sh: no CA bundle found on this host" >&2; exit 1; fi
cp "$ca" "$ctx/ca-certificates.crt"
mkdir -p "$ctx/var-lib-dnfproxy"
cp "$src/Containerfile" "$ctx/Containerfile"
# shellcheck disable=SC2086 # BUILDAH_GLOBAL_FLAGS is a list of flags
if command -v buildah >/dev/null; then
	buildah ${BUILDAH_GLOBAL_FLAGS:-} --storage-driver "${STORAGE_DRIVER:-vfs}" bud --quiet -f "$ctx/Containerfile" -t "$tag" "$ctx"
elif command -v podman >/dev/null; then
	podman ${BUILDAH_GLOBAL_FLAGS:-} --storage-driver "${STORAGE_DRIVER:-vfs}" build --quiet -f "$ctx/Containerfile" -t "$tag" "$ctx"
else
	echo "build-image.sh: neither buildah nor podman is installed (apt-get install buildah)" >&2
	exit 1
fi
