package main_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

// makePGJournal writes the fixture to a fresh database and returns its
// DSN.
func makePGJournal(t *testing.T) string {
	t.Helper()
	dsn := pgtest.DSN(t)
	j, err := postgres.Open(context.Background(), dsn, postgres.Config{})
	require.NoError(t, err)
	appendFixture(t, j)
	require.NoError(t, j.Close())
	return dsn
}

func TestPostgres_CheckExportImport(t *testing.T) {
	src := makePGJournal(t)
	r := runCLI(t, "", "--pg", src, "check")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Equal(t, "ok: 3 streams, 9 records, last position 9: no problems found\n", r.stdout)

	r = runCLI(t, "", "--pg", src, "streams", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, `{"stream":"account-1","head":3,"deleted_to":0,"events":3}`, lines(r.stdout)[0])

	r = runCLI(t, "", "--pg", src, "stats")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "events:       9 stored, 0 deleted\n")

	file := filepath.Join(t.TempDir(), "export.jsonl")
	r = runCLI(t, "", "--pg", src, "export", "--out", file)
	require.Equal(t, 0, r.code, r.stderr)
	data, err := os.ReadFile(file)
	require.NoError(t, err)

	// Into another database, twice.
	dst := pgtest.DSN(t)
	r = runCLI(t, "", "--pg", dst, "import", "--in", file)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "imported 9 events (0 already present) into 3 streams\n", r.stderr)
	r = runCLI(t, "", "--pg", dst, "import", "--in", file)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "imported 0 events (9 already present) into 3 streams\n", r.stderr)
	r = runCLI(t, "", "--pg", dst, "export")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, string(data), r.stdout)

	// And into bbolt: the export is the same whatever the backend.
	dir := t.TempDir()
	r = runCLI(t, "", "--data", dir, "import", "--in", file)
	require.Equal(t, 0, r.code, r.stderr)
	r = runCLI(t, "", "--data", dir, "export")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, string(data), r.stdout)

	// A conflicting import names the stream and version.
	other := pgtest.DSN(t)
	j, err := postgres.Open(context.Background(), other, postgres.Config{})
	require.NoError(t, err)
	_, err = j.Append(context.Background(), "order-9", journal.NoStream, []orchestrix.Envelope{
		{ID: "x1", Source: "/elsewhere", Type: "test.Other"}, {ID: "x2", Source: "/elsewhere", Type: "test.Other"}})
	require.NoError(t, err)
	require.NoError(t, j.Close())
	r = runCLI(t, "", "--pg", other, "import", "--in", file)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, `line 5: stream "order-9" version 1: conflicting data`)

	// Damage a record behind the journal's back.
	conn, err := pgx.Connect(context.Background(), src)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), `UPDATE journal_events SET record = set_byte(record, 3, get_byte(record, 3) # 255)
		WHERE stream = 'order-9' AND version = 3`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))
	r = runCLI(t, "", "--pg", src, "check")
	assert.Equal(t, 1, r.code)
	out := lines(r.stdout)
	require.Len(t, out, 4, r.stdout)
	assert.True(t, strings.HasPrefix(out[0], `problem: stream "order-9" version 3 position 7: checksum mismatch`), out[0])
	assert.Equal(t, "FAILED: 1 problem(s) in the PostgreSQL journal (3 streams, 9 records, last position 9)", out[1])
	assert.Equal(t, "the journal is inconsistent in 1 stream(s): order-9", out[2])
	assert.True(t, strings.HasPrefix(out[3], "what to do: restore from a backup"), out[3])
}

func TestPostgres_TailFollow_PrintsNewCommitsUntilInterrupted(t *testing.T) {
	dsn := makePGJournal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliPath, "--pg", dsn, "tail", "--from", "9", "--follow")
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)

	require.True(t, sc.Scan(), "first record: %s", stderr.String())
	assert.Contains(t, sc.Text(), `"position":9`)

	j, err := postgres.Open(context.Background(), dsn, postgres.Config{})
	require.NoError(t, err)
	defer j.Close()
	_, err = j.Append(context.Background(), "late", journal.NoStream, []orchestrix.Envelope{
		{ID: "late-1", Source: "/test", Type: "test.Late"}})
	require.NoError(t, err)

	require.True(t, sc.Scan(), "followed record: %s", stderr.String())
	assert.Contains(t, sc.Text(), `"stream":"late","version":1,"position":10`)

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	assert.NoError(t, cmd.Wait(), stderr.String())
}
