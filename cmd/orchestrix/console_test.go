package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConsole_ServesJournalReadOnlyUntilInterrupted(t *testing.T) {
	dir := makeJournal(t, false)
	file := filepath.Join(dir, "orchestrix.db")
	before, err := os.ReadFile(file)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliPath, "--data", dir, "console", "--addr", "127.0.0.1:0")
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stderr)
	require.True(t, sc.Scan(), "the command prints where it listens")
	m := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/`).FindStringSubmatch(sc.Text())
	require.NotNil(t, m, sc.Text())
	go func() { _, _ = io.Copy(io.Discard, stderr) }()

	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + m[1] + "/api/streams")
	require.NoError(t, err)
	var page struct {
		Streams []struct {
			Name string
			Head uint64
		}
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
	resp.Body.Close()
	require.Len(t, page.Streams, 3)
	require.Equal(t, "account-1", page.Streams[0].Name)
	require.Equal(t, uint64(3), page.Streams[0].Head)

	resp, err = client.Post("http://"+m[1]+"/api/projections/x/stop", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, []int{404, 405}, resp.StatusCode, "no mutating routes")

	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	require.NoError(t, cmd.Wait(), "an interrupt ends the console cleanly")
	after, err := os.ReadFile(file)
	require.NoError(t, err)
	require.True(t, string(before) == string(after), "the console changed the journal file")
}

func TestConsole_BadAddrAndRemoteWarning(t *testing.T) {
	dir := makeJournal(t, false)
	r := runCLI(t, "", "--data", dir, "console", "--addr", "nonsense")
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "--addr")
	r = runCLI(t, "", "--data", dir, "console", "--addr", "203.0.113.1:1")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "not a loopback address")
}
