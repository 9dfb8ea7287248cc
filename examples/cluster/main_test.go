package main

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/orchestrix/orchestrix/examples/internal/maintest"
	"github.com/orchestrix/orchestrix/internal/localcluster"
	"github.com/orchestrix/orchestrix/internal/pgtest"
)

func TestMain(m *testing.M) {
	maintest.Child(main) // also runs the member processes: they are this binary again
	os.Exit(m.Run())
}

// The program as a user runs it: three members, deposits through all of
// them, one killed under load, its accounts served again, and every
// acknowledged deposit stored exactly once — which the program checks
// against the journal itself and reports with its exit status.
func TestMain_ThreeMembersOneKilled_EveryAcknowledgedDepositStoredOnce(t *testing.T) {
	localcluster.RequireNetns(t)
	r := maintest.Run(t)
	if r.Code == exitNoPG {
		if os.Getenv(pgtest.EnvRequire) == "1" {
			t.Fatalf("PostgreSQL required (%s=1) but the example found none:\n%s", pgtest.EnvRequire, r.Stderr)
		}
		t.Skipf("PostgreSQL not installed; the example said:\n%s", r.Stderr)
	}
	if r.Code != exitOK || r.Panicked() {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^member 0  127\.0\.0\.1:\d+ +owns +\d+ of the 30 accounts`),
		regexp.MustCompile(`(?m)^all three members agree on the owner of every account$`),
		regexp.MustCompile(`(?m)^300 acknowledged: \d+ ran on the member asked .*, \d+ went over the wire to the owner$`),
		regexp.MustCompile(`(?m)^the survivors \(members \d and \d\) saw 2 members [\d.]+ s after the kill$`),
		regexp.MustCompile(`(?m)^all \d+ accounts of the killed member are served again by the survivors$`),
		regexp.MustCompile(`(?m)^\d+ events; every one of the \d+ acknowledged deposits is in the journal exactly once \(none missing, no command id twice\)$`),
		regexp.MustCompile(`(?m)^each account's balance, read through member \d, equals the deposits sent to it$`),
		regexp.MustCompile(`(?m)^OK$`),
	} {
		if !want.MatchString(r.Stdout) {
			t.Errorf("output lacks a line matching %s", want)
		}
	}
	if strings.Contains(r.Stdout, "FAIL") {
		t.Errorf("the example reported a failed check")
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
}

func TestMain_BadFlags_UsageErrorNoPanic(t *testing.T) {
	for _, args := range [][]string{{"-accounts", "2"}, {"extra"}, {"-nosuchflag"}} {
		r := maintest.Run(t, args...)
		if r.Code != exitUsage || r.Panicked() || r.Stderr == "" {
			t.Errorf("%q: exit %d, want %d with a message and no panic\nstderr:\n%s", args, r.Code, exitUsage, r.Stderr)
		}
	}
}

// A -pg server that cannot be reached ends in a clear error naming the
// journal, before any member starts.
func TestMain_UnreachablePostgreSQL_ClearErrorNoPanic(t *testing.T) {
	r := maintest.Run(t, "-pg", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5")
	if r.Code != exitFailed || r.Panicked() || !strings.Contains(r.Stderr, "cluster: opening the journal: ") {
		t.Fatalf("exit %d, want %d with \"cluster: opening the journal: …\" and no panic\nstdout:\n%s\nstderr:\n%s", r.Code, exitFailed, r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout, "== three members") {
		t.Errorf("members were started although the journal could not be opened:\n%s", r.Stdout)
	}
}

// Without PostgreSQL binaries (hidden here by a private mount namespace
// with an empty /usr/lib/postgresql and a PATH without them) and without
// -pg, the program says what to install and exits with status 3.
func TestMain_NoPostgreSQL_SaysWhatToInstallExit3(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to hide the PostgreSQL binaries in a mount namespace (unshare -m)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not found")
	}
	script := `[ -d /usr/lib/postgresql ] && mount -t tmpfs none /usr/lib/postgresql; exec "$@"`
	cmd := exec.Command("unshare", "-m", "sh", "-c", script, "sh", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ORCHESTRIX_MAINTEST_ARGS=[]", "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitNoPG {
		t.Fatalf("got %v, want exit status %d\nstdout:\n%s\nstderr:\n%s", err, exitNoPG, stdout.String(), stderr.String())
	}
	for _, want := range []string{"this example needs PostgreSQL", "apt-get install postgresql", "-pg DSN"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "panic:") {
		t.Errorf("panicked:\n%s", stderr.String())
	}
}
