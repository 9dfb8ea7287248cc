package obs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/examples/internal/obs"
	"github.com/orchestrix/orchestrix/journal"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
)

func TestObs_Console_ServesUntilContextEnds(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	s := obs.Flags(fs)
	require.NoError(t, fs.Parse([]string{"-console", "127.0.0.1:0"}))
	o, err := s.Start(io.Discard, io.Discard)
	require.NoError(t, err)
	defer o.Shutdown(context.Background())

	j, err := memjournal.New(memjournal.Config{})
	require.NoError(t, err)
	defer j.Close()
	_, err = j.Append(context.Background(), "account-1", journal.Any, []orchestrix.Envelope{{ID: "e1", Source: "/t", Type: "t.Happened", Data: []byte(`{}`)}})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- o.Console(ctx, console.Config{Journal: j}, pw); pw.Close() }()
	sc := bufio.NewScanner(pr)
	require.True(t, sc.Scan())
	m := regexp.MustCompile(`http://([^/]+)/`).FindStringSubmatch(sc.Text())
	require.NotNil(t, m, sc.Text())
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + m[1] + "/api/events?stream=account-1")
	require.NoError(t, err)
	var page console.EventPage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
	resp.Body.Close()
	require.Len(t, page.Events, 1)
	require.Equal(t, "e1", page.Events[0].ID)

	cancel()
	require.NoError(t, <-done)
}

func TestObs_Console_WithoutFlag_ReturnsAtOnce(t *testing.T) {
	var o *obs.Obs
	require.NoError(t, o.Console(context.Background(), console.Config{}, io.Discard))
}
