# dnfproxy — build, test and CI entry points. `make test` is what CI runs.

SHELL    := /bin/bash
GO       ?= go
FUZZTIME ?= 30s

# External tools the tests drive, and the Debian packages that provide them.
# gcc and g++ build the generated ABI corpus (testdata/abi; i686 libraries are
# linked -nostdlib, so no gcc-multilib); abipkgdiff, readelf, cpio and
# rpm2cpio are the ground truth the ELF layer is checked against.
TOOLS        := dnf createrepo_c modifyrepo_c rpmbuild rpm2cpio cpio systemd-analyze buildah zck chromium zypper gpg gcc g++ abipkgdiff readelf promtool
APT_PACKAGES := dnf createrepo-c rpm cpio systemd buildah zchunk chromium zypper python3-librepo python3-libcomps gpg gcc g++ abigail-tools binutils prometheus
# Python modules the tests import through /usr/bin/python3 (librepo and
# libcomps, the libraries under dnf).
PY_MODULES   := librepo libcomps

VERSION ?= 0.1.0
RPMDIR  ?= $(CURDIR)/rpmbuild
IMAGE   ?= localhost/dnfproxy:$(VERSION)

.PHONY: build deps test bench bench-appstream fuzz rpms rpm image static matrix

build:
	$(GO) build -o dnfproxy ./cmd/dnfproxy

# Installs the test tools when they are missing and we are root (apt-get);
# otherwise says what to install. Does nothing when all are present.
# --no-remove: Debian's dnf-plugins-core Breaks zypper; apt-get must never
# trade an installed dnf plugin for zypper (the tests need dnf alone), so
# zypper is installed on its own and left out when it would remove anything;
# the zypper tests then skip (fail under CI=true).
deps:
	@missing=""; \
	for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	for m in $(PY_MODULES); do /usr/bin/python3 -c "import $$m" >/dev/null 2>&1 || missing="$$missing python3-$$m"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "make deps: missing:$$missing"; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-remove $(filter-out zypper,$(APT_PACKAGES)) && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y --no-remove zypper || \
		  echo "make deps: zypper not installed (it would remove a package, e.g. dnf-plugins-core); the zypper tests skip"; }; \
	else \
		echo "make deps: as root, run: apt-get update && apt-get install -y $(APT_PACKAGES)"; \
		echo "make deps: without them the dnf end-to-end tests are skipped (they fail when CI=true)"; \
		if [ "$$CI" = true ]; then exit 1; fi; \
	fi

test: deps
	$(GO) vet ./...
	$(GO) test -race -timeout 15m ./...
	# The 4 GiB large-file payload test skips under -race (instrumented, it
	# decodes for minutes); it runs here without it.
	$(GO) test -timeout 5m -run '^TestLargeFilePayload$$' ./internal/abi/

# The corpus matrix over every repo of ../shared/corpora (the short one runs in `make test`).
matrix: deps
	DNFPROXY_MATRIX=full $(GO) test -timeout 60m -run 'TestE2E8_Matrix$$' -v ./proxy/ 2>&1 | grep -vE '^\s*\{|^=== |dnf.go:|zypper.go:'

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	@if [ -f bench/run.sh ]; then bash bench/run.sh; fi

# dnf makecache of the CS9 AppStream and a 30k-package AppStream-shaped repo
# through the proxy, cold and warm, vs nginx (docs/BENCHMARKS.md).
bench-appstream:
	bash bench/appstream.sh

# Runs every fuzz target in the module for FUZZTIME each. Targets are found
# with `go test -list`, so new ones are picked up without editing this file.
fuzz:
	@set -euo pipefail; \
	targets=$$($(GO) test -list '^Fuzz' ./... | awk '/^Fuzz/ { n[c++] = $$1 } /^ok/ { for (i = 0; i < c; i++) print $$2 " " n[i]; c = 0 }'); \
	if [ -z "$$targets" ]; then echo "make fuzz: no fuzz targets"; exit 0; fi; \
	echo "$$targets" | while read -r pkg name; do \
		echo "== $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg" </dev/null; \
	done

rpms:
	testdata/rpms/build.sh

# The dnfproxy RPM (packaging/dnfproxy.spec), built offline from the Go module
# cache after `go mod download`; the package lands in $(RPMDIR)/RPMS/<arch>/.
rpm:
	GO=$(GO) packaging/build-rpm.sh $(RPMDIR) $(VERSION)

# The OCI image (Containerfile) with buildah, or podman, on the vfs driver.
image:
	GO=$(GO) packaging/build-image.sh $(IMAGE) $(VERSION)

# A static binary (no cgo, no dynamic loader), as the container image uses.
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o dnfproxy-static ./cmd/dnfproxy
