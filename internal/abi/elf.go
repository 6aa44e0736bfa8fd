package abi

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Symbol is one exported dynamic symbol of a shared object.
type Symbol struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"` // GNU version node; "" when unversioned
	Type    string `json:"type"`              // func, object, tls, ifunc, common
	Size    uint64 `json:"size,omitempty"`    // of objects (object, tls, common) only
}

// ID is how the symbol is named in findings: "name@VERSION", or the name.
func (s Symbol) ID() string {
	if s.Version == "" {
		return s.Name
	}
	return s.Name + "@" + s.Version
}

// Library is the exported interface of one ELF shared object.
type Library struct {
	SONAME   string   `json:"soname,omitempty"` // "" when the object has no DT_SONAME
	Path     string   `json:"path"`
	Versions []string `json:"versions,omitempty"` // defined version nodes, without the base, sorted
	Symbols  []Symbol `json:"symbols"`            // sorted by ID
}

// Key is what libraries are matched by across builds: the SONAME, or the
// path for objects without one (plugins).
func (l *Library) Key() string {
	if l.SONAME != "" {
		return l.SONAME
	}
	return l.Path
}

// errNotLibrary says an ELF file is not a shared object this layer
// compares (an executable, a relocatable object, a debug file).
var errNotLibrary = errors.New("not a shared library")

// isLibDir says whether p lies in a library directory: a path component
// lib, lib64, lib32 or libx32 (so /usr/lib64/gtk-2.0/x.so but not
// /usr/libexec/x), outside /usr/lib/debug.
func isLibDir(p string) bool {
	if strings.HasPrefix(p, "/usr/lib/debug/") {
		return false
	}
	parts := strings.Split(p, "/")
	for _, c := range parts[:len(parts)-1] {
		switch c {
		case "lib", "lib64", "lib32", "libx32":
			return true
		}
	}
	return false
}

// readLibrary reads the exported interface of the ELF object in ra, found
// at path p of a package. It returns errNotLibrary for ELF files that are
// not shared libraries: not ET_DYN, position-independent executables, and
// objects outside library directories without a DT_SONAME.
func readLibrary(ra io.ReaderAt, p string) (*Library, error) {
	f, err := elf.NewFile(ra)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadPackage, p, err)
	}
	defer f.Close()
	if f.Type != elf.ET_DYN {
		return nil, errNotLibrary
	}
	lib := &Library{Path: p}
	if sonames, err := f.DynString(elf.DT_SONAME); err == nil && len(sonames) > 0 {
		lib.SONAME = sonames[0]
	}
	if lib.SONAME == "" {
		if !isLibDir(p) {
			return nil, errNotLibrary
		}
		if flags, err := f.DynValue(elf.DT_FLAGS_1); err == nil && len(flags) > 0 && elf.DynFlag1(flags[0])&elf.DF_1_PIE != 0 {
			return nil, errNotLibrary
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				return nil, errNotLibrary
			}
		}
	}
	if f.Section(".dynsym") == nil {
		return lib, nil // exports nothing
	}
	nodes := map[string]bool{}
	if vers, err := f.DynamicVersions(); err == nil {
		for _, v := range vers {
			if v.Flags&elf.VER_FLG_BASE == 0 && v.Name != "" {
				nodes[v.Name] = true
			}
		}
	}
	syms, err := f.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("%w: %s: dynamic symbols: %v", ErrBadPackage, p, err)
	}
	seen := map[string]bool{}
	for _, s := range syms {
		sym, ok := exported(s, nodes)
		if !ok || seen[sym.ID()] {
			continue
		}
		seen[sym.ID()] = true
		lib.Symbols = append(lib.Symbols, sym)
	}
	sort.Slice(lib.Symbols, func(i, j int) bool { return lib.Symbols[i].ID() < lib.Symbols[j].ID() })
	for n := range nodes {
		lib.Versions = append(lib.Versions, n)
	}
	sort.Strings(lib.Versions)
	return lib, nil
}

// exported says whether a dynamic symbol is part of the exported ABI:
// defined, of global, weak or unique binding, of default or protected
// visibility, a function or a data object. The absolute symbols that name
// version nodes are not.
func exported(s elf.Symbol, nodes map[string]bool) (Symbol, bool) {
	if s.Section == elf.SHN_UNDEF || s.Name == "" || s.Name == "_init" || s.Name == "_fini" {
		return Symbol{}, false // undefined, or the linker's init/fini entry points
	}
	switch elf.ST_BIND(s.Info) {
	case elf.STB_GLOBAL, elf.STB_WEAK, elf.STB_LOOS: // STB_LOOS is STB_GNU_UNIQUE
	default:
		return Symbol{}, false
	}
	switch elf.ST_VISIBILITY(s.Other) {
	case elf.STV_DEFAULT, elf.STV_PROTECTED:
	default:
		return Symbol{}, false
	}
	sym := Symbol{Name: s.Name}
	if s.HasVersion && s.VersionIndex.Index() > 1 {
		sym.Version = s.Version
	}
	switch elf.ST_TYPE(s.Info) {
	case elf.STT_FUNC:
		sym.Type = "func"
	case elf.STT_GNU_IFUNC:
		sym.Type = "ifunc"
	case elf.STT_OBJECT:
		if s.Section == elf.SHN_ABS && s.Value == 0 && s.Size == 0 && nodes[s.Name] {
			return Symbol{}, false // the symbol naming a version node
		}
		sym.Type, sym.Size = "object", s.Size
	case elf.STT_TLS:
		sym.Type, sym.Size = "tls", s.Size
	case elf.STT_COMMON:
		sym.Type, sym.Size = "common", s.Size
	default:
		return Symbol{}, false // NOTYPE (_end, _edata), sections, files
	}
	return sym, true
}
