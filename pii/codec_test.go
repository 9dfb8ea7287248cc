package pii_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/pii"
)

type Address struct {
	Street string `pii:"data"`
	City   string
}

type Line struct {
	SKU  string
	Note string `pii:"data"`
}

type CustomerRegistered struct {
	Name    string   `pii:"data"`
	Email   string   `pii:"data"`
	Photo   []byte   `pii:"data"`
	Phones  []string `pii:"data"`
	Country string
	Address *Address
	Billing Address
	Lines   []Line
	Score   int
}

type OrderPlaced struct {
	OrderID    string
	CustomerID string
	ShipTo     string `pii:"data,subject=CustomerID"`
	Amount     int64
}

type Plain struct {
	A string
	B int
}

type Tree struct {
	Label    string `pii:"data"`
	Children []Tree
}

func newCodec(t *testing.T) (*pii.Codec, *pii.MemKeyStore) {
	t.Helper()
	keys := pii.NewMemKeyStore()
	c, err := pii.NewCodec(pii.Config{Keys: keys})
	require.NoError(t, err)
	return c, keys
}

func sample() CustomerRegistered {
	return CustomerRegistered{
		Name: "Alice Liddell", Email: "alice@example.com", Photo: []byte("JPEG-ALICE"),
		Phones: []string{"+44 1865 000001", "+44 1865 000002"}, Country: "GB",
		Address: &Address{Street: "1 Rabbit Hole", City: "Oxford"},
		Billing: Address{Street: "2 Looking Glass Lane", City: "Oxford"},
		Lines:   []Line{{SKU: "tea", Note: "for the Mad Hatter"}}, Score: 7,
	}
}

var plaintexts = []string{"Alice Liddell", "alice@example.com", "JPEG-ALICE", "+44 1865 000001",
	"1 Rabbit Hole", "Looking Glass", "Mad Hatter"}

func requireNoPlaintext(t *testing.T, data []byte) {
	t.Helper()
	for _, p := range plaintexts {
		require.NotContains(t, string(data), p)
	}
}

func TestCodec_EncodeFor_RoundTrip(t *testing.T) {
	ctx := context.Background()
	c, _ := newCodec(t)
	in := sample()
	data, err := c.EncodeFor(ctx, "alice", in)
	require.NoError(t, err)
	requireNoPlaintext(t, data)
	require.Contains(t, string(data), `"Country":"GB"`)
	require.Contains(t, string(data), `"City":"Oxford"`)
	require.Contains(t, string(data), `"enc:v1:`)

	var out CustomerRegistered
	require.NoError(t, c.DecodeFor(ctx, "alice", data, &out))
	require.Equal(t, in, out)

	// A pointer encodes the same way.
	data2, err := c.EncodeFor(ctx, "alice", &in)
	require.NoError(t, err)
	var out2 CustomerRegistered
	require.NoError(t, c.Decode(data2, &out2))
	require.Equal(t, in, out2)
}

func TestCodec_EncodeFor_LeavesCallerValueAlone(t *testing.T) {
	c, _ := newCodec(t)
	in := sample()
	want := sample()
	_, err := c.EncodeFor(context.Background(), "alice", in)
	require.NoError(t, err)
	require.Equal(t, want, in)
}

func TestCodec_EncodeFor_RandomNonces(t *testing.T) {
	c, _ := newCodec(t)
	a, err := c.EncodeFor(context.Background(), "alice", Address{Street: "x"})
	require.NoError(t, err)
	b, err := c.EncodeFor(context.Background(), "alice", Address{Street: "x"})
	require.NoError(t, err)
	require.NotEqual(t, a, b)
}

func TestCodec_DecodeFor_ErasedSubject_ReadsErasedRestIntact(t *testing.T) {
	ctx := context.Background()
	c, keys := newCodec(t)
	alice, err := c.EncodeFor(ctx, "alice", sample())
	require.NoError(t, err)
	bob, err := c.EncodeFor(ctx, "bob", CustomerRegistered{Name: "Bob", Country: "FR"})
	require.NoError(t, err)

	require.NoError(t, keys.Delete(ctx, "alice"))

	var out CustomerRegistered
	require.NoError(t, c.DecodeFor(ctx, "alice", alice, &out))
	require.Equal(t, CustomerRegistered{
		Name: pii.Erased, Email: pii.Erased, Photo: []byte(pii.Erased),
		Phones: []string{pii.Erased, pii.Erased}, Country: "GB",
		Address: &Address{Street: pii.Erased, City: "Oxford"},
		Billing: Address{Street: pii.Erased, City: "Oxford"},
		Lines:   []Line{{SKU: "tea", Note: pii.Erased}}, Score: 7,
	}, out)
	require.True(t, pii.IsErased(out.Name))
	require.True(t, pii.IsErased(string(out.Photo)))

	var b CustomerRegistered
	require.NoError(t, c.DecodeFor(ctx, "bob", bob, &b))
	require.Equal(t, "Bob", b.Name)

	// Erased values can be encoded again (a recovered state's snapshot),
	// but new personal data for the subject cannot.
	again, err := c.EncodeFor(ctx, "alice", out)
	require.NoError(t, err)
	require.NotContains(t, string(again), "enc:v1:")
	_, err = c.EncodeFor(ctx, "alice", CustomerRegistered{Name: "Alice again"})
	require.ErrorIs(t, err, pii.ErrErased)
}

func TestCodec_SubjectField_UsesNamedSubject(t *testing.T) {
	ctx := context.Background()
	c, keys := newCodec(t)
	in := OrderPlaced{OrderID: "o-1", CustomerID: "alice", ShipTo: "1 Rabbit Hole", Amount: 12}
	// No envelope subject needed: the field names it.
	data, err := c.Encode(in)
	require.NoError(t, err)
	requireNoPlaintext(t, data)
	var out OrderPlaced
	require.NoError(t, c.Decode(data, &out))
	require.Equal(t, in, out)

	// Erasing the order's aggregate id does nothing; erasing the customer does.
	require.NoError(t, keys.Delete(ctx, "o-1"))
	require.NoError(t, c.DecodeFor(ctx, "o-1", data, &out))
	require.Equal(t, "1 Rabbit Hole", out.ShipTo)
	require.NoError(t, keys.Delete(ctx, "alice"))
	require.NoError(t, c.DecodeFor(ctx, "o-1", data, &out))
	require.Equal(t, OrderPlaced{OrderID: "o-1", CustomerID: "alice", ShipTo: pii.Erased, Amount: 12}, out)

	_, err = c.Encode(OrderPlaced{ShipTo: "somewhere"})
	require.ErrorIs(t, err, pii.ErrNoSubject)
}

func TestCodec_Encode_NoSubject_Refused(t *testing.T) {
	c, _ := newCodec(t)
	_, err := c.Encode(sample())
	require.ErrorIs(t, err, pii.ErrNoSubject)
	// Nothing personal to encrypt: no subject needed.
	_, err = c.Encode(CustomerRegistered{Country: "GB"})
	require.NoError(t, err)
}

func TestCodec_EncodeFor_UntaggedType_SameAsWrappedCodec(t *testing.T) {
	c, keys := newCodec(t)
	data, err := c.EncodeFor(context.Background(), "alice", Plain{A: "x", B: 1})
	require.NoError(t, err)
	want, _ := json.Marshal(Plain{A: "x", B: 1})
	require.Equal(t, want, data)
	_, err = keys.Get(context.Background(), "any")
	require.ErrorIs(t, err, pii.ErrUnknownKey) // and no key was created
	_, err = c.EncodeFor(context.Background(), "alice", map[string]int{"a": 1})
	require.NoError(t, err)
}

func TestCodec_RecursiveType_RoundTrip(t *testing.T) {
	c, _ := newCodec(t)
	in := Tree{Label: "root secret", Children: []Tree{{Label: "leaf secret"}}}
	data, err := c.EncodeFor(context.Background(), "alice", in)
	require.NoError(t, err)
	require.NotContains(t, string(data), "secret")
	var out Tree
	require.NoError(t, c.Decode(data, &out))
	require.Equal(t, in, out)
}

func TestCodec_DecodeFor_PlaintextAndEmpty_PassThrough(t *testing.T) {
	c, _ := newCodec(t)
	var out Address
	require.NoError(t, c.Decode([]byte(`{"Street":"legacy plain","City":"X"}`), &out))
	require.Equal(t, Address{Street: "legacy plain", City: "X"}, out)
	data, err := c.Encode(Address{City: "Y"}) // empty personal field: no subject needed
	require.NoError(t, err)
	require.JSONEq(t, `{"Street":"","City":"Y"}`, string(data))
}

func TestCodec_DecodeFor_Corrupt_ErrCorrupt(t *testing.T) {
	ctx := context.Background()
	c, _ := newCodec(t)
	data, err := c.EncodeFor(ctx, "alice", Address{Street: "1 Rabbit Hole"})
	require.NoError(t, err)
	var enc struct{ Street string }
	require.NoError(t, json.Unmarshal(data, &enc))
	token := enc.Street
	id := strings.Split(token, ":")[2]
	flipped := []byte(token)
	last := len(flipped) - 2
	flipped[last] = map[bool]byte{true: 'A', false: 'B'}[flipped[last] != 'A']

	other, _ := newCodec(t) // a key store that never issued the key
	cases := map[string]struct {
		codec *pii.Codec
		token string
		want  error
	}{
		"flipped ciphertext": {c, string(flipped), pii.ErrCorruptField},
		"truncated":          {c, token[:len(token)-10], pii.ErrCorruptField},
		"no key id":          {c, "enc:v1:", pii.ErrCorruptField},
		"bad key id":         {c, "enc:v1:a/b:AAAA", pii.ErrCorruptField},
		"not base64":         {c, "enc:v1:" + id + ":***", pii.ErrCorruptField},
		"empty ciphertext":   {c, "enc:v1:" + id + ":", pii.ErrCorruptField},
		"unknown key":        {other, token, pii.ErrUnknownKey},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			payload, _ := json.Marshal(map[string]string{"Street": tc.token})
			var out Address
			err := tc.codec.Decode(payload, &out)
			require.ErrorIs(t, err, tc.want)
			require.ErrorIs(t, err, orchestrix.ErrCorrupt)
		})
	}
}

type badKind struct {
	N int `pii:"data"`
}
type badOption struct {
	S string `pii:"data,secret"`
}
type badSubject struct {
	S string `pii:"data,subject=Missing"`
}
type piiSubject struct {
	ID string `pii:"data"`
	S  string `pii:"data,subject=ID"`
}
type inMap struct {
	M map[string]Address
}
type badTag struct {
	S string `pii:"yes"`
}

func TestCodec_UnsupportedTags_ErrUnsupportedField(t *testing.T) {
	c, _ := newCodec(t)
	for _, v := range []any{badKind{N: 1}, badOption{S: "x"}, badSubject{S: "x"}, piiSubject{S: "x"}, inMap{}, badTag{}} {
		_, err := c.EncodeFor(context.Background(), "alice", v)
		require.ErrorIs(t, err, pii.ErrUnsupportedField, "%T", v)
		err = c.Decode([]byte(`{}`), &v)
		require.NoError(t, err) // decoding into *any has no plan
	}
	var bk badKind
	require.ErrorIs(t, c.Decode([]byte(`{"N":1}`), &bk), pii.ErrUnsupportedField)
}

func TestNewCodec_BadConfig_Error(t *testing.T) {
	_, err := pii.NewCodec(pii.Config{})
	require.Error(t, err)
	c, _ := newCodec(t)
	_, err = pii.NewCodec(pii.Config{Keys: pii.NewMemKeyStore(), Codec: c})
	require.Error(t, err)
}

func TestRegistry_WithCodec_MarshalForAndUnmarshal(t *testing.T) {
	ctx := context.Background()
	c, keys := newCodec(t)
	reg := orchestrix.NewRegistry(orchestrix.WithCodec(c))
	require.NoError(t, orchestrix.Register[CustomerRegistered](reg, "test.customer.registered"))

	env, err := reg.MarshalFor(ctx, "alice", sample())
	require.NoError(t, err)
	require.Equal(t, "alice", env.Subject)
	require.Equal(t, "application/json", env.DataContentType)
	requireNoPlaintext(t, env.Data)
	env.Source = "/test"
	bin, err := env.MarshalBinary()
	require.NoError(t, err)
	requireNoPlaintext(t, bin)

	v, err := reg.Unmarshal(env)
	require.NoError(t, err)
	require.Equal(t, sample(), v)

	_, err = reg.Marshal(sample())
	require.ErrorIs(t, err, pii.ErrNoSubject)

	require.NoError(t, keys.Delete(ctx, "alice"))
	v, err = reg.UnmarshalFor(ctx, env)
	require.NoError(t, err)
	require.Equal(t, pii.Erased, v.(CustomerRegistered).Name)
	require.Equal(t, "GB", v.(CustomerRegistered).Country)

	// A damaged field is an error matching ErrCorrupt and ErrInvalidEnvelope.
	env.Data = bytes.Replace(env.Data, []byte("enc:v1:"), []byte("enc:v1:zz"), 1)
	_, err = reg.Unmarshal(env)
	require.True(t, errors.Is(err, orchestrix.ErrCorrupt) && errors.Is(err, orchestrix.ErrInvalidEnvelope), "%v", err)
}
