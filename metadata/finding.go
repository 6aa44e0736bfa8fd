package metadata

// Class is a kind of divergence from the RHEL ABI (the fixed vocabulary of
// DESIGN.md).
type Class = string

// The divergence classes.
const (
	ClassABIChanged     Class = "abi-changed"
	ClassABIExtended    Class = "abi-extended"
	ClassPatched        Class = "patched"
	ClassVersionDiffers Class = "version-differs"
	ClassNotInReference Class = "not-in-reference"
)

// Finding is one reason a package diverges.
type Finding struct {
	Class  Class  `json:"class"`
	Reason string `json:"reason"`
	Link   string `json:"link,omitempty"`
	Rule   string `json:"rule,omitempty"` // rule name, when a rule matched
}

// Action is what a view does with a package.
type Action string

// The actions.
const (
	ActionNone     Action = "none"
	ActionAnnotate Action = "annotate"
	ActionFilter   Action = "filter"
)

// Decision is the verdict on one package for one view.
type Decision struct {
	Action   Action
	Findings []Finding
}

// PackageID identifies a package as rules see it.
type PackageID struct {
	Name    string
	Arch    string
	Epoch   string
	Version string
	Release string
}

// EVR returns the package's epoch, version and release.
func (p PackageID) EVR() EVR { return EVR{Epoch: p.Epoch, Version: p.Version, Release: p.Release} }

// NEVRA renders name-[epoch:]version-release.arch as dnf prints it.
func (p PackageID) NEVRA() string {
	evr := p.Version + "-" + p.Release
	if p.Epoch != "" && p.Epoch != "0" {
		evr = p.Epoch + ":" + evr
	}
	return p.Name + "-" + evr + "." + p.Arch
}
