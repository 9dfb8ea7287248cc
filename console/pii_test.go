package console_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/pii"
)

type customerRegistered struct {
	Name    string `json:"name" pii:"data"`
	Country string `json:"country"`
}

// TestAPI_Event_ErasedSubjectReadsAsErased checks that the event page
// decodes personal data on each request: readable before the subject is
// erased, read as erased (and never the plain text) afterwards, with the
// same console — nothing decoded earlier is served from a cache.
func TestAPI_Event_ErasedSubjectReadsAsErased(t *testing.T) {
	ctx := context.Background()
	j, err := bolt.Open(filepath.Join(t.TempDir(), "orchestrix.db"), bolt.Config{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	keys := pii.NewMemKeyStore()
	codec, err := pii.NewCodec(pii.Config{Keys: keys})
	require.NoError(t, err)
	reg := orchestrix.NewRegistry(orchestrix.WithCodec(codec))
	require.NoError(t, orchestrix.Register[customerRegistered](reg, "crm.CustomerRegistered"))
	require.NoError(t, pii.RegisterEvents(reg))
	e, err := reg.MarshalFor(ctx, "c7", customerRegistered{Name: "Ann Secretname", Country: "NL"})
	require.NoError(t, err)
	e.Source, e.Time, e.Subject = "/test", t0, "c7"
	_, err = j.Append(ctx, "customer-c7", journal.Any, []orchestrix.Envelope{e})
	require.NoError(t, err)
	c, err := console.New(console.Config{Journal: j, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)

	d := decode[console.EventDetail](t, get(t, c, "/api/event?stream=customer-c7&version=1"))
	require.Contains(t, d.Decoded, "Ann Secretname")
	require.NotContains(t, d.Stored, "Ann Secretname", "the stored form is ciphertext")
	require.Contains(t, d.Stored, "enc:v1:")
	require.Empty(t, d.ErasedFields)
	require.False(t, d.SubjectErased)

	eraser := pii.Eraser{Keys: keys, Journal: j, Registry: reg, Clock: func() time.Time { return t0 }}
	_, err = eraser.Erase(ctx, "c7", "ticket 1")
	require.NoError(t, err)

	w := get(t, c, "/api/event?stream=customer-c7&version=1")
	require.NotContains(t, w.Body.String(), "Secretname")
	d = decode[console.EventDetail](t, w)
	require.Contains(t, d.Decoded, `"name": "[erased]"`)
	require.Contains(t, d.Decoded, `"country": "NL"`, "the rest of the event stays readable")
	require.Equal(t, []string{"name"}, d.ErasedFields)
	require.True(t, d.SubjectErased)

	page := get(t, c, "/event?stream=customer-c7&version=1")
	require.Equal(t, 200, page.Code)
	require.NotContains(t, page.Body.String(), "Secretname")
	require.Contains(t, page.Body.String(), `id="erased"`)
	require.Equal(t, 1, strings.Count(page.Body.String(), "[erased]"), "the decoded payload shows the marker once")
}
