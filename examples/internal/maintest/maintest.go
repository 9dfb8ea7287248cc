// Package maintest runs an example's main function in a child process, as
// `go run ./examples/NAME ARGS` would, so a test can check what a user
// sees: the exit status, the output, and that no error path panics.
//
// The child is the test binary itself, started again with the arguments in
// an environment variable; the example's TestMain hands its main function
// to Child before anything else:
//
//	func TestMain(m *testing.M) {
//		maintest.Child(main)
//		os.Exit(m.Run())
//	}
package maintest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// argsVar carries the child's arguments, JSON-encoded.
const argsVar = "ORCHESTRIX_MAINTEST_ARGS"

// Timeout bounds one child run.
const Timeout = 3 * time.Minute

// Child runs main with the arguments Run passed and exits with status 0
// when main returns, if this process is a child started by Run; otherwise
// it returns at once.
func Child(main func()) {
	raw, ok := os.LookupEnv(argsVar)
	if !ok {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		os.Stderr.WriteString("maintest: bad " + argsVar + ": " + err.Error() + "\n")
		os.Exit(2)
	}
	os.Args = append([]string{os.Args[0]}, args...)
	main()
	os.Exit(0)
}

// Result is what one run of main produced.
type Result struct {
	Stdout, Stderr string
	// Code is the exit status.
	Code int
}

// Panicked reports whether the run died of a Go panic or a fatal runtime
// error.
func (r Result) Panicked() bool {
	return strings.Contains(r.Stderr, "panic:") || strings.Contains(r.Stderr, "goroutine ") || strings.Contains(r.Stderr, "fatal error:")
}

// Run runs the example's main with args in a child process and returns
// what it printed and its exit status. It fails the test when the child
// cannot be started or runs longer than Timeout.
func Run(t testing.TB, args ...string) Result {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), argsVar+"="+string(raw))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("main %q ran longer than %v\nstderr:\n%s", args, Timeout, r.Stderr)
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	case err != nil:
		t.Fatalf("main %q: %v", args, err)
	}
	return r
}

// FreshDataDir runs main with -data naming a directory that does not
// exist yet (two levels deep), followed by extra arguments, and checks
// that it succeeds without a panic, creates the directory, leaves each of
// files in it, and prints each of want. It returns the directory.
func FreshDataDir(t testing.TB, files, want []string, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "not", "yet")
	r := Run(t, append([]string{"-data", dir}, extra...)...)
	if r.Code != 0 || r.Panicked() {
		t.Fatalf("main -data %s: exit %d\nstderr:\n%s\nstdout:\n%s", dir, r.Code, r.Stderr, r.Stdout)
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("main did not leave %s in the data directory: %v", f, err)
		}
	}
	for _, w := range want {
		if !strings.Contains(r.Stdout, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s", r.Stdout)
	}
	return dir
}

// UnopenableFile runs main with a data directory in which file is a
// directory, so opening it fails, and checks that main reports it as
// "name: ..." naming the file exactly once, exits with status 1, and does
// not panic.
func UnopenableFile(t testing.TB, name, file string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, file)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	r := Run(t, "-data", dir)
	if r.Code != 1 || r.Panicked() {
		t.Fatalf("main with %s unopenable: exit %d, want 1 without a panic\nstderr:\n%s", file, r.Code, r.Stderr)
	}
	if !strings.HasPrefix(r.Stderr, name+": ") || strings.Count(r.Stderr, path) != 1 {
		t.Fatalf("main with %s unopenable printed %q: want %q, then the error naming the file once", file, r.Stderr, name+": ")
	}
}
