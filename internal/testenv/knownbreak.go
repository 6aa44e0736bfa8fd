package testenv

import (
	"os"
	"testing"
)

// EnvKnownBreaks is the environment variable that makes KnownBreak run the
// tests it marks instead of skipping them.
const EnvKnownBreaks = "DNFPROXY_KNOWN_BREAKS"

// KnownBreak marks a test that shows a known break which the code does not
// yet fix: the test is expected to fail today. Call it first in the test:
//
//	func TestBB_PurgeKeepsViewWhole(t *testing.T) {
//		testenv.KnownBreak(t, "purge of repodata/ leaves updateinfo listed (issue 7, break 2)")
//		...
//	}
//
// Unless the environment variable DNFPROXY_KNOWN_BREAKS is "1", the test is
// skipped with what as the reason, so that CI stays green until the fix
// lands. With DNFPROXY_KNOWN_BREAKS=1 the test runs (and logs what), so that
// whoever fixes the break can watch it go from failing to passing:
//
//	DNFPROXY_KNOWN_BREAKS=1 go test -run BB ./proxy/
//
// The fix removes the call together with the break. KnownBreak is not for
// flaky tests or missing tools (see RequireTool): it always skips in CI too,
// so a marked test proves nothing until the mark is gone.
func KnownBreak(t testing.TB, what string) {
	t.Helper()
	if os.Getenv(EnvKnownBreaks) != "1" {
		t.Skipf("known break, not fixed yet: %s (set %s=1 to run it)", what, EnvKnownBreaks)
	}
	t.Logf("known break: %s", what)
}
