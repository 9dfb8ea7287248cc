package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/pii"
	"github.com/orchestrix/orchestrix/pii/piitest"
	"github.com/orchestrix/orchestrix/pii/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openStore(t testing.TB, dsn string, cfg postgres.Config) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestStore_Conformance runs the suite on one database with a schema per
// directory the suite hands out, so reopening a directory reopens its
// keys. The schema names need quoting.
func TestStore_Conformance(t *testing.T) {
	dsn := pgtest.DSN(t)
	piitest.RunKeyStore(t, piitest.Features{Durable: true}, func(t *testing.T, dir string) pii.KeyStore {
		h := fnv.New64a()
		h.Write([]byte(dir))
		s, err := postgres.Open(context.Background(), dsn, postgres.Config{Schema: fmt.Sprintf("Keys %x", h.Sum64())})
		require.NoError(t, err)
		return s
	})
}

// Several stores on one database race for the same new subjects: each
// subject gets one key, and every store returns it.
func TestGetOrCreate_StoresRace_OneKeyPerSubject(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	const stores, subjects, rounds = 4, 50, 3
	members := make([]*postgres.Store, stores)
	for i := range members {
		members[i] = openStore(t, dsn, postgres.Config{MaxConns: 4})
	}
	ids := make([][]string, stores) // store → subject → key id
	var wg sync.WaitGroup
	errs := make(chan error, stores*rounds)
	for i, s := range members {
		ids[i] = make([]string, subjects)
		for r := range rounds {
			wg.Go(func() {
				for j := range subjects {
					k, err := s.GetOrCreate(ctx, fmt.Sprintf("subject-%d", (j+r*7)%subjects))
					if err != nil {
						errs <- err
						return
					}
					if r == 0 {
						ids[i][(j+r*7)%subjects] = k.ID
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for j := range subjects {
		for i := 1; i < stores; i++ {
			require.Equal(t, ids[0][j], ids[i][j], "stores 0 and %d use different keys for subject-%d", i, j)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var rows, distinct int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT subject) FROM `+
		pgx.Identifier{members[0].Schema(), postgres.Table}.Sanitize()).Scan(&rows, &distinct))
	require.Equal(t, subjects, rows, "one row per subject")
	require.Equal(t, subjects, distinct)
}

// An erasure committed by one store is seen by another at once: its next
// Get, GetOrCreate and decode report the subject erased, although it read
// the key just before.
func TestDelete_OtherStore_SeesErasureAtOnce(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	a, b := openStore(t, dsn, postgres.Config{}), openStore(t, dsn, postgres.Config{})

	type Profile struct {
		Name string `pii:"data"`
	}
	codecA, err := pii.NewCodec(pii.Config{Keys: a})
	require.NoError(t, err)
	codecB, err := pii.NewCodec(pii.Config{Keys: b})
	require.NoError(t, err)
	data, err := codecA.EncodeFor(ctx, "alice", Profile{Name: "Alice Liddell"})
	require.NoError(t, err)
	bobData, err := codecA.EncodeFor(ctx, "bob", Profile{Name: "Bob"})
	require.NoError(t, err)

	var got Profile
	require.NoError(t, codecB.DecodeFor(ctx, "alice", data, &got))
	require.Equal(t, "Alice Liddell", got.Name, "b decrypts what a encrypted")
	alice, err := b.GetOrCreate(ctx, "alice")
	require.NoError(t, err)
	_, err = b.Get(ctx, alice.ID)
	require.NoError(t, err)

	require.NoError(t, a.Delete(ctx, "alice"))

	_, err = b.Get(ctx, alice.ID)
	require.ErrorIs(t, err, pii.ErrErased, "b still hands out alice's key after a erased it")
	_, err = b.GetOrCreate(ctx, "alice")
	require.ErrorIs(t, err, pii.ErrErased)
	got = Profile{}
	require.NoError(t, codecB.DecodeFor(ctx, "alice", data, &got))
	require.Equal(t, pii.Erased, got.Name, "b still decrypts alice's data after a erased her")
	_, err = codecB.EncodeFor(ctx, "alice", Profile{Name: "Alice again"})
	require.ErrorIs(t, err, pii.ErrErased)
	require.NoError(t, codecB.DecodeFor(ctx, "bob", bobData, &got))
	require.Equal(t, "Bob", got.Name, "erasing alice touched bob")
}

// After Delete (which vacuums), no row version of the keys table holds
// the erased key's bytes, and the live ones still do.
func TestDelete_Vacuums_NoRowVersionKeepsTheKey(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s := openStore(t, dsn, postgres.Config{})
	alice, err := s.GetOrCreate(ctx, "alice")
	require.NoError(t, err)
	bob, err := s.GetOrCreate(ctx, "bob")
	require.NoError(t, err)

	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	table := pgx.Identifier{s.Schema(), postgres.Table}.Sanitize()
	// Every tuple on the table's pages, dead or alive (pageinspect).
	_, err = conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pageinspect")
	if err != nil {
		t.Skipf("pageinspect unavailable: %v", err)
	}
	tuples := func() [][]byte {
		rows, err := conn.Query(ctx, `SELECT t.t_data FROM generate_series(0, pg_relation_size($1::regclass) / current_setting('block_size')::int - 1) AS blk,
			LATERAL heap_page_items(get_raw_page($1::text, blk::int)) AS t WHERE t.t_data IS NOT NULL`, table)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		require.NoError(t, err)
		return out
	}
	holds := func(material []byte) bool {
		for _, tup := range tuples() {
			if bytes.Contains(tup, material) {
				return true
			}
		}
		return false
	}
	require.True(t, holds(alice.Material), "the key must be in the table before erasure")

	require.NoError(t, s.Delete(ctx, "alice"))
	require.False(t, holds(alice.Material), "a row version still holds alice's key after Delete")
	require.True(t, holds(bob.Material), "bob's key lost")

	// With SkipVacuum the dead version stays until someone vacuums.
	lazy := openStore(t, dsn, postgres.Config{SkipVacuum: true})
	require.NoError(t, lazy.Delete(ctx, "bob"))
	require.True(t, holds(bob.Material), "without VACUUM the dead row version is expected to remain")
	_, err = conn.Exec(ctx, "VACUUM "+table)
	require.NoError(t, err)
	require.False(t, holds(bob.Material))
}

func TestOpen_BadConfig_Rejected(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://127.0.0.1:1/x", postgres.Config{MaxConns: -1})
	require.Error(t, err)
	_, err = postgres.New(context.Background(), nil, postgres.Config{})
	require.Error(t, err)
}

func TestGet_IllFormedID_UnknownKey(t *testing.T) {
	s := openStore(t, pgtest.DSN(t), postgres.Config{})
	for _, id := range []string{"has space", "nul\x00", string(bytes.Repeat([]byte("a"), 65))} {
		_, err := s.Get(context.Background(), id)
		require.ErrorIs(t, err, pii.ErrUnknownKey, "%q", id)
		require.ErrorIs(t, err, orchestrix.ErrCorrupt)
	}
}

// A subject is any bytes up to pii.MaxSubjectLen, as the contract says,
// not only valid UTF-8.
func TestGetOrCreate_BinarySubject_Accepted(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, pgtest.DSN(t), postgres.Config{})
	subject := "\xff\x00bin"
	k, err := s.GetOrCreate(ctx, subject)
	require.NoError(t, err)
	again, err := s.GetOrCreate(ctx, subject)
	require.NoError(t, err)
	require.Equal(t, k.ID, again.ID)
	require.NoError(t, s.Delete(ctx, subject))
	_, err = s.Get(ctx, k.ID)
	require.True(t, errors.Is(err, pii.ErrErased), "%v", err)
}
