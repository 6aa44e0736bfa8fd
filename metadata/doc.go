// Package metadata owns the rpm-md formats dnfproxy reads: repomd.xml, the
// compressed repodata files it lists, and the package index of primary.xml.
//
// Guarantees: parsers never trust sizes from upstream (every reader is
// bounded by a caller-given limit, so a decompression bomb is an error, not
// an out-of-memory crash); checksum types are checked against a fixed list;
// nothing here does network or cache I/O.
package metadata
