package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/pii"
	"github.com/orchestrix/orchestrix/projection/projectiontest"
)

// The erasure on the test kit, without files or a story to parse: the
// customer aggregate runs on the kit's runtime with the pii codec, an
// event probe shows what was persisted, the directory projection runs on
// the same journal and clock, and a restart shows what recovery sees.
func TestErasure_OnTheKit_ReachesStateProbeAndReadModel(t *testing.T) {
	keys := pii.NewMemKeyStore()
	codec, err := pii.NewCodec(pii.Config{Keys: keys})
	require.NoError(t, err)
	reg := orchestrix.NewRegistry(orchestrix.WithCodec(codec))
	require.NoError(t, pii.RegisterEvents(reg))
	h := actortest.NewHarness(t, Customers, actortest.WithConfig(func(c *actor.Config) { c.Registry = reg }))
	env := h.Env()
	probe := h.EventProbe()

	require.NoError(t, h.Run("alice", RegisterCustomer{Name: "Alice Liddell", Email: "alice@wonderland.example", Country: "GB"}).Err)
	require.NoError(t, h.Run("bob", RegisterCustomer{Name: "Bob Marley", Email: "bob@trenchtown.example", Country: "JM"}).Err)
	out := h.Run("alice", ChangeEmail{Email: "alice@looking-glass.example"})
	require.NoError(t, out.Err)
	require.Equal(t, Customer{Name: "Alice Liddell", Email: "alice@looking-glass.example", Country: "GB"}, out.State)

	// Persisted encrypted, read back in the clear while the key exists.
	reg1, rec := actortest.ExpectPersisted[CustomerRegistered](probe, "alice")
	require.Equal(t, "Alice Liddell", reg1.Name)
	require.NotContains(t, string(rec.Envelope.Data), "Alice Liddell")
	actortest.ExpectPersisted[CustomerRegistered](probe, "bob")
	actortest.ExpectPersisted[EmailChanged](probe, "alice")
	probe.ExpectNothingPersisted(0)

	dir := NewDirectory()
	k := projectiontest.New(t, reg, projectiontest.WithEnv(env))
	k.Run(dir.Projection())
	require.Equal(t, "alice@looking-glass.example", customer(dir, "alice").Email)

	erasures := env.EventProbe(t, actortest.ProbeStream(pii.ErasureStream("alice")))
	eraser := &pii.Eraser{Keys: keys, Journal: env.Log, Registry: reg}
	_, err = eraser.Erase(context.Background(), "alice", "GDPR art. 17 request #1")
	require.NoError(t, err)
	erased, _ := actortest.ExpectPersisted[pii.SubjectErased](erasures, "")
	require.Equal(t, pii.SubjectErased{Subject: "alice", Reason: "GDPR art. 17 request #1"}, erased)
	require.ErrorIs(t, h.Run("alice", ChangeEmail{Email: "alice@new.example"}).Err, pii.ErrErased)
	probe.ExpectNothingPersisted(0)

	// The rebuilt read model and a recovered aggregate see only what the
	// erasure left; bob is untouched.
	require.NoError(t, k.Manager.Rebuild(context.Background(), "directory"))
	k.ExpectCaughtUp("directory")
	require.Equal(t, CustomerRegistered{Name: "[erased]", Email: "[erased]", Country: "GB"}, customer(dir, "alice"))
	require.Equal(t, "Bob Marley", customer(dir, "bob").Name)
	h.Restart()
	alice, _ := h.State("alice")
	require.Equal(t, Customer{Name: "[erased]", Email: "[erased]", Country: "GB"}, alice)
	h.ExpectRecovers("bob")
}

func customer(d *Directory, id string) CustomerRegistered {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.customers[id]
}
