package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
)

// TestScanRecords_ReadQueriesTakeRawPath checks the server sends Read's
// and ReadAll's columns in the binary formats scanRecords reads without
// Scan, and that records read either way are the same.
func TestScanRecords_ReadQueriesTakeRawPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // hang guard
	defer cancel()
	j, err := Open(ctx, pgtest.DSN(t), Config{})
	require.NoError(t, err)
	defer j.Close()
	_, err = j.Append(ctx, "s", journal.NoStream, testEvents(3))
	require.NoError(t, err)
	_, err = j.Append(ctx, "t", journal.NoStream, testEvents(2))
	require.NoError(t, err)

	rows, err := j.pool.Query(ctx, j.sql.read, "s", int64(1), int64(3), 10)
	require.NoError(t, err)
	if !rawColumns(rows.FieldDescriptions()) {
		rows.Close()
		t.Fatalf("Read's columns: %+v", rows.FieldDescriptions())
	}
	raw, err := scanRecords(rows, nil, "s")
	require.NoError(t, err)
	require.Len(t, raw, 3)

	rows, err = j.pool.Query(ctx, j.sql.readAll, int64(1), 10)
	require.NoError(t, err)
	if !rawColumns(rows.FieldDescriptions()) {
		rows.Close()
		t.Fatalf("ReadAll's columns: %+v", rows.FieldDescriptions())
	}
	all, err := scanRecords(rows, nil, "")
	require.NoError(t, err)
	require.Len(t, all, 5)
	require.Equal(t, raw, all[:3])
	require.Equal(t, "t", all[3].Stream)

	// The same rows in text format go through Scan.
	rows, err = j.pool.Query(ctx, j.sql.readAll, pgx.QueryResultFormats{pgx.TextFormatCode}, int64(1), 10)
	require.NoError(t, err)
	if rawColumns(rows.FieldDescriptions()) {
		rows.Close()
		t.Fatalf("text columns taken for raw: %+v", rows.FieldDescriptions())
	}
	scanned, err := scanRecords(rows, nil, "")
	require.NoError(t, err)
	require.Equal(t, all, scanned)
}
