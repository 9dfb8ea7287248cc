package main_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// cliPath is the orchestrix command built by TestMain.
var cliPath string

// TestMain builds the command once, next to the test binary (go test
// removes that directory when it is done).
func TestMain(m *testing.M) {
	exe, err := os.Executable()
	if err == nil {
		cliPath = filepath.Join(filepath.Dir(exe), "orchestrix-cli")
		out, berr := exec.Command("go", "build", "-o", cliPath, ".").CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("%v\n%s", berr, out)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "building orchestrix: %v\n", err)
		os.Exit(1)
	}
	pgtest.Main(m)
}

// result is one run of the command.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the command with args and stdin, without the ORCHESTRIX_*
// environment of the test process.
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliPath, args...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ORCHESTRIX_DATA=") && !strings.HasPrefix(kv, "ORCHESTRIX_PG=") {
			env = append(env, kv)
		}
	}
	return env
}

// t0 is the time of the fixtures' first event.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is what makeJournal stores, in append order: stream, number of
// events. Event i of the whole fixture has time t0 + i minutes.
var fixture = []struct {
	stream string
	n      int
}{{"account-1", 2}, {"account-2", 2}, {"order-9", 4}, {"account-1", 1}}

// fixtureEvents returns the events of fixture entry k.
func fixtureEvents(k int) []orchestrix.Envelope {
	base := 0
	for _, f := range fixture[:k] {
		base += f.n
	}
	f := fixture[k]
	evs := make([]orchestrix.Envelope, f.n)
	for i := range evs {
		evs[i] = orchestrix.Envelope{
			ID: fmt.Sprintf("evt-%02d", base+i), Source: "/orchestrix/test", Type: "test.Happened",
			Subject: f.stream, Time: t0.Add(time.Duration(base+i) * time.Minute),
			DataContentType: "application/json", Data: []byte(fmt.Sprintf(`{"n":%d}`, base+i)),
		}
	}
	return evs
}

// appendFixture appends the fixture to j, one append per event.
func appendFixture(t *testing.T, j journal.Journal) {
	t.Helper()
	for k, f := range fixture {
		for _, e := range fixtureEvents(k) {
			_, err := j.Append(context.Background(), f.stream, journal.Any, []orchestrix.Envelope{e})
			require.NoError(t, err)
		}
	}
}

// makeJournal writes the fixture (9 events at positions 1…9: account-1
// 1,2,9; account-2 3,4; order-9 5…8) to DIR/orchestrix.db and returns
// DIR. With deleteOrder, order-9 is deleted up to version 1.
func makeJournal(t *testing.T, deleteOrder bool) string {
	t.Helper()
	dir := t.TempDir()
	j, err := bolt.Open(filepath.Join(dir, "orchestrix.db"), bolt.Config{NoSync: true})
	require.NoError(t, err)
	appendFixture(t, j)
	if deleteOrder {
		require.NoError(t, j.DeleteTo(context.Background(), "order-9", 1))
	}
	require.NoError(t, j.Close())
	return dir
}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

type recordLine struct {
	Stream   string          `json:"stream"`
	Version  uint64          `json:"version"`
	Position uint64          `json:"position"`
	Event    json.RawMessage `json:"event"`
}

func parseRecords(t *testing.T, out string) []recordLine {
	t.Helper()
	var recs []recordLine
	for _, l := range lines(out) {
		var r recordLine
		require.NoError(t, json.Unmarshal([]byte(l), &r), l)
		recs = append(recs, r)
	}
	return recs
}

func TestHelp_EveryCommand_PrintsUsage(t *testing.T) {
	r := runCLI(t, "", "help")
	assert.Equal(t, 0, r.code)
	for _, name := range []string{"streams", "events", "tail", "check", "stats", "export", "import", "bench"} {
		assert.Contains(t, r.stdout, "\n  "+name+" ", "main help lists %s", name)

		r := runCLI(t, "", name, "-h")
		assert.Equal(t, 0, r.code, name)
		assert.Contains(t, r.stderr, "Usage: orchestrix "+name, name)

		r = runCLI(t, "", "help", name)
		assert.Equal(t, 0, r.code, name)
		assert.Contains(t, r.stdout, "Usage: orchestrix "+name, name)
	}
}

func TestRun_UsageErrors_ExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"streams", "--no-such-flag"},
		{"events"},
		{"events", "a", "b"},
		{"events", "a", "--at", "yesterday"},
		{"help", "frobnicate"},
	} {
		r := runCLI(t, "", args...)
		assert.Equal(t, 2, r.code, "%q: %s", args, r.stderr)
	}
}

func TestStreams_ListsHeads(t *testing.T) {
	dir := makeJournal(t, true)
	r := runCLI(t, "", "--data", dir, "streams")
	require.Equal(t, 0, r.code, r.stderr)
	out := lines(r.stdout)
	require.Len(t, out, 4, r.stdout)
	assert.Equal(t, []string{"STREAM", "HEAD", "DELETED", "TO", "EVENTS"}, strings.Fields(out[0]))
	assert.Equal(t, []string{"account-1", "3", "0", "3"}, strings.Fields(out[1]))
	assert.Equal(t, []string{"account-2", "2", "0", "2"}, strings.Fields(out[2]))
	assert.Equal(t, []string{"order-9", "4", "1", "3"}, strings.Fields(out[3]))

	// Global flags after the command, JSON output.
	r = runCLI(t, "", "streams", "--json", "--data", dir)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, `{"stream":"order-9","head":4,"deleted_to":1,"events":3}`, lines(r.stdout)[2])
}

func TestStreams_NoJournal_Fails(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, "", "--data", dir, "streams")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "no journal at "+filepath.Join(dir, "orchestrix.db"))
	_, err := os.Stat(filepath.Join(dir, "orchestrix.db"))
	assert.ErrorIs(t, err, os.ErrNotExist, "a read command must not create the journal")
}

func TestEvents_PrintsCloudEvents(t *testing.T) {
	dir := makeJournal(t, false)
	r := runCLI(t, "", "--data", dir, "events", "account-1")
	require.Equal(t, 0, r.code, r.stderr)
	out := lines(r.stdout)
	require.Len(t, out, 3)
	var ids []string
	for i, l := range out {
		var e orchestrix.Envelope
		require.NoError(t, e.UnmarshalJSON([]byte(l)), l)
		assert.Equal(t, uint64(i+1), e.Sequence)
		ids = append(ids, e.ID)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		assert.Equal(t, "1.0", m["specversion"])
	}
	assert.Equal(t, []string{"evt-00", "evt-01", "evt-08"}, ids)

	r = runCLI(t, "", "--data", dir, "events", "account-1", "--from", "2", "--to", "2")
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, lines(r.stdout), 1)
	assert.Contains(t, r.stdout, `"id":"evt-01"`)

	// As of the time of evt-01 (t0+1m): versions 1 and 2 only.
	r = runCLI(t, "", "--data", dir, "events", "--at", t0.Add(time.Minute).Format(time.RFC3339), "account-1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Len(t, lines(r.stdout), 2)

	r = runCLI(t, "", "--data", dir, "events", "nobody")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, `stream "nobody" not found`)
}

func TestTail_PrintsGlobalLog(t *testing.T) {
	dir := makeJournal(t, true)
	r := runCLI(t, "", "--data", dir, "tail", "--from", "1")
	require.Equal(t, 0, r.code, r.stderr)
	recs := parseRecords(t, r.stdout)
	require.Len(t, recs, 8) // 9 minus the deleted one
	var got []string
	for _, rec := range recs {
		got = append(got, fmt.Sprintf("%d:%s@%d", rec.Position, rec.Stream, rec.Version))
	}
	assert.Equal(t, []string{"1:account-1@1", "2:account-1@2", "3:account-2@1", "4:account-2@2",
		"6:order-9@2", "7:order-9@3", "8:order-9@4", "9:account-1@3"}, got)
	var e orchestrix.Envelope
	require.NoError(t, e.UnmarshalJSON(recs[0].Event))
	assert.Equal(t, "evt-00", e.ID)

	r = runCLI(t, "", "--data", dir, "tail", "-n", "2")
	require.Equal(t, 0, r.code, r.stderr)
	recs = parseRecords(t, r.stdout)
	require.Len(t, recs, 2)
	assert.Equal(t, uint64(8), recs[0].Position)

	r = runCLI(t, "", "--data", dir, "tail", "--follow")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "--follow needs a journal other processes can append to")
}

func TestStats_Counts(t *testing.T) {
	dir := makeJournal(t, true)
	r := runCLI(t, "", "--data", dir, "stats")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "streams:      3\n")
	assert.Contains(t, r.stdout, "events:       8 stored, 1 deleted\n")
	assert.Contains(t, r.stdout, "positions:    1 … 9\n")
	assert.Contains(t, r.stdout, `last commit:  position 9, stream "account-1" version 3, event time 2025-03-01T12:08:00Z`)

	r = runCLI(t, "", "--data", dir, "stats", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var st struct {
		Streams       int    `json:"streams"`
		Events        uint64 `json:"events"`
		FirstPosition uint64 `json:"first_position"`
		LastPosition  uint64 `json:"last_position"`
		SizeBytes     int64  `json:"size_bytes"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	fi, err := os.Stat(filepath.Join(dir, "orchestrix.db"))
	require.NoError(t, err)
	assert.Equal(t, 3, st.Streams)
	assert.Equal(t, uint64(8), st.Events)
	assert.Equal(t, uint64(1), st.FirstPosition)
	assert.Equal(t, uint64(9), st.LastPosition)
	assert.Equal(t, fi.Size(), st.SizeBytes)
}

func TestCheck_CleanJournal_ExitsZero(t *testing.T) {
	dir := makeJournal(t, true)
	r := runCLI(t, "", "--data", dir, "check")
	assert.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Equal(t, "ok: 3 streams, 8 records, last position 9: no problems found\n", r.stdout)
}

func TestCheck_CorruptRecord_ReportsAndExitsOne(t *testing.T) {
	dir := makeJournal(t, false)
	path := filepath.Join(dir, "orchestrix.db")
	// Each event was appended alone, so the block at position 3 holds
	// only account-2's version 1; its last byte is in the event's data.
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("journal.log"))
		key := binary.BigEndian.AppendUint64(nil, 3)
		v := append([]byte(nil), b.Get(key)...)
		require.NotEmpty(t, v)
		v[len(v)-1] ^= 0xff
		return b.Put(key, v)
	}))
	require.NoError(t, db.Close())

	r := runCLI(t, "", "--data", dir, "check")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, `problem: stream "account-2" version 1 position 3: checksum mismatch
FAILED: 1 problem(s) in `+path+` (3 streams, 9 records, last position 9)
the file is intact, but the journal is inconsistent in 1 stream(s): account-2
what to do: restore from a backup, or copy what is readable with export (events of the streams above may be missing or fail to read)
`, r.stdout)

	// The other commands report the damage too, instead of skipping it.
	r = runCLI(t, "", "--data", dir, "events", "account-2")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "corrupt record")
}

func TestLockedJournal_FailsFastWithMessage(t *testing.T) {
	dir := makeJournal(t, false)
	j, err := bolt.Open(filepath.Join(dir, "orchestrix.db"), bolt.Config{NoSync: true})
	require.NoError(t, err)
	defer j.Close()
	for _, cmd := range []string{"streams", "check", "stats", "export"} {
		r := runCLI(t, "", "--data", dir, "--lock-timeout", "100ms", cmd)
		assert.Equal(t, 1, r.code, cmd)
		assert.Contains(t, r.stderr, "journal is in use by another process: "+filepath.Join(dir, "orchestrix.db"), cmd)
	}
}

// exportKeys returns stream@version=event of an export, without
// positions.
func exportKeys(t *testing.T, out string) []string {
	t.Helper()
	var keys []string
	for _, r := range parseRecords(t, out) {
		keys = append(keys, fmt.Sprintf("%s@%d=%s", r.Stream, r.Version, r.Event))
	}
	return keys
}

func TestExportImport_RoundTrip_Idempotent(t *testing.T) {
	src := makeJournal(t, false)
	file := filepath.Join(t.TempDir(), "export.jsonl")
	r := runCLI(t, "", "--data", src, "export", "--out", file)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "exported 9 events of 3 streams\n", r.stderr)
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Len(t, lines(string(data)), 9)

	dst := filepath.Join(t.TempDir(), "new") // created by import
	r = runCLI(t, "", "--data", dst, "import", "--in", file, "--progress")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "import: 2 events (34% of the input)\n", "the first update is always shown")
	assert.True(t, strings.HasSuffix(r.stderr, "imported 9 events (0 already present) into 3 streams\n"), r.stderr)

	r = runCLI(t, "", "--data", dst, "export")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, exportKeys(t, string(data)), exportKeys(t, r.stdout))
	assert.Equal(t, string(data), r.stdout, "same order, so the same positions")

	// Again, from standard input: nothing new.
	r = runCLI(t, string(data), "--data", dst, "import")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "imported 0 events (9 already present) into 3 streams\n", r.stderr)
	r = runCLI(t, "", "--data", dst, "check")
	assert.Equal(t, "ok: 3 streams, 9 records, last position 9: no problems found\n", r.stdout)

	// A partial import followed by the full one completes it.
	part := filepath.Join(t.TempDir(), "part")
	all := lines(string(data))
	require.NoError(t, os.WriteFile(part, []byte(strings.Join(all[:5], "\n")+"\n"), 0o600))
	dst2 := t.TempDir()
	r = runCLI(t, "", "--data", dst2, "import", "--in", part)
	require.Equal(t, 0, r.code, r.stderr)
	r = runCLI(t, "", "--data", dst2, "import", "--in", file)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "imported 4 events (5 already present) into 3 streams\n", r.stderr)
}

func TestImport_ConflictingData_RefusedWithStreamAndVersion(t *testing.T) {
	src := makeJournal(t, false)
	r := runCLI(t, "", "--data", src, "export")
	require.Equal(t, 0, r.code, r.stderr)
	export := r.stdout

	// The target already has other events in account-2.
	dst := t.TempDir()
	j, err := bolt.Open(filepath.Join(dst, "orchestrix.db"), bolt.Config{NoSync: true})
	require.NoError(t, err)
	_, err = j.Append(context.Background(), "account-2", journal.NoStream, []orchestrix.Envelope{
		{ID: "other", Source: "/elsewhere", Type: "test.Other"}})
	require.NoError(t, err)
	require.NoError(t, j.Close())

	r = runCLI(t, export, "--data", dst, "import")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, `line 3: stream "account-2" version 1: conflicting data`)
	assert.Contains(t, r.stderr, "imported 2 events (0 already present)")

	// A stream whose first versions were deleted cannot start an empty
	// journal.
	src2 := makeJournal(t, true)
	r = runCLI(t, "", "--data", src2, "export")
	require.Equal(t, 0, r.code, r.stderr)
	r = runCLI(t, r.stdout, "--data", t.TempDir(), "import")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, `stream "order-9" is at version 0`)
	assert.Contains(t, r.stderr, "continues at version 2")

	// Malformed input names the line.
	r = runCLI(t, "{\"stream\":\"s\",\"version\":1,\"event\":{}}\n", "--data", t.TempDir(), "import")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, `line 1: stream "s" version 1: event:`)
}

func TestBench_NoSourceTree_Explains(t *testing.T) {
	r := runCLI(t, "", "bench", "--src", t.TempDir(), "journal")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "go run ./bench")
}

func TestBench_SourceTree_RunsHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the benchmark harness")
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	r := runCLI(t, "", "bench", "--src", root, "journal", "-h")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout+r.stderr, "-backend")
}

// A damaged bbolt page (issue 13: the root page's id field) is reported as a
// damaged file, not as journal problems, by check and by events.
func TestCheck_DamagedPage_ReportsDamagedFile(t *testing.T) {
	dir := makeJournal(t, false)
	path := filepath.Join(dir, "orchestrix.db")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	// The root bucket's page, from the newer meta page (page 0 or 1).
	le := binary.LittleEndian
	ps := int(le.Uint32(b[16+8:]))
	meta := b[16:]
	if le.Uint64(b[ps+16+48:]) > le.Uint64(b[16+48:]) {
		meta = b[ps+16:]
	}
	root := int(le.Uint64(meta[16:]))
	b[root*ps+5] ^= 0x76 // the page id field, as in issue 13
	require.NoError(t, os.WriteFile(path, b, 0o600))
	page := fmt.Sprintf("page %d", root)

	r := runCLI(t, "", "--data", dir, "check")
	assert.Equal(t, 1, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "damaged: ")
	assert.Contains(t, r.stdout, page)
	assert.Contains(t, r.stdout, "FAILED: the file "+path+" is damaged")
	assert.Contains(t, r.stdout, "restore the file from a backup")

	for _, args := range [][]string{{"events", "account-2"}, {"stats"}, {"export"}} {
		r = runCLI(t, "", append([]string{"--data", dir}, args...)...)
		assert.NotEqual(t, 0, r.code, "%v: %s", args, r.stdout)
		assert.Contains(t, r.stderr, page, "%v", args)
	}

	// The root page is gone: a salvage finds nothing, says why, exits 1.
	r = runCLI(t, "", "--data", dir, "export", "--salvage")
	assert.Equal(t, 1, r.code, r.stdout+r.stderr)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "skipped: ")
	assert.Contains(t, r.stderr, page)
}

// export --salvage of an intact file exports what export does.
func TestExport_Salvage_IntactFile_SameAsExport(t *testing.T) {
	dir := makeJournal(t, true)
	want := runCLI(t, "", "--data", dir, "export")
	require.Equal(t, 0, want.code, want.stderr)
	got := runCLI(t, "", "--data", dir, "export", "--salvage")
	require.Equal(t, 0, got.code, got.stderr)
	assert.Equal(t, want.stdout, got.stdout)
	assert.NotEmpty(t, got.stdout)
}
