package main_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/journal/bolt"
)

const ceLines = `{"specversion":"1.0","id":"py-1","source":"/python/orders","type":"order.Placed","subject":"order-1","datacontenttype":"application/json","data":{"total":10}}
{"specversion":"1.0","id":"py-2","source":"/python/orders","type":"order.Paid","subject":"order-1","datacontenttype":"application/json","data":{"amount":10}}
{"specversion":"1.0","id":"py-3","source":"/python/orders","type":"order.Placed","subject":"order-2","sequence":"1","datacontenttype":"application/json","data":{"total":5}}
`

// streamIDs returns the event ids of stream in version order.
func streamIDs(t *testing.T, dir, stream string) []string {
	t.Helper()
	j, err := bolt.Open(filepath.Join(dir, "orchestrix.db"), bolt.Config{})
	require.NoError(t, err)
	defer j.Close()
	var ids []string
	for rec, err := range j.Read(context.Background(), stream, 1, math.MaxUint64, math.MaxInt) {
		require.NoError(t, err)
		ids = append(ids, rec.Envelope.ID)
	}
	return ids
}

func TestImportCloudEvents_Lines_StreamFromSubject_Idempotent(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, ceLines, "--data", dir, "import", "--format", "cloudevents", "--dry-run")
	require.Equal(t, 1, r.code, "a dry run needs an existing journal: %s", r.stderr)

	r = runCLI(t, ceLines, "--data", dir, "import", "--format", "cloudevents")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "imported 3 events (0 already present) into 2 streams\n", r.stderr)
	assert.Equal(t, []string{"py-1", "py-2"}, streamIDs(t, dir, "order-1"))
	assert.Equal(t, []string{"py-3"}, streamIDs(t, dir, "order-2"))

	r = runCLI(t, ceLines, "--data", dir, "import", "--format", "cloudevents")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "imported 0 events (3 already present) into 2 streams\n", r.stderr)

	more := ceLines + `{"specversion":"1.0","id":"py-4","source":"/python/orders","type":"order.Shipped","subject":"order-1","data":{}}` + "\n"
	r = runCLI(t, more, "--data", dir, "import", "--format", "cloudevents", "--dry-run")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "dry run: would import 1 events (3 already present) into 2 streams; nothing was changed\n", r.stderr)
	assert.Equal(t, []string{"py-1", "py-2"}, streamIDs(t, dir, "order-1"), "a dry run stores nothing")
}

func TestImportCloudEvents_BatchArrayAndTemplate(t *testing.T) {
	dir := t.TempDir()
	batch := `[{"specversion":"1.0","id":"b-1","source":"/py","type":"cart.Added","subject":"7","data":{}},
 {"specversion":"1.0","id":"b-2","source":"/py","type":"cart.Added","subject":"7","data":{}}]`
	r := runCLI(t, batch, "--data", dir, "import", "--format", "cloudevents", "--stream", "cart-{subject}")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"b-1", "b-2"}, streamIDs(t, dir, "cart-7"))

	r = runCLI(t, batch, "--data", dir, "import", "--format", "cloudevents", "--stream", "cart-{nosuch}")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, `event 1: event "b-1": no "nosuch" attribute`)

	r = runCLI(t, batch, "--data", dir, "import", "--format", "cloudevents", "--stream", "cart-{subject")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "unclosed")
	r = runCLI(t, batch, "--data", dir, "import", "--format", "xml")
	assert.Equal(t, 2, r.code)
}

func TestImport_SameIDDifferentData_IsAConflict(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, ceLines, "--data", dir, "import", "--format", "cloudevents")
	require.Equal(t, 0, r.code, r.stderr)
	changed := strings.Replace(ceLines, `"amount":10`, `"amount":99`, 1)
	r = runCLI(t, changed, "--data", dir, "import", "--format", "cloudevents")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, `line 2: stream "order-1" version 2: conflict: event "py-2" is stored with different type or data`)
	assert.NotContains(t, r.stderr, "already present) into 2")
}

func TestImport_MalformedLine_KeepsTheLinesBeforeIt(t *testing.T) {
	for _, format := range []string{"export", "cloudevents"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			input := ceLines + "{not json\n"
			if format == "export" {
				src := makeJournal(t, false)
				r := runCLI(t, "", "--data", src, "export")
				require.Equal(t, 0, r.code, r.stderr)
				input = r.stdout + "{not json\n"
			}
			r := runCLI(t, input, "--data", dir, "import", "--format", format)
			assert.Equal(t, 1, r.code)
			if format == "export" {
				assert.Contains(t, r.stderr, "line 10:")
				assert.Contains(t, r.stderr, "imported 9 events")
				assert.Len(t, streamIDs(t, dir, "account-1"), 3)
			} else {
				assert.Contains(t, r.stderr, "line 4:")
				assert.Contains(t, r.stderr, "imported 3 events")
				assert.Equal(t, []string{"py-3"}, streamIDs(t, dir, "order-2"))
			}
		})
	}
}

func TestImport_InvalidUTF8_RefusedNamingTheLine(t *testing.T) {
	dir := t.TempDir()
	bad := ceLines + `{"specversion":"1.0","id":"x","source":"/py","type":"t","subject":"order-` + "\xff" + `","data":{}}` + "\n"
	r := runCLI(t, bad, "--data", dir, "import", "--format", "cloudevents")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "line 4: not valid UTF-8")
	assert.Equal(t, []string{"py-1", "py-2"}, streamIDs(t, dir, "order-1"))

	surrogate := `{"stream":"s-\udc00","version":1,"event":{"specversion":"1.0","id":"x","source":"/py","type":"t"}}` + "\n"
	r = runCLI(t, surrogate, "--data", t.TempDir(), "import")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "line 1: stream name")
}
