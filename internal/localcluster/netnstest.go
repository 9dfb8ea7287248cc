package localcluster

import (
	"os"
	"os/exec"
	"regexp"
	"testing"
)

// EnvRequire, when "1", turns a cluster test that cannot run (no root, no
// unshare) into a failure instead of a skip. CI sets it.
const EnvRequire = "ORCHESTRIX_REQUIRE_CLUSTER"

// InNetns makes the calling top-level test run inside a loopback-only
// network namespace. Inside one it returns true and the test goes on.
// Otherwise, as root, it runs this test binary again under unshare -n for
// this test only, fails t when that run fails (with its output), logs its
// output when it passes, and returns false: the caller returns at once.
// Where no namespace can be created it skips t with the reason, or fails
// it when ORCHESTRIX_REQUIRE_CLUSTER=1.
//
//	if !localcluster.InNetns(t) {
//		return
//	}
func InNetns(t *testing.T) bool {
	t.Helper()
	if Isolated() {
		return true
	}
	RequireNetns(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ip, _ := exec.LookPath("ip")
	args := []string{"-n", "sh", "-c", `"$1" link set lo up && shift && exec "$@"`, "sh", ip, self,
		"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), envNetns+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s inside a loopback-only network namespace: %v\n%s", t.Name(), err, out)
	}
	t.Logf("ran inside a loopback-only network namespace:\n%s", out)
	return false
}

// netnsUnavailable says why no namespace can be created ("" when one
// can).
func netnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "not root: cannot create a loopback-only network namespace (unshare -n)"
	}
	for _, bin := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " not found: " + err.Error()
		}
	}
	if out, err := exec.Command("unshare", "-n", "true").CombinedOutput(); err != nil {
		return "unshare -n failed: " + err.Error() + ": " + string(out)
	}
	return ""
}

// RequireNetns skips t, or fails it when ORCHESTRIX_REQUIRE_CLUSTER=1,
// when no loopback-only network namespace can be created here (for a
// test that runs a program which enters one itself with EnterNetns).
func RequireNetns(t testing.TB) {
	t.Helper()
	if Isolated() {
		return
	}
	if reason := netnsUnavailable(); reason != "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("cluster test required (%s=1) but cannot run: %s", EnvRequire, reason)
		}
		t.Skipf("cluster test skipped: %s", reason)
	}
}
