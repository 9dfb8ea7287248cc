package sagatest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/kittest"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
	"github.com/orchestrix/orchestrix/saga/sagatest"
)

type Transfer struct {
	From, To string
	Amount   int64
}

type accounts = actor.Handle[banktest.Account, banktest.Command, banktest.Event]

func transferSaga(h *accounts, opts ...saga.StepOption) *saga.Orchestration[Transfer] {
	return saga.New[Transfer]("transfer").
		Step("debit",
			saga.Command(h, func(t Transfer) (string, banktest.Command) { return t.From, banktest.Withdraw{Amount: t.Amount} }),
			saga.Command(h, func(t Transfer) (string, banktest.Command) { return t.From, banktest.Deposit{Amount: t.Amount} })).
		Step("credit",
			saga.Command(h, func(t Transfer) (string, banktest.Command) { return t.To, banktest.Deposit{Amount: t.Amount} }), nil, opts...)
}

func TestKit_Fake_AnswersWithoutRunningTheAggregate(t *testing.T) {
	k := sagatest.New(t)
	h := sagatest.Fake(k, banktest.Accounts())
	transfers := sagatest.Register(k, transferSaga(h))
	probe := k.Env.EventProbe(t, actortest.ProbeKind("account"))

	// Neither account is open: a real aggregate would refuse the debit.
	sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 5})
	debit, s1 := sagatest.ExpectSent[banktest.Withdraw](k, "account", "alice")
	credit, s2 := sagatest.ExpectSent[banktest.Deposit](k, "account", "bob")
	st := sagatest.ExpectFinished(k, transfers, "t1", saga.StateCompleted)
	k.ExpectNothingSent()

	require.Equal(t, banktest.Withdraw{Amount: 5}, debit)
	require.Equal(t, banktest.Deposit{Amount: 5}, credit)
	require.Equal(t, sagatest.Sent{
		Kind: "account", AggregateID: "alice", Command: debit, ID: s1.ID, CorrelationID: "t1",
		Saga: "transfer", SagaID: "t1", Step: "debit", Attempt: 1, Answer: sagatest.Accepted,
	}, s1)
	require.Equal(t, "credit", s2.Step)
	require.NotEqual(t, s1.ID, s2.ID)
	require.Equal(t, []string{"debit", "credit"}, st.Done)
	probe.ExpectNothingPersisted(0)
}

func TestKit_Real_RunsTheAggregateAndRulesStillApply(t *testing.T) {
	k := sagatest.New(t)
	h := sagatest.Real(k, banktest.Accounts())
	ctx := context.Background()
	for _, id := range []string{"alice", "bob"} {
		_, err := h.Send(ctx, id, banktest.OpenAccount{Owner: id})
		require.NoError(t, err)
	}
	_, err := h.Send(ctx, "alice", banktest.Deposit{Amount: 10})
	require.NoError(t, err)
	k.Reject(sagatest.Step("credit"), errors.New("bob's account is frozen"))
	transfers := sagatest.Register(k, transferSaga(h))
	probe := k.Env.EventProbe(t, actortest.ProbeKind("account"))

	sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 4})
	st := sagatest.ExpectFinished(k, transfers, "t1", saga.StateCompensated)
	require.Equal(t, "credit", st.Failure.Step)
	require.Contains(t, st.Failure.Reason, "bob's account is frozen")

	// The test's own commands (open, deposit) are not the kit's business.
	_, debit := sagatest.ExpectSent[banktest.Withdraw](k, "account", "alice")
	_, credit := sagatest.ExpectSent[banktest.Deposit](k, "account", "bob")
	_, refund := sagatest.ExpectSent[banktest.Deposit](k, "account", "alice")
	k.ExpectNothingSent()
	require.Equal(t, sagatest.Passed, debit.Answer)
	require.Equal(t, sagatest.Rejected, credit.Answer)
	require.True(t, refund.Compensating)

	// The real aggregate ran the debit and the refund, never the credit.
	w, _ := actortest.ExpectPersisted[banktest.Withdrawn](probe, "alice")
	require.Equal(t, int64(4), w.Amount)
	d, _ := actortest.ExpectPersisted[banktest.Deposited](probe, "alice")
	require.Equal(t, int64(4), d.Amount)
	probe.ExpectNothingPersisted(0)
	bob, _, err := h.State(ctx, "bob")
	require.NoError(t, err)
	require.Zero(t, bob.Balance)
}

func TestKit_Fail_RetriesWithTheSameIDUntilTheAttemptsRunOut(t *testing.T) {
	k := sagatest.New(t, sagatest.WithRetry(projection.Retry{MaxAttempts: 3, InitialBackoff: time.Second}))
	h := sagatest.Fake(k, banktest.Accounts())
	transfers := sagatest.Register(k, transferSaga(h))
	k.Fail(sagatest.Step("credit"), 5)

	start := k.Clock.Now()
	sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 1})
	sagatest.ExpectSent[banktest.Withdraw](k, "account", "alice")
	var ids []string
	for attempt := 1; attempt <= 3; attempt++ {
		_, s := sagatest.ExpectSent[banktest.Deposit](k, "account", "bob")
		require.Equal(t, attempt, s.Attempt)
		require.Equal(t, sagatest.Failed, s.Answer)
		ids = append(ids, s.ID)
		if attempt < 3 {
			k.ExpectRetry(attempt)
		}
	}
	_, refund := sagatest.ExpectSent[banktest.Deposit](k, "account", "alice")
	st := sagatest.ExpectFinished(k, transfers, "t1", saga.StateCompensated)
	k.ExpectNothingSent()

	require.Equal(t, []string{ids[0], ids[0], ids[0]}, ids, "every attempt carries the step's command id")
	require.NotEqual(t, ids[0], refund.ID)
	require.Contains(t, st.Failure.Reason, "gave up after 3 attempts")
	require.Contains(t, st.Failure.Reason, sagatest.ErrInjected.Error())
	require.Equal(t, 3*time.Second, k.Clock.Now().Sub(start), "1 s then 2 s of backoff, on the manual clock")
}

func TestKit_Hang_TimesOutOnTheAttemptTimeoutAndRetries(t *testing.T) {
	k := sagatest.New(t, sagatest.WithConfig(func(c *saga.Config) { c.AttemptTimeout = time.Minute }))
	h := sagatest.Fake(k, banktest.Accounts())
	transfers := sagatest.Register(k, transferSaga(h))
	k.Hang(sagatest.All(sagatest.Step("credit"), func(s sagatest.Sent) bool { return s.Attempt == 1 }))

	sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 1})
	sagatest.ExpectSent[banktest.Withdraw](k, "account", "alice")
	_, hung := sagatest.ExpectSent[banktest.Deposit](k, "account", "bob")
	require.Equal(t, sagatest.Hung, hung.Answer)
	k.Clock.Advance(time.Minute) // the attempt timeout, armed before the command was sent
	k.ExpectRetry(1)
	_, again := sagatest.ExpectSent[banktest.Deposit](k, "account", "bob")
	sagatest.ExpectFinished(k, transfers, "t1", saga.StateCompleted)
	k.ExpectNothingSent()
	require.Equal(t, 2, again.Attempt)
	require.Equal(t, sagatest.Accepted, again.Answer)
	require.Equal(t, hung.ID, again.ID)
}

func TestKit_Deadline_CompensatesInReverseOrder(t *testing.T) {
	k := sagatest.New(t)
	h := sagatest.Fake(k, banktest.Accounts())
	o := saga.New[Transfer]("three").
		Step("a", saga.Command(h, func(Transfer) (string, banktest.Command) { return "a", banktest.Withdraw{Amount: 1} }),
			saga.Command(h, func(Transfer) (string, banktest.Command) { return "a", banktest.Deposit{Amount: 1} })).
		Step("b", saga.Command(h, func(Transfer) (string, banktest.Command) { return "b", banktest.Withdraw{Amount: 2} }),
			saga.Command(h, func(Transfer) (string, banktest.Command) { return "b", banktest.Deposit{Amount: 2} })).
		Step("c", saga.Command(h, func(Transfer) (string, banktest.Command) { return "c", banktest.Withdraw{Amount: 3} }), nil).
		Deadline(time.Hour)
	s := sagatest.Register(k, o)
	k.Hang(sagatest.Step("c"))

	sagatest.Begin(k, s, "x", Transfer{})
	for _, id := range []string{"a", "b", "c"} {
		sagatest.ExpectSent[banktest.Withdraw](k, "account", id)
	}
	k.Clock.Advance(time.Hour)
	_, undoB := sagatest.ExpectSent[banktest.Deposit](k, "account", "b")
	_, undoA := sagatest.ExpectSent[banktest.Deposit](k, "account", "a")
	st := sagatest.ExpectFinished(k, s, "x", saga.StateCompensated)
	k.ExpectNothingSent()
	require.True(t, undoB.Compensating && undoA.Compensating)
	require.Equal(t, []string{"b", "a"}, st.Undone)
	require.True(t, st.Failure.TimedOut)
}

func TestKit_RejectedCompensation_EndsFailed(t *testing.T) {
	k := sagatest.New(t)
	h := sagatest.Fake(k, banktest.Accounts())
	transfers := sagatest.Register(k, transferSaga(h))
	k.Reject(sagatest.Step("credit"), banktest.ErrNotOpen)
	k.Reject(sagatest.Compensation("debit"), banktest.ErrNotOpen)

	sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 1})
	st := sagatest.ExpectFinished(k, transfers, "t1", saga.StateFailed)
	require.Equal(t, "debit", st.CompensationFailure.Step)
	require.Len(t, k.Sent(), 3)
}

// Every expectation fails when the saga does something else.

func TestExpectSent_FailsOnAnotherCommandType(t *testing.T) {
	kittest.ExpectFatal(t, "want a banktest.Deposit", func(ft testing.TB) {
		k := sagatest.New(ft)
		transfers := sagatest.Register(k, transferSaga(sagatest.Fake(k, banktest.Accounts())))
		sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 1})
		sagatest.ExpectSent[banktest.Deposit](k, "account", "alice") // the saga withdraws first
	})
}

func TestExpectSent_FailsOnAnotherTarget(t *testing.T) {
	kittest.ExpectFatal(t, "want one to account/carol", func(ft testing.TB) {
		k := sagatest.New(ft)
		transfers := sagatest.Register(k, transferSaga(sagatest.Fake(k, banktest.Accounts())))
		sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 1})
		sagatest.ExpectSent[banktest.Withdraw](k, "account", "alice")
		sagatest.ExpectSent[banktest.Deposit](k, "account", "carol")
	})
}

func TestExpectSent_FailsWhenNothingIsSent(t *testing.T) {
	if testing.Short() {
		t.Skip("waits sagatest.WaitTimeout of wall-clock time")
	}
	kittest.ExpectFatal(t, "no command sent within", func(ft testing.TB) {
		k := sagatest.New(ft)
		sagatest.Register(k, transferSaga(sagatest.Fake(k, banktest.Accounts())))
		sagatest.ExpectSent[banktest.Withdraw](k, "account", "alice")
	})
}

func TestExpectNothingSent_FailsOnACommandNotTaken(t *testing.T) {
	kittest.ExpectFatal(t, "1 unexpected command(s) sent:\n  banktest.Deposit to account/bob", func(ft testing.TB) {
		k := sagatest.New(ft)
		transfers := sagatest.Register(k, transferSaga(sagatest.Fake(k, banktest.Accounts())))
		sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 1})
		sagatest.ExpectFinished(k, transfers, "t1", saga.StateCompleted)
		sagatest.ExpectSent[banktest.Withdraw](k, "account", "alice")
		k.ExpectNothingSent() // the credit was sent too
	})
}

func TestExpectFinished_FailsOnAnotherFinalState(t *testing.T) {
	kittest.ExpectFatal(t, `ended compensated, want completed (done [debit], undone [debit]; step "credit" failed`, func(ft testing.TB) {
		k := sagatest.New(ft)
		transfers := sagatest.Register(k, transferSaga(sagatest.Fake(k, banktest.Accounts())))
		k.Reject(sagatest.Step("credit"), banktest.ErrNotOpen)
		sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 1})
		sagatest.ExpectFinished(k, transfers, "t1", saga.StateCompleted)
	})
}

func TestRules_SelectOnlyWhatTheyMatch(t *testing.T) {
	// A Reject for the compensation must not touch the action of the
	// same step: the saga completes.
	k := sagatest.New(t)
	transfers := sagatest.Register(k, transferSaga(sagatest.Fake(k, banktest.Accounts())))
	k.Reject(sagatest.Compensation("debit"), banktest.ErrNotOpen)
	k.Reject(sagatest.To("account", "carol"), banktest.ErrNotOpen)
	k.Reject(sagatest.All(sagatest.Step("debit"), sagatest.CommandOf[banktest.Deposit]()), banktest.ErrNotOpen)
	sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 1})
	sagatest.ExpectFinished(k, transfers, "t1", saga.StateCompleted)
	for _, s := range k.Sent() {
		require.Equal(t, sagatest.Accepted, s.Answer, s.String())
	}
}

func TestNew_TwoKitsOnOneSystemIsAnError(t *testing.T) {
	env := actortest.NewSystem(t)
	sagatest.New(t, sagatest.WithEnv(env))
	kittest.ExpectFatal(t, "a command tap is already attached", func(ft testing.TB) {
		sagatest.New(ft, sagatest.WithEnv(env))
	})
}

// A process manager: reminders are sent when a payment is late.

type Payment struct{ Reminded int }

type (
	InvoiceIssued struct{ Amount int }
	InvoicePaid   struct{}
)

type invoiceCommand interface{}

var Invoices = aggregate.Definition[struct{}, invoiceCommand, InvoiceIssued]{
	Kind:    "invoice",
	Initial: func(string) struct{} { return struct{}{} },
	Decide:  func(struct{}, invoiceCommand) ([]InvoiceIssued, error) { return nil, nil },
	Evolve:  func(s struct{}, _ InvoiceIssued) struct{} { return s },
	Events:  []aggregate.EventType{aggregate.Event[InvoiceIssued]("test.invoice.issued"), aggregate.Event[InvoicePaid]("test.invoice.paid")},
}

type SendReminder struct{ N int }

func latePayments(h *actor.Handle[struct{}, invoiceCommand, InvoiceIssued]) *saga.Process[Payment] {
	p := saga.NewProcess[Payment]("late")
	saga.On(p, saga.BySubject[InvoiceIssued], func(_ context.Context, pc *saga.ProcessContext[Payment], _ InvoiceIssued) error {
		pc.Schedule("remind", 24*time.Hour)
		return nil
	}, saga.Starts())
	saga.On(p, saga.BySubject[InvoicePaid], func(_ context.Context, pc *saga.ProcessContext[Payment], _ InvoicePaid) error {
		pc.Complete()
		return nil
	})
	p.OnTimeout(func(ctx context.Context, pc *saga.ProcessContext[Payment], name string) error {
		pc.State.Reminded++
		if pc.State.Reminded < 3 {
			pc.Schedule("remind", 24*time.Hour)
		}
		_, err := h.Send(ctx, pc.ID, SendReminder{N: pc.State.Reminded}, pc.SendOptions("remind")...)
		return err
	})
	return p
}

func TestKit_Process_TimeoutsOnTheManualClock(t *testing.T) {
	k := sagatest.New(t)
	h := sagatest.Fake(k, Invoices)
	m := sagatest.RegisterProcess(k, latePayments(h))
	k.Reject(sagatest.All(sagatest.Input("timeout remind"), func(s sagatest.Sent) bool { return s.Command.(SendReminder).N == 2 }),
		errors.New("mailbox full"))

	k.Append("invoice-i1", InvoiceIssued{Amount: 10})
	sagatest.ExpectCaughtUp(k, m) // the reminder is armed
	k.ExpectNothingSent()

	var ids []string
	for n := 1; n <= 2; n++ {
		k.Clock.Advance(24 * time.Hour)
		r, s := sagatest.ExpectSent[SendReminder](k, "invoice", "i1")
		require.Equal(t, SendReminder{N: n}, r)
		require.True(t, s.Process)
		require.Equal(t, "late", s.Saga)
		require.Equal(t, "timeout remind", s.Step)
		ids = append(ids, s.ID)
		// The timeout's record (version n+1: the invoice was 1), then the
		// next reminder, if any, is armed.
		sagatest.ExpectProcess(k, m, "i1", sagatest.Version[Payment](uint64(n+1)))
		sagatest.ExpectCaughtUp(k, m)
	}
	require.NotEqual(t, ids[0], ids[1], "each timeout is its own input")

	// The second reminder was rejected: its handler's changes (the count,
	// the next reminder) are discarded, the failure is recorded, and the
	// fired timeout is dropped, so no third reminder comes.
	k.Clock.Advance(72 * time.Hour)
	sagatest.ExpectCaughtUp(k, m)
	k.ExpectNothingSent()
	st := sagatest.ProcessStatus(k, m, "i1")
	require.Equal(t, 1, st.State.Reminded)
	require.Empty(t, st.Timers)
	require.Equal(t, uint64(1), st.Failures)
	require.Contains(t, st.LastFailure.Reason, "mailbox full")
}

func TestKit_Process_CompletesOnPayment(t *testing.T) {
	k := sagatest.New(t)
	m := sagatest.RegisterProcess(k, latePayments(sagatest.Fake(k, Invoices)))
	k.Append("invoice-i2", InvoiceIssued{Amount: 10})
	k.Append("invoice-i2", InvoicePaid{})
	sagatest.ExpectCaughtUp(k, m)
	k.Clock.Advance(100 * time.Hour)
	sagatest.ExpectCaughtUp(k, m)
	k.ExpectNothingSent()
	require.True(t, sagatest.ProcessStatus(k, m, "i2").Done)
}

func TestKit_CommandsFromOutsideSagas_ReachTheAggregateUnrecorded(t *testing.T) {
	k := sagatest.New(t)
	h := sagatest.Fake(k, banktest.Accounts())
	k.Reject(sagatest.To("account", ""), banktest.ErrNotOpen) // applies to saga commands only
	probe := k.Env.EventProbe(t)
	_, err := h.Send(context.Background(), "alice", banktest.OpenAccount{Owner: "alice"})
	require.NoError(t, err)
	require.NoError(t, h.Tell("alice", banktest.Deposit{Amount: 1}))
	actortest.ExpectPersisted[banktest.Opened](probe, "alice")
	actortest.ExpectPersisted[banktest.Deposited](probe, "alice")
	require.Empty(t, k.Sent())
	k.ExpectNothingSent()
}

// A process handler's transient failure is retried with the same command
// ids after the Retry backoff, on the manual clock.
func TestKit_Process_RetriesWithTheSameCommandID(t *testing.T) {
	k := sagatest.New(t, sagatest.WithRetry(projection.Retry{InitialBackoff: time.Minute}))
	m := sagatest.RegisterProcess(k, latePayments(sagatest.Fake(k, Invoices)))
	k.Fail(sagatest.Input("timeout remind"), 1)
	k.Append("invoice-i3", InvoiceIssued{Amount: 10})
	sagatest.ExpectCaughtUp(k, m)

	k.Clock.Advance(24 * time.Hour)
	_, first := sagatest.ExpectSent[SendReminder](k, "invoice", "i3")
	k.ExpectRetry(1) // one minute
	_, second := sagatest.ExpectSent[SendReminder](k, "invoice", "i3")
	st := sagatest.ExpectProcess(k, m, "i3", sagatest.Version[Payment](2))
	k.ExpectNothingSent()
	require.Equal(t, sagatest.Failed, first.Answer)
	require.Equal(t, sagatest.Accepted, second.Answer)
	require.Equal(t, []int{1, 2}, []int{first.Attempt, second.Attempt})
	require.Equal(t, first.ID, second.ID)
	require.Equal(t, 1, st.State.Reminded)
	require.Zero(t, st.Failures)
}

// A runner that stops while a step's command is in flight: the new
// runner resumes the saga and re-sends that command with the same id, so
// the aggregate would deduplicate it.
func TestKit_Restart_ResendsTheStepInFlightWithTheSameID(t *testing.T) {
	k := sagatest.New(t)
	h := sagatest.Fake(k, banktest.Accounts())
	transfers := sagatest.Register(k, transferSaga(h))
	k.Hang(sagatest.Step("credit"))
	sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 1})
	sagatest.ExpectSent[banktest.Withdraw](k, "account", "alice")
	_, before := sagatest.ExpectSent[banktest.Deposit](k, "account", "bob")

	k.Restart()
	k.ClearRules()
	transfers = sagatest.Register(k, transferSaga(h))
	_, after := sagatest.ExpectSent[banktest.Deposit](k, "account", "bob")
	st := sagatest.ExpectFinished(k, transfers, "t1", saga.StateCompleted)
	k.ExpectNothingSent() // the debit, recorded as done, is not sent again
	require.Equal(t, before.ID, after.ID)
	require.Equal(t, sagatest.Hung, before.Answer)
	require.Equal(t, sagatest.Accepted, after.Answer)
	require.Equal(t, []string{"debit", "credit"}, st.Done)
}
