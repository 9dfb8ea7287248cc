package orchestrix_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
)

// prefixCodec is a SubjectCodec that stores "<subject>|" before the JSON
// payload and checks it on decode.
type prefixCodec struct{ orchestrix.JSONCodec }

type ctxKey struct{}

func (c prefixCodec) EncodeFor(ctx context.Context, subject string, v any) ([]byte, error) {
	data, err := c.JSONCodec.Encode(v)
	return append([]byte(subject+"|"), data...), err
}

func (c prefixCodec) DecodeFor(ctx context.Context, subject string, data []byte, v any) error {
	if ctx.Value(ctxKey{}) == "poison" {
		return errors.New("context reached DecodeFor")
	}
	rest, ok := bytes.CutPrefix(data, []byte(subject+"|"))
	if !ok {
		return errors.New("payload of another subject")
	}
	return c.JSONCodec.Decode(rest, v)
}

type subjectEvent struct{ N int }

func TestRegistry_MarshalFor_SubjectCodec_EncodesForSubject(t *testing.T) {
	ctx := context.Background()
	r := orchestrix.NewRegistry(orchestrix.WithCodec(prefixCodec{}))
	require.NoError(t, orchestrix.Register[subjectEvent](r, "test.subject"))

	env, err := r.MarshalFor(ctx, "alice", subjectEvent{N: 1})
	require.NoError(t, err)
	require.Equal(t, "alice", env.Subject)
	require.Equal(t, `alice|{"N":1}`, string(env.Data))

	v, err := r.Unmarshal(env)
	require.NoError(t, err)
	require.Equal(t, subjectEvent{N: 1}, v)

	_, err = r.UnmarshalFor(context.WithValue(ctx, ctxKey{}, "poison"), env)
	require.ErrorContains(t, err, "context reached DecodeFor")

	env.Subject = "bob"
	_, err = r.Unmarshal(env)
	require.ErrorIs(t, err, orchestrix.ErrInvalidEnvelope)
}

func TestRegistry_Marshal_SubjectCodec_UsesPlainEncode(t *testing.T) {
	r := orchestrix.NewRegistry(orchestrix.WithCodec(prefixCodec{}))
	require.NoError(t, orchestrix.Register[subjectEvent](r, "test.subject"))
	env, err := r.Marshal(subjectEvent{N: 2})
	require.NoError(t, err)
	require.Equal(t, "", env.Subject)
	require.Equal(t, `{"N":2}`, string(env.Data))
}

func TestRegistry_MarshalFor_PlainCodec_SetsSubject(t *testing.T) {
	r := orchestrix.NewRegistry()
	require.NoError(t, orchestrix.Register[subjectEvent](r, "test.subject"))
	env, err := r.MarshalFor(context.Background(), "alice", subjectEvent{N: 3})
	require.NoError(t, err)
	require.Equal(t, "alice", env.Subject)
	v, err := r.UnmarshalFor(context.Background(), env)
	require.NoError(t, err)
	require.Equal(t, subjectEvent{N: 3}, v)
}
