// Package abi compares the exported ABI of two builds of a package from
// their RPM files: the dynamic symbols of their ELF shared objects (per
// SONAME, with GNU symbol versions and the sizes of exported objects), the
// kABI stablelists of RHEL's kernel-abi-stablelists, and, optionally, the
// verdict of libabigail's abipkgdiff.
//
// It owns the analyses of package pairs: an Analyzer reads the two RPMs it
// is given, bounds the work it runs at once, and keeps each pair's
// findings in a caller-given KV under the two packages' checksums and the
// analyser's version, so a pair is analysed once across restarts.
//
// Wiring (the views' side): with the reference repo's and the repo's
// package lists (metadata.ScanPrimaryDeps), Pairs yields the pairs worth an
// ELF comparison; Analyzer.CompareAll (or ComparePair one at a time) runs
// them in the background, Options.Concurrency at a time, opening each RPM
// through the caller's Opener (the cache, so downloads are verified and
// shared); the findings are added to what metadata.CompareWith found for
// the package, and the view is rebuilt. A restart with the same KV answers
// every pair seen before without opening a package. Kernel packages are
// compared in metadata by their kernel(sym) provides; ReadStablelist reads
// the reference's kernel-abi-stablelists for metadata.CompareOptions.
//
// Guarantees: payloads are streamed (an RPM is never held whole in
// memory); only ELF files are buffered, each up to a size cap; RPM headers,
// cpio entries and ELF contents from the network are untrusted and a bad one
// is an error wrapping ErrBadPackage, never a panic. Nothing here touches the
// network or the cache: callers hand in an open function. The optional deep
// layer (Abipkgdiff, Analyzer.DeepCompare) copies the RPMs it is given
// into a temporary directory and runs libabigail's abipkgdiff on them, with
// the debuginfo packages of each side that a DebugIndex finds by name
// (<name>-debuginfo and <source>-debuginfo of the same EVR and arch; the
// source from the RPM header, Analyzer.SourceRPM). Payloads are rpm's cpio
// in both forms: "new ASCII" entries, and the stripped entries rpm >= 4.12
// writes for packages with a file of 4 GiB or more.
package abi
