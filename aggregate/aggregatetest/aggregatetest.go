// Package aggregatetest tests aggregate definitions with given / when / then
// scenarios, without actors or storage:
//
//	aggregatetest.New(t, bank.Accounts).
//		Given(bank.Opened{Owner: "ada"}, bank.Deposited{Amount: 50}).
//		When(bank.Withdraw{Amount: 80}).
//		ThenError(bank.ErrInsufficientFunds)
//
// Failures are reported through testing.TB with a readable diff of expected
// and actual events or state. Every event given or produced must be declared
// in the definition's Events, so a forgotten registration fails the test
// instead of failing at run time.
//
// CheckSerialization is the one-liner that proves a definition's commands,
// events and state survive the configured codec and the binary envelope:
//
//	func TestAccountsSerialize(t *testing.T) { aggregatetest.CheckSerialization(t, bank.Accounts) }
//
// To run commands through the real actor runtime (journal, snapshots,
// recovery), use actortest.NewHarness, which runs CheckSerialization too.
package aggregatetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/aggexec"
)

// DefaultID is the aggregate id scenarios use unless ForID sets another.
const DefaultID = "test-1"

// Scenario is the "given" part of a test: a definition, an aggregate id and
// the events already in its stream.
type Scenario[S, C, E any] struct {
	t     testing.TB
	def   aggexec.Def[S, C, E]
	id    string
	given []E
}

// New starts a scenario for def. It fails t at once when def is invalid.
func New[S, C, E any](t testing.TB, def aggregate.Definition[S, C, E]) *Scenario[S, C, E] {
	t.Helper()
	if err := def.Validate(); err != nil {
		t.Errorf("aggregatetest: %v", err)
	}
	return &Scenario[S, C, E]{t: t, def: aggexec.Of(def), id: DefaultID}
}

// ForID sets the aggregate id passed to Initial (DefaultID otherwise).
func (s *Scenario[S, C, E]) ForID(id string) *Scenario[S, C, E] {
	s.id = id
	return s
}

// Given appends events to the aggregate's history.
func (s *Scenario[S, C, E]) Given(events ...E) *Scenario[S, C, E] {
	s.t.Helper()
	for _, e := range events {
		s.checkDeclared("given", e)
	}
	s.given = append(s.given, events...)
	return s
}

// State returns the state after the given events; it fails the test when
// Initial or Evolve panics.
func (s *Scenario[S, C, E]) State() S {
	s.t.Helper()
	state, err := s.given0()
	if err != nil {
		s.t.Errorf("aggregatetest: %v", err)
	}
	return state
}

func (s *Scenario[S, C, E]) given0() (S, error) {
	state, err := s.def.InitialState(s.id)
	if err != nil {
		return state, err
	}
	return s.def.Fold(state, s.given...)
}

// When decides cmd against the state the given events produce.
func (s *Scenario[S, C, E]) When(cmd C) *Outcome[S, C, E] {
	s.t.Helper()
	o := &Outcome[S, C, E]{s: s, cmd: cmd}
	state, err := s.given0()
	if err != nil {
		o.setupErr = err
		s.t.Errorf("aggregatetest: replaying given events: %v", err)
		return o
	}
	o.before = state
	o.state, o.events, o.err = s.def.Execute(state, cmd)
	for _, e := range o.events {
		s.checkDeclared("produced", e)
	}
	return o
}

func (s *Scenario[S, C, E]) checkDeclared(what string, e E) {
	s.t.Helper()
	if len(s.def.Events) == 0 {
		s.t.Errorf("aggregatetest: %s event %T: definition %q declares no Events", what, any(e), s.def.Kind)
		return
	}
	rt := reflect.TypeOf(any(e))
	for _, et := range s.def.Events {
		if et.GoType() == rt {
			return
		}
	}
	s.t.Errorf("aggregatetest: %s event of type %v is not declared in the Events of definition %q", what, rt, s.def.Kind)
}

// Outcome is the result of When, to be checked with the Then methods. Each
// Then method reports failures on the scenario's testing.TB and returns the
// outcome so checks can be chained.
type Outcome[S, C, E any] struct {
	s        *Scenario[S, C, E]
	cmd      C
	before   S
	state    S
	events   []E
	err      error
	setupErr error
}

// Events returns the events Decide produced.
func (o *Outcome[S, C, E]) Events() []E { return o.events }

// Err returns the error of the command: a *aggregate.RejectedError wrapping
// Decide's error, a *aggregate.PanicError, or nil.
func (o *Outcome[S, C, E]) Err() error { return o.err }

// State returns the state after the produced events (the given state when
// the command failed).
func (o *Outcome[S, C, E]) State() S { return o.state }

// Then checks that the command succeeded and produced exactly want, in
// order.
func (o *Outcome[S, C, E]) Then(want ...E) *Outcome[S, C, E] {
	o.s.t.Helper()
	if o.setupErr != nil {
		return o
	}
	if o.err != nil {
		o.s.t.Errorf("aggregatetest: command %T failed, want events %s: %v", any(o.cmd), describe(want), o.err)
		return o
	}
	if len(want) == 0 {
		want = nil
	}
	got := o.events
	if len(got) == 0 {
		got = nil
	}
	assert.Equal(o.s.t, want, got, "events produced by command %T", any(o.cmd))
	return o
}

// ThenNoEvents checks that the command succeeded without producing events.
func (o *Outcome[S, C, E]) ThenNoEvents() *Outcome[S, C, E] {
	o.s.t.Helper()
	return o.Then()
}

// ThenError checks that the command failed with an error matching target
// (errors.Is). Use a domain error returned by Decide, aggregate.ErrRejected
// for any rejection, or aggregate.ErrPanicked.
func (o *Outcome[S, C, E]) ThenError(target error) *Outcome[S, C, E] {
	o.s.t.Helper()
	if o.setupErr != nil {
		return o
	}
	if o.err == nil {
		o.s.t.Errorf("aggregatetest: command %T succeeded with events %s, want error %v", any(o.cmd), describe(o.events), target)
		return o
	}
	if !errors.Is(o.err, target) {
		o.s.t.Errorf("aggregatetest: command %T failed with %v, want an error matching %v", any(o.cmd), o.err, target)
	}
	return o
}

// ThenState checks the state after the command (the unchanged state when it
// failed).
func (o *Outcome[S, C, E]) ThenState(want S) *Outcome[S, C, E] {
	o.s.t.Helper()
	if o.setupErr != nil {
		return o
	}
	assert.Equal(o.s.t, want, o.state, "state after command %T", any(o.cmd))
	return o
}

func describe[E any](events []E) string {
	if len(events) == 0 {
		return "[]"
	}
	out := "["
	for i, e := range events {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%T%+v", any(e), any(e))
	}
	return out + "]"
}
