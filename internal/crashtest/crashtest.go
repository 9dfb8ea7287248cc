// Package crashtest runs the child process of a SIGKILL crash test: the
// test binary started again to run one test function that works until it
// is killed, printing a line for everything it acknowledges.
package crashtest

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Ready is the line a child prints once it is set up; the kill is timed
// from it.
const Ready = "ready"

// readyTimeout bounds the child's set-up.
const readyTimeout = 60 * time.Second

// Kill starts the test binary again running only the test named child,
// with env added to its environment, waits until it prints Ready, lets
// it run for d, kills it with SIGKILL and returns every complete line it
// printed but Ready, in order. A child must write each line in one write
// of less than a pipe buffer (PIPE_BUF), so that a kill never splits one. It fails the test when the
// child does not become ready or does not die from the kill.
func Kill(t *testing.T, child string, env []string, d time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan []string)
	go func() {
		var lines []string
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := false
		for sc.Scan() {
			if !seen && sc.Text() == Ready {
				seen = true
				close(ready)
				continue
			}
			lines = append(lines, sc.Text())
		}
		done <- lines
	}()
	select {
	case <-ready:
		time.Sleep(d)
	case <-time.After(readyTimeout):
		t.Errorf("crash child %s did not become ready in %v", child, readyTimeout)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	lines := <-done
	var exitErr *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exitErr) {
		t.Fatalf("crash child %s must die from the kill, got %v", child, err)
	}
	return lines
}
