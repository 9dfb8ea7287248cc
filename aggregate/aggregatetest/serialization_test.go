package aggregatetest_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/aggregate/aggregatetest"
	"github.com/orchestrix/orchestrix/internal/banktest"
)

// A small definition whose types can be made to break serialization.
type (
	noteState struct {
		Notes []string
		Seen  map[string]int
		At    time.Time
	}
	noteCmd    interface{ isNoteCmd() }
	addNote    struct{ Text string }
	noteEvt    interface{ isNoteEvt() }
	noteAdded  struct{ Text string }
	noteHidden struct {
		Text string
		//lint:ignore U1000 the unexported field is what the check must catch
		secret string
	}
	noteRated struct{ Score float64 }
	noteTimed struct{ At time.Time }
	noteAny   struct{ Detail any }
)

func (addNote) isNoteCmd()    {}
func (noteAdded) isNoteEvt()  {}
func (noteHidden) isNoteEvt() {}
func (noteRated) isNoteEvt()  {}
func (noteTimed) isNoteEvt()  {}
func (noteAny) isNoteEvt()    {}

type detail struct{ Code int }

func notes(events ...aggregate.EventType) aggregate.Definition[noteState, noteCmd, noteEvt] {
	return aggregate.Definition[noteState, noteCmd, noteEvt]{
		Kind:     "note",
		Initial:  func(string) noteState { return noteState{} },
		Decide:   func(noteState, noteCmd) ([]noteEvt, error) { return nil, nil },
		Evolve:   func(s noteState, _ noteEvt) noteState { return s },
		Events:   append([]aggregate.EventType{aggregate.Event[noteAdded]("note.added")}, events...),
		Commands: []aggregate.CommandType{aggregate.CommandOf[addNote]("note.add")},
	}
}

func serializationErrors(t *testing.T, err error) []*aggregatetest.SerializationError {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, aggregatetest.ErrNotSerializable)
	var out []*aggregatetest.SerializationError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var se *aggregatetest.SerializationError
		require.True(t, errors.As(e, &se), "%v", e)
		out = append(out, se)
	}
	return out
}

func TestVerifySerialization_SoundDefinitions_Pass(t *testing.T) {
	require.NoError(t, aggregatetest.VerifySerialization(notes()))
	def := banktest.Accounts()
	def.Commands = []aggregate.CommandType{aggregate.CommandOf[banktest.Deposit]("bank.deposit")}
	require.NoError(t, aggregatetest.VerifySerialization(def))
	aggregatetest.CheckSerialization(t, def, aggregatetest.WithSamples(banktest.Account{ID: "a", Owner: "ada", Open: true, Balance: -3}))
}

func TestVerifySerialization_UnexportedField_NamesTypeAndField(t *testing.T) {
	errs := serializationErrors(t, aggregatetest.VerifySerialization(notes(aggregate.Event[noteHidden]("note.hidden"))))
	require.Len(t, errs, 1)
	assert.Equal(t, "event", errs[0].Role)
	assert.Equal(t, "note.hidden", errs[0].Name)
	assert.Contains(t, errs[0].Reason, "field secret (unexported")
	assert.Contains(t, errs[0].Error(), "aggregatetest_test.noteHidden")
}

func TestVerifySerialization_NaN_NamesField(t *testing.T) {
	def := notes(aggregate.Event[noteRated]("note.rated"))
	require.NoError(t, aggregatetest.VerifySerialization(def))
	errs := serializationErrors(t, aggregatetest.VerifySerialization(def, aggregatetest.WithSamples(noteRated{Score: math.NaN()})))
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Reason, "field Score is NaN")
}

func TestVerifySerialization_TimeZone_IsLossy(t *testing.T) {
	def := notes(aggregate.Event[noteTimed]("note.timed"))
	zone := time.FixedZone("CET", 3600)
	errs := serializationErrors(t, aggregatetest.VerifySerialization(def, aggregatetest.WithSamples(noteTimed{At: time.Date(2026, 3, 1, 10, 0, 0, 0, zone)})))
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Reason, `field At: time zone "CET"`)
	// The same instant in UTC survives.
	require.NoError(t, aggregatetest.VerifySerialization(def, aggregatetest.WithSamples(noteTimed{At: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)})))
}

func TestVerifySerialization_InterfaceField_NamesConcreteType(t *testing.T) {
	def := notes(aggregate.Event[noteAny]("note.any"))
	errs := serializationErrors(t, aggregatetest.VerifySerialization(def, aggregatetest.WithSamples(noteAny{Detail: detail{Code: 4}})))
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Reason, "field Detail (interface interface {}): a aggregatetest_test.detail came back as a map[string]interface {}")
}

func TestVerifySerialization_CommandAndState_Checked(t *testing.T) {
	def := notes()
	def.EncodeState = func(s noteState) ([]byte, error) { return []byte(strings.Join(s.Notes, ",")), nil }
	def.DecodeState = func(b []byte) (noteState, error) { return noteState{Notes: strings.Split(string(b), ",")}, nil }
	errs := serializationErrors(t, aggregatetest.VerifySerialization(def))
	require.NotEmpty(t, errs)
	assert.Equal(t, "state", errs[0].Role)
	assert.Contains(t, errs[0].Reason, "field Seen: 1 entries became 0")
}

func TestVerifySerialization_SampleOfForeignType_Reported(t *testing.T) {
	err := aggregatetest.VerifySerialization(notes(), aggregatetest.WithSamples(banktest.Opened{}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "neither the state nor a listed command or event type")
}

func TestVerifySerialization_UsesConfiguredRegistry(t *testing.T) {
	reg := orchestrix.NewRegistry(orchestrix.WithCodec(dropCodec{}))
	errs := serializationErrors(t, aggregatetest.VerifySerialization(notes(), aggregatetest.WithRegistry(reg)))
	// The command and the event lose their Text through the lossy codec.
	require.Len(t, errs, 2)
	assert.Equal(t, "command", errs[0].Role)
	assert.Contains(t, errs[0].Reason, `field Text: "sample-1" became ""`)
}

func TestCheckSerialization_ReportsThroughT(t *testing.T) {
	r := &recorder{TB: t}
	aggregatetest.CheckSerialization(r, notes(aggregate.Event[noteHidden]("note.hidden")))
	require.Len(t, r.failures, 1)
	assert.Contains(t, r.all(), "secret")
}

// dropCodec forgets every payload.
type dropCodec struct{}

func (dropCodec) Encode(any) ([]byte, error) { return []byte("{}"), nil }
func (dropCodec) Decode([]byte, any) error   { return nil }
func (dropCodec) ContentType() string        { return "application/json" }
