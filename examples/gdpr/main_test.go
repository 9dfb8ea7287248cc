package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/pii"
	boltkeys "github.com/orchestrix/orchestrix/pii/bolt"
)

func TestRun_ErasesAliceEverywhereAndKeepsTheRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, dir, nil))
	text := out.String()
	for _, want := range []string{
		`stored payload of customer-alice v1: {"Name":"enc:v1:`,
		`customer alice name="Alice Liddell" email="alice@looking-glass.example" country=GB`,
		`order    o-1   ship to "7 Rabbit Hole, Oxford"`,
		"erasure recorded in stream pii-alice",
		"new personal data for alice is refused: true",
		`customer alice name="[erased]" email="[erased]" country=GB`,
		`customer bob   name="Bob Marley" email="bob@trenchtown.example" country=JM`,
		`order    o-1   ship to "[erased]"`,
		`order    o-2   ship to "56 Hope Road, Kingston"`,
		`alice at version 3: name="[erased]" email="[erased]" country=GB orders=1`,
		`bob: name="Bob Marley" email="bob@trenchtown.example"`,
		"journal read of order-o-1: {CustomerID:alice ShipTo:[erased] Total:4200}",
		`orchestrix.db contains "Alice Liddell": false`,
		`orchestrix.db contains "Rabbit Hole": false`,
		"orchestrix.db contains alice's key: false",
		"keys.db contains alice's key: false",
	} {
		require.Contains(t, text, want)
	}
	// The rebuilt directory no longer shows alice's data.
	after := text[strings.Index(text, "== the directory, rebuilt"):strings.Index(text, "== the stored bytes")]
	require.NotContains(t, after, "Alice Liddell")
	require.NotContains(t, after, "Rabbit Hole")

	// Independently of the demo: no personal data in either file.
	for _, name := range []string{JournalFile, KeysFile} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		for _, secret := range []string{"Alice Liddell", "wonderland", "looking-glass", "Rabbit Hole", "Bob Marley", "Hope Road"} {
			require.NotContains(t, string(raw), secret, "%s holds %q in the clear", name, secret)
		}
	}

	// The stored tokens name keys: alice's is destroyed, bob's is not.
	j, err := boltjournal.Open(filepath.Join(dir, JournalFile), boltjournal.Config{})
	require.NoError(t, err)
	defer j.Close()
	keys, err := boltkeys.Open(filepath.Join(dir, KeysFile), boltkeys.Config{})
	require.NoError(t, err)
	defer keys.Close()
	keyOf := func(stream string) string {
		for rec, err := range j.Read(ctx, stream, 1, 1, 1) {
			require.NoError(t, err)
			var payload struct{ Name string }
			require.NoError(t, json.Unmarshal(rec.Envelope.Data, &payload))
			parts := strings.Split(payload.Name, ":")
			require.Len(t, parts, 4, "payload %s", rec.Envelope.Data)
			return parts[2]
		}
		t.Fatalf("stream %s is empty", stream)
		return ""
	}
	_, err = keys.Get(ctx, keyOf("customer-alice"))
	require.ErrorIs(t, err, pii.ErrErased)
	bobKey, err := keys.Get(ctx, keyOf("customer-bob"))
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(dir, KeysFile))
	require.NoError(t, err)
	require.True(t, bytes.Contains(raw, bobKey.Material), "bob's key must survive alice's erasure")

	// The erasure is on record.
	reg := orchestrix.NewRegistry()
	require.NoError(t, pii.RegisterEvents(reg))
	n := 0
	for rec, err := range j.Read(ctx, pii.ErasureStream("alice"), 1, 10, 10) {
		require.NoError(t, err)
		v, err := reg.Unmarshal(rec.Envelope)
		require.NoError(t, err)
		require.Equal(t, pii.SubjectErased{Subject: "alice", Reason: "GDPR art. 17 request #1"}, v)
		n++
	}
	require.Equal(t, 1, n)
}

// The same story with the journal, the snapshots and the shared key store
// (pii/postgres) in one PostgreSQL database.
func TestRunOn_PostgreSQL_ErasesAliceEverywhere(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	require.NoError(t, runOn(ctx, &out, postgresBackend(pgtest.DSN(t)), nil))
	text := out.String()
	for _, want := range []string{
		`customer alice name="Alice Liddell" email="alice@looking-glass.example" country=GB`,
		"new personal data for alice is refused: true",
		`customer alice name="[erased]" email="[erased]" country=GB`,
		`order    o-1   ship to "[erased]"`,
		`alice at version 3: name="[erased]" email="[erased]" country=GB orders=1`,
		`bob: name="Bob Marley" email="bob@trenchtown.example"`,
		`table journal_events contains "Alice Liddell": false`,
		`table journal_events contains "Rabbit Hole": false`,
		"table journal_events contains alice's key: false",
		"table pii_keys contains alice's key: false",
	} {
		require.Contains(t, text, want)
	}
}
