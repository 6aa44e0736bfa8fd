package metadata

// PackageDeps is a package of primary.xml with the dependency data a
// resolver needs: what it provides, what it requires, and the files primary
// lists for it (the ones that requires such as /usr/bin/sh can point at).
// Only names are kept: versions and flags of dependencies are dropped, as
// are the rpmlib(...) requires that rpm itself satisfies.
type PackageDeps struct {
	Package
	Provides []string // names of the rpm:provides entries
	Requires []string // names of the rpm:requires entries, without rpmlib(...)
	Files    []string // the <file> entries (files, dirs and ghosts alike)
	// ABIProvides are the provides describing exported ABI (IsABIProvide)
	// with their versions: a kernel symbol's version is its CRC.
	ABIProvides []Provide
	// PkgID is the package's pkgid as primary.xml writes it: the key of
	// its entries in filelists.xml and other.xml, and of Plan decisions.
	PkgID string
}

type xmlDepEntry struct{ Name, Ver string }
