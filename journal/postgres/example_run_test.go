package postgres_test

import (
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/internal/pgtest"
)

// TestExampleOpen runs ExampleOpen on a throwaway server (skipped when no
// PostgreSQL is installed) and checks what it prints, since the example
// itself cannot declare an Output.
func TestExampleOpen(t *testing.T) {
	t.Setenv("DATABASE_URL", pgtest.DSN(t))
	assert.Equal(t, "stored at version 1\nretry duplicate: true <nil>\n1 shop.order.placed\n", stdoutOf(t, ExampleOpen))
}

// stdoutOf returns what f prints to os.Stdout.
func stdoutOf(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	saved := os.Stdout
	os.Stdout = w
	out := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		out <- b
	}()
	func() {
		defer func() { os.Stdout = saved }()
		f()
	}()
	require.NoError(t, w.Close())
	b := <-out
	require.NoError(t, r.Close())
	return string(b)
}
