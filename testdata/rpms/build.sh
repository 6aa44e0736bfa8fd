#!/usr/bin/env bash
# Builds the test fixture RPMs from specs/*.spec into this directory.
#
# The packages are noarch, have no scriptlets, and are built as reproducibly as
# rpmbuild easily allows (fixed build time, mtimes, build host; gzip payloads so
# that any rpm can read them). Running the script again replaces the RPMs; with
# the same rpmbuild the bytes stay the same.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

command -v rpmbuild >/dev/null || { echo "build.sh: rpmbuild not found (Debian: apt-get install rpm)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "build.sh: openssl not found" >&2; exit 1; }

# 2024-01-01T00:00:00Z: a fixed build time for every package.
export SOURCE_DATE_EPOCH=1704067200
export TZ=UTC LC_ALL=C

top=$(mktemp -d "${TMPDIR:-/tmp}/dnfpt-rpmbuild.XXXXXX")
trap 'rm -rf "$top"' EXIT
mkdir -p "$top"/{BUILD,BUILDROOT,RPMS,SOURCES,SPECS,SRPMS}

# 4 MiB of incompressible bytes: AES-128-CTR with a fixed key over zeros is a
# deterministic pseudo-random stream, identical on every machine.
head -c $((4 * 1024 * 1024)) /dev/zero |
	openssl enc -aes-128-ctr -nosalt \
		-K 646e6670726f78792d74657374646174 -iv 00000000000000000000000000000000 \
		>"$top/SOURCES/dnfpt-big.bin"

for spec in specs/*.spec; do
	case "$(basename "$spec")" in
	# Level 0: the data does not compress, so do not spend time trying.
	dnfpt-big.spec) payload=w0.gzdio ;;
	*) payload=w9.gzdio ;;
	esac
	rpmbuild -bb --quiet \
		--define "_topdir $top" \
		--define "_buildhost dnfproxy-test.invalid" \
		--define "use_source_date_epoch_as_buildtime 1" \
		--define "clamp_mtime_to_source_date_epoch 1" \
		--define "_binary_payload $payload" \
		--define "_binary_filedigest_algorithm 8" \
		--define "__os_install_post %{nil}" \
		--define "_build_id_links none" \
		--define "debug_package %{nil}" \
		"$spec"
done

rm -f ./*.rpm
for rpm in "$top"/RPMS/noarch/*.rpm; do
	install -m 0644 "$rpm" .
done
ls -l ./*.rpm
