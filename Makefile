# dnfproxy — build, test and CI entry points. `make test` is what CI runs.

SHELL    := /bin/bash
GO       ?= go
FUZZTIME ?= 30s

# External tools the tests drive, and the Debian packages that provide them.
# gcc and g++ build the generated ABI corpus (testdata/abi; i686 libraries are
# linked -nostdlib, so no gcc-multilib); abipkgdiff, readelf, cpio and
# rpm2cpio are the ground truth the ELF layer is checked against.
TOOLS        := dnf createrepo_c rpmbuild zck chromium gcc g++ abipkgdiff readelf cpio rpm2cpio
APT_PACKAGES := dnf createrepo-c rpm zchunk chromium gcc g++ abigail-tools binutils cpio

.PHONY: build deps test bench fuzz rpms

build:
	$(GO) build -o dnfproxy ./cmd/dnfproxy

# Installs the test tools when they are missing and we are root (apt-get);
# otherwise says what to install. Does nothing when all are present.
deps:
	@missing=""; \
	for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "make deps: missing:$$missing"; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PACKAGES); \
	else \
		echo "make deps: as root, run: apt-get update && apt-get install -y $(APT_PACKAGES)"; \
		echo "make deps: without them the dnf end-to-end tests are skipped (they fail when CI=true)"; \
		if [ "$$CI" = true ]; then exit 1; fi; \
	fi

test: deps
	$(GO) vet ./...
	$(GO) test -race -timeout 15m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	@if [ -f bench/run.sh ]; then bash bench/run.sh; fi

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
