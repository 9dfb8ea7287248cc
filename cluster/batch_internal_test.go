package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/cluster/internal/wire"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
)

// announce answers the next request the blackHole got, a confirmation
// probe sent by askConfirm, with a HandoffReply announcing features.
func announce(t *testing.T, m *Member, hole blackHole, features uint64) {
	t.Helper()
	done := make(chan bool, 1)
	go func() { done <- m.askConfirm(context.Background(), peerAddr) }()
	env := <-hole.got
	if _, ok := env.Message.(*wire.HandoffRequest); !ok {
		t.Fatalf("askConfirm sent %T, want a *wire.HandoffRequest", env.Message)
	}
	m.root().Send(env.Sender, &wire.HandoffReply{Known: true, Features: features})
	if !<-done {
		t.Fatal("the probe was not confirmed")
	}
}

// sendAndAnswer sends one command to the peer and answers it, whichever
// form it took, and returns that form.
func sendAndAnswer(t *testing.T, m *Member, h blackHole, id string) any {
	t.Helper()
	res := sendCommand(m, id, "c-"+id, func(context.Context) error { return errors.New("ran locally") })
	env := <-h.got
	for {
		// A handoff round of a view change: answered as a member of an
		// older build would (no features).
		if _, ok := env.Message.(*wire.HandoffRequest); !ok {
			break
		}
		m.root().Send(env.Sender, &wire.HandoffReply{Known: true})
		env = <-h.got
	}
	switch msg := env.Message.(type) {
	case *wire.CommandRequest:
		m.root().Send(env.Sender, &wire.CommandReply{Version: 1})
	case *wire.CommandBatch:
		reqs, packed, ok := m.batchCommands(msg)
		if !ok {
			t.Fatalf("malformed batch: %x", msg.GetPacked())
		}
		var replies []*wire.CommandReply
		for _, c := range reqs {
			replies = append(replies, &wire.CommandReply{Version: 1, Seq: c.GetSeq()})
		}
		m.root().Send(env.Sender, batchReplyMsg(replies, packed))
	default:
		t.Fatalf("the command was sent as %T", env.Message)
	}
	if r := <-res; r.err != nil || r.ranLocally {
		t.Fatalf("command to the peer: ran locally %v, err %v", r.ranLocally, r.err)
	}
	return env.Message
}

func batchMember(t *testing.T) (*Member, blackHole) {
	return pendingMember(t, func(string) bool { return true })
}

// Rolling upgrade: commands go in a CommandBatch only to a peer that
// announced the feature in a HandoffReply, under the member id it has in
// this member's view, on the connection it has now. A peer of an older
// build (features 0), a peer not asked yet, a peer whose connection was
// lost until it announces again, and a peer restarted at the same address
// (a new id) get single CommandRequests: a batch would crash an older
// build.
func TestBatch_OnlyToPeersThatAnnouncedIt(t *testing.T) {
	m, h := batchMember(t)
	id := peerOwned(t, m)

	if got := sendAndAnswer(t, m, h, id); fmt.Sprintf("%T", got) != "*wire.CommandRequest" {
		t.Fatalf("before the peer announced anything: sent %T, want a single *wire.CommandRequest", got)
	}
	announce(t, m, h, 0) // an older build
	if got := sendAndAnswer(t, m, h, id); fmt.Sprintf("%T", got) != "*wire.CommandRequest" {
		t.Fatalf("to a peer without the feature: sent %T, want a single *wire.CommandRequest", got)
	}
	announce(t, m, h, featureBit(wire.Feature_FEATURE_COMMAND_BATCH))
	if got := sendAndAnswer(t, m, h, id); fmt.Sprintf("%T", got) != "*wire.CommandBatch" {
		t.Fatalf("to a peer that announced the feature: sent %T, want a *wire.CommandBatch", got)
	}

	// The connection to the peer is lost (it died, and may come back at
	// the same address as an older build before this member's view shows
	// its new id): singles until it announces the feature again. An
	// answer to a probe sent before the loss does not count.
	stale := m.asking(peerAddr)
	m.onEvent(&remote.EndpointTerminatedEvent{Address: peerAddr})
	if got := sendAndAnswer(t, m, h, id); fmt.Sprintf("%T", got) != "*wire.CommandRequest" {
		t.Fatalf("after the connection to the peer was lost: sent %T, want a single *wire.CommandRequest", got)
	}
	m.noteFeatures(peerAddr, stale, &wire.HandoffReply{Known: true, Features: featureBit(wire.Feature_FEATURE_COMMAND_BATCH)})
	if got := sendAndAnswer(t, m, h, id); fmt.Sprintf("%T", got) != "*wire.CommandRequest" {
		t.Fatalf("after a stale answer (probe sent before the loss): sent %T, want a single *wire.CommandRequest", got)
	}
	announce(t, m, h, featureBit(wire.Feature_FEATURE_COMMAND_BATCH))
	if got := sendAndAnswer(t, m, h, id); fmt.Sprintf("%T", got) != "*wire.CommandBatch" {
		t.Fatalf("after the peer announced the feature again: sent %T, want a *wire.CommandBatch", got)
	}

	// The peer restarts at the same address, as a new member (an older
	// build, say): singles until it announces the feature itself.
	m.changeView(func(old *view, n uint64) *view {
		return old.next(n, newPlacement([]peer{{id: "self", addr: m.addr(), kinds: []string{"k"}},
			{id: "peer-restarted", addr: peerAddr, kinds: []string{"k"}}}))
	})
	if got := sendAndAnswer(t, m, h, id); fmt.Sprintf("%T", got) != "*wire.CommandRequest" {
		t.Fatalf("to a peer restarted at the same address: sent %T, want a single *wire.CommandRequest", got)
	}
}

// This member announces the feature in every HandoffReply it makes, and
// not when batching is off (as a member of an older build).
func TestBatch_Announced(t *testing.T) {
	m, _ := batchMember(t)
	r := m.serveConfirm(&wire.HandoffRequest{MemberId: "peer"})
	if r.GetFeatures()&featureBit(wire.Feature_FEATURE_COMMAND_BATCH) == 0 {
		t.Fatalf("probe answer %v does not announce FEATURE_COMMAND_BATCH", r)
	}
	if r.GetFeatures()&featureBit(wire.Feature_FEATURE_PACKED_BATCH) == 0 {
		t.Fatalf("probe answer %v does not announce FEATURE_PACKED_BATCH", r)
	}
	m.noPacked = true
	if r := m.serveConfirm(&wire.HandoffRequest{MemberId: "peer"}); r.GetFeatures() != featureBit(wire.Feature_FEATURE_COMMAND_BATCH) {
		t.Fatalf("with packed batches off the answer announces %b, want batches alone", r.GetFeatures())
	}
	m.noBatch = true
	if r := m.serveConfirm(&wire.HandoffRequest{MemberId: "peer"}); r.GetFeatures() != 0 {
		t.Fatalf("with batching off the answer still announces %b", r.GetFeatures())
	}
}

// Rolling upgrade, packed batches: a batch is packed only for a peer that
// announced FEATURE_PACKED_BATCH (a build with batches but before packed
// ones would see an empty batch), and its replies come back packed.
func TestBatch_PackedOnlyToPeersThatAnnouncedIt(t *testing.T) {
	m, h := batchMember(t)
	id := peerOwned(t, m)
	packed := func(msg any) bool {
		b, ok := msg.(*wire.CommandBatch)
		if !ok {
			t.Fatalf("sent %T, want a *wire.CommandBatch", msg)
		}
		return len(b.GetPacked()) > 0
	}
	announce(t, m, h, featureBit(wire.Feature_FEATURE_COMMAND_BATCH))
	if packed(sendAndAnswer(t, m, h, id)) {
		t.Fatal("packed a batch for a peer that announced batches alone")
	}
	announce(t, m, h, featureBit(wire.Feature_FEATURE_COMMAND_BATCH)|featureBit(wire.Feature_FEATURE_PACKED_BATCH))
	if !packed(sendAndAnswer(t, m, h, id)) {
		t.Fatal("did not pack a batch for a peer that announced packed batches")
	}
	m.noPacked = true
	if packed(sendAndAnswer(t, m, h, id)) {
		t.Fatal("packed a batch with packed batches off")
	}
}

func packedItems(reqs ...*wire.CommandRequest) []*batchItem {
	items := make([]*batchItem, len(reqs))
	for i, r := range reqs {
		items[i] = &batchItem{req: r}
	}
	return items
}

// Packed commands and replies read back as what was packed, seq numbered
// from 1 in order, including empty fields and a reply with several events.
func TestPacked_RoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0xfe}, 300) // lengths past one uvarint byte
	reqs := []*wire.CommandRequest{
		{Kind: "account", AggregateId: "acc-1", CommandId: "c-1", Command: []byte("payload-1")},
		{Kind: "k", AggregateId: "", CommandId: "", Command: nil},
		{Kind: "account", AggregateId: strings.Repeat("x", 200), CommandId: "c-3", Command: big},
	}
	got, err := unpackCommands(packCommands(packedItems(reqs...)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(reqs) {
		t.Fatalf("unpacked %d commands, want %d", len(got), len(reqs))
	}
	for i, r := range reqs {
		g := got[i]
		if g.GetKind() != r.GetKind() || g.GetAggregateId() != r.GetAggregateId() || g.GetCommandId() != r.GetCommandId() ||
			!bytes.Equal(g.GetCommand(), r.GetCommand()) || g.GetSeq() != uint32(i+1) {
			t.Fatalf("command %d: got %v, want %v with seq %d", i, g, r, i+1)
		}
	}

	replies := []*wire.CommandReply{
		{Seq: 1, Version: 7, Position: 1 << 40, Events: [][]byte{[]byte("e1"), big, {}}},
		{Seq: 2, Code: wire.Code_REJECTED, Message: "not enough money"},
		{Seq: 3, Version: 3, Duplicate: true, Events: [][]byte{[]byte("dup")}},
		{Seq: 4, Code: wire.Code_FAILED, Message: strings.Repeat("m", 500)},
	}
	back, err := unpackReplies(packReplies(replies))
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(replies) {
		t.Fatalf("unpacked %d replies, want %d", len(back), len(replies))
	}
	for i, r := range replies {
		if len(r.GetEvents()) != len(back[i].GetEvents()) || !sameReply(back[i], r) {
			t.Fatalf("reply %d: got %v, want %v", i, back[i], r)
		}
	}
	if cap(back[0].Events) != 3 {
		t.Fatalf("reply 0's events have capacity %d: appending to them would write into reply 1's", cap(back[0].Events))
	}
}

// sameReply compares replies field by field (an empty event unpacks as an
// empty, not nil, slice, which proto.Equal would tell apart).
func sameReply(a, b *wire.CommandReply) bool {
	if a.GetSeq() != b.GetSeq() || a.GetCode() != b.GetCode() || a.GetMessage() != b.GetMessage() ||
		a.GetVersion() != b.GetVersion() || a.GetPosition() != b.GetPosition() || a.GetDuplicate() != b.GetDuplicate() {
		return false
	}
	for i := range a.GetEvents() {
		if !bytes.Equal(a.GetEvents()[i], b.GetEvents()[i]) {
			return false
		}
	}
	return true
}

// Malformed packed bytes (every truncation of a valid batch, and random
// bytes) give errPacked, never a panic or a partial batch.
func TestPacked_MalformedIsAnError(t *testing.T) {
	cmds := packCommands(packedItems(
		&wire.CommandRequest{Kind: "account", AggregateId: "acc-1", CommandId: "c-1", Command: []byte("payload")},
		&wire.CommandRequest{Kind: "account", AggregateId: "acc-2", CommandId: "c-2", Command: []byte("payload-2")}))
	reps := packReplies([]*wire.CommandReply{{Seq: 1, Version: 2, Events: [][]byte{[]byte("event")}}, {Seq: 2, Message: "m"}})
	for n := 1; n < len(cmds); n++ {
		got, err := unpackCommands(cmds[:n])
		if err == nil {
			// A cut right after the first command is a well-formed batch
			// of one.
			if len(got) != 1 || got[0].GetAggregateId() != "acc-1" {
				t.Fatalf("commands cut at %d of %d: no error, %d commands", n, len(cmds), len(got))
			}
			continue
		}
		if !errors.Is(err, errPacked) || got != nil {
			t.Fatalf("commands cut at %d: %v (%d commands), want errPacked and none", n, err, len(got))
		}
	}
	for n := 1; n < len(reps); n++ {
		got, err := unpackReplies(reps[:n])
		if err == nil {
			if len(got) != 1 || got[0].GetSeq() != 1 {
				t.Fatalf("replies cut at %d of %d: no error, %d replies", n, len(reps), len(got))
			}
			continue
		}
		if !errors.Is(err, errPacked) || got != nil {
			t.Fatalf("replies cut at %d: %v (%d replies), want errPacked and none", n, err, len(got))
		}
	}
	for _, bad := range [][]byte{
		{0x00, 0, 0, 0, 0},          // seq 0
		{0x80, 0x80, 0x80},          // a uvarint that does not end
		{0x01, 0x7f, 'a'},           // a length past the end
		{0x01, 0x00, 0x00, 0x00, 2}, // a command length past the end
	} {
		if _, err := unpackCommands(bad); !errors.Is(err, errPacked) {
			t.Fatalf("commands %x: %v, want errPacked", bad, err)
		}
	}
	for _, bad := range [][]byte{
		{1, 99, 0, 0, 0, 0, 0},               // unknown code
		{1, 0, 0, 0, 0x80, 0, 0},             // unknown flags
		{1, 0, 0, 0, 0, 0, 0xff, 0xff, 0x03}, // more events than bytes
	} {
		if _, err := unpackReplies(bad); !errors.Is(err, errPacked) {
			t.Fatalf("replies %x: %v, want errPacked", bad, err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		if reqs, err := unpackCommands(b); err != nil && reqs != nil {
			t.Fatalf("commands %x: error %v with %d commands", b, err, len(reqs))
		}
		if reps, err := unpackReplies(b); err != nil && reps != nil {
			t.Fatalf("replies %x: error %v with %d replies", b, err, len(reps))
		}
	}
}

// Commands sent to one member while a flush is pending go in one
// CommandBatch; each keeps its own command id and gets its own reply by
// seq, whatever order and grouping the replies come back in; a caller
// whose deadline passes ends with an unknown outcome without affecting
// the others; and the batch's reply process is unregistered once every
// command of it ended.
func TestBatch_EachCommandKeepsItsOwnReplyAndDeadline(t *testing.T) {
	m, h := batchMember(t)
	announce(t, m, h, featureBit(wire.Feature_FEATURE_COMMAND_BATCH))
	// Hold the outbox as if a flush were running, queue four commands,
	// then flush: they go together.
	ob := m.outboxes.get(peerAddr)
	ob.mu.Lock()
	ob.scheduled = true
	ob.mu.Unlock()
	type res struct {
		v   any
		a   attempt
		err error
	}
	outs := make([]chan res, 4)
	for i := range outs {
		outs[i] = make(chan res, 1)
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if i == 3 {
			ctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
		}
		req := &wire.CommandRequest{Kind: "k", AggregateId: fmt.Sprint("a", i), CommandId: fmt.Sprint("cmd-", i), Command: []byte{byte(i)}}
		go func() {
			defer cancel()
			v, a, err := m.requestVia(ctx, peerAddr, func() (<-chan any, func()) { return m.sendBatched(peerAddr, req) })
			outs[i] <- res{v, a, err}
		}()
	}
	for {
		ob.mu.Lock()
		n := len(ob.queue)
		ob.mu.Unlock()
		if n == 4 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	go m.flushOutbox(peerAddr, ob, false)
	env := <-h.got
	b, ok := env.Message.(*wire.CommandBatch)
	if !ok || len(b.GetCommands()) != 4 {
		t.Fatalf("sent %v, want one batch of the 4 queued commands", env.Message)
	}
	seqOf := map[string]uint32{}
	for i, c := range b.GetCommands() {
		if c.GetCommandId() != fmt.Sprint("cmd-", c.GetCommand()[0]) || c.GetSeq() != uint32(i+1) {
			t.Fatalf("command %d of the batch: %v", i, c)
		}
		seqOf[c.GetCommandId()] = c.GetSeq()
	}
	// Command 3's caller gives up (unknown outcome); the others are
	// answered out of order, in two messages, each with its own version.
	if r := <-outs[3]; r.a != unknown || !errors.Is(r.err, orchestrix.ErrOutcomeUnknown) {
		t.Fatalf("the command whose deadline passed: %v, %v; want an unknown outcome", r.a, r.err)
	}
	reply := func(i int) *wire.CommandReply {
		return &wire.CommandReply{Version: uint64(100 + i), Seq: seqOf[fmt.Sprint("cmd-", i)]}
	}
	m.root().Send(env.Sender, &wire.CommandBatchReply{Replies: []*wire.CommandReply{reply(2)}})
	m.root().Send(env.Sender, &wire.CommandBatchReply{Replies: []*wire.CommandReply{reply(0), reply(3), reply(1)}})
	for i := range 3 {
		r := <-outs[i]
		cr, ok := r.v.(*wire.CommandReply)
		if r.err != nil || r.a != delivered || !ok || cr.GetVersion() != uint64(100+i) {
			t.Fatalf("command %d: got %v, %v, %v; want its own reply (version %d)", i, r.v, r.a, r.err, 100+i)
		}
	}
	if _, ok := m.proto.ProcessRegistry.Get(env.Sender); ok {
		t.Fatalf("the batch's reply process %v is still registered after all its commands ended", env.Sender)
	}
}

// A dead letter (the target has no request actor) ends every command of
// the batch as not delivered: none of them ran.
func TestBatch_DeadLetterIsNotDelivered(t *testing.T) {
	m, h := batchMember(t)
	announce(t, m, h, featureBit(wire.Feature_FEATURE_COMMAND_BATCH))
	errc := make(chan attempt, 1)
	go func() {
		_, a, _ := m.requestVia(context.Background(), peerAddr, func() (<-chan any, func()) {
			return m.sendBatched(peerAddr, &wire.CommandRequest{Kind: "k", AggregateId: "x", CommandId: "c"})
		})
		errc <- a
	}()
	env := <-h.got
	m.root().Send(env.Sender, &proto.DeadLetterResponse{Target: env.Sender})
	if a := <-errc; a != notDelivered {
		t.Fatalf("a batched command that met a dead letter: %v, want not delivered", a)
	}
}

// A batched command pending at a member that dies (the view drops it and
// its endpoint refuses connections) ends with an unknown outcome at once,
// and is not retried.
func TestBatch_PendingAtADeadMemberIsOutcomeUnknown(t *testing.T) {
	m, h := pendingMember(t, func(string) bool { return false })
	announce(t, m, h, featureBit(wire.Feature_FEATURE_COMMAND_BATCH))
	id := peerOwned(t, m)
	ran := 0
	res := sendCommand(m, id, "cmd-1", func(context.Context) error { ran++; return nil })
	if _, ok := (<-h.got).Message.(*wire.CommandBatch); !ok {
		t.Fatal("the command did not go in a batch")
	}
	dropPeer(m)
	r := <-res
	if !errors.Is(r.err, orchestrix.ErrOutcomeUnknown) || !errors.Is(r.err, errMemberGone) || r.ranLocally || ran != 0 {
		t.Fatalf("batched command pending at a dead member: %v (ran locally %v); want ErrOutcomeUnknown, not retried", r.err, r.ranLocally)
	}
}

// capture is a process that hands every message it gets to a channel.
type capture struct{ got chan any }

func (c capture) SendUserMessage(_ *proto.PID, msg any) {
	_, m, _ := proto.UnwrapEnvelope(msg)
	c.got <- m
}
func (capture) SendSystemMessage(*proto.PID, any) {}
func (capture) Stop(*proto.PID)                   {}

// The serving side answers a batch's commands as they finish: a slow one
// does not hold up the replies of the others. A drained member refuses
// every command of a batch as not the owner, each under its seq.
func TestServer_BatchRepliesAsCommandsFinish(t *testing.T) {
	sys := proto.NewActorSystem()
	defer sys.Shutdown()
	k := gateKind{gate: make(chan struct{}), blocked: make(chan struct{})}
	m := soloMember(t, sys, "k", k)
	srv := sys.Root.Spawn(proto.PropsFromProducer(func() proto.Actor { return &server{m: m} }))
	cp := capture{got: make(chan any, 16)}
	from, _ := sys.ProcessRegistry.Add(cp, "capture")

	sys.Root.RequestWithCustomSender(srv, &wire.CommandBatch{Commands: []*wire.CommandRequest{
		{Kind: "k", AggregateId: "a", Command: []byte("block"), Seq: 1},
		{Kind: "k", AggregateId: "b", Command: []byte("go"), Seq: 2},
	}}, from)
	<-k.blocked
	var first *wire.CommandBatchReply
	select {
	case v := <-cp.got:
		first, _ = v.(*wire.CommandBatchReply)
	case <-time.After(30 * time.Second):
		close(k.gate)
		t.Fatal("no reply while one command of the batch was still running: the batch is answered only once all finished")
	}
	if first == nil || len(first.GetReplies()) != 1 || first.GetReplies()[0].GetSeq() != 2 || first.GetReplies()[0].GetVersion() != 2 {
		close(k.gate)
		t.Fatalf("first reply: %v; want the fast command's (seq 2) alone", first)
	}
	close(k.gate)
	v := <-cp.got
	if r, ok := v.(*wire.CommandBatchReply); !ok || len(r.GetReplies()) != 1 || r.GetReplies()[0].GetSeq() != 1 || r.GetReplies()[0].GetVersion() != 1 {
		t.Fatalf("second reply: %v; want the slow command's (seq 1)", v)
	}

	f := sys.Root.RequestFuture(srv, drainMsg{}, time.Minute)
	if _, err := f.Result(); err != nil {
		t.Fatal(err)
	}
	sys.Root.RequestWithCustomSender(srv, &wire.CommandBatch{Commands: []*wire.CommandRequest{
		{Kind: "k", AggregateId: "a", Seq: 1}, {Kind: "k", AggregateId: "b", Seq: 2}}}, from)
	v = <-cp.got
	r, ok := v.(*wire.CommandBatchReply)
	if !ok || len(r.GetReplies()) != 2 {
		t.Fatalf("a drained member's answer to a batch: %v", v)
	}
	for i, rep := range r.GetReplies() {
		if rep.GetCode() != wire.Code_NOT_OWNER || rep.GetSeq() != uint32(i+1) {
			t.Fatalf("a drained member's reply %d: %v; want NOT_OWNER under its seq", i, rep)
		}
	}
}

// deadlineKind records the deadline of the context each command is
// served with.
type deadlineKind struct {
	clusterseam.Kind
	got chan time.Time // the zero time: no deadline
}

func (k deadlineKind) ServeCommand(ctx context.Context, _ []byte) (clusterseam.CommandReply, error) {
	dl, _ := ctx.Deadline()
	k.got <- dl
	return clusterseam.CommandReply{Version: 1}, ctx.Err()
}

// Every command of a batch is served within RequestTimeout of the batch's
// arrival, as it would be alone (the commands share one context).
func TestServer_BatchCommandsKeepTheRequestDeadline(t *testing.T) {
	sys := proto.NewActorSystem()
	defer sys.Shutdown()
	k := deadlineKind{got: make(chan time.Time, 3)}
	m := soloMember(t, sys, "k", k)
	srv := sys.Root.Spawn(proto.PropsFromProducer(func() proto.Actor { return &server{m: m} }))
	cp := capture{got: make(chan any, 16)}
	from, _ := sys.ProcessRegistry.Add(cp, "capture")

	before := time.Now()
	sys.Root.RequestWithCustomSender(srv, &wire.CommandBatch{Commands: []*wire.CommandRequest{
		{Kind: "k", AggregateId: "a", Seq: 1}, {Kind: "k", AggregateId: "b", Seq: 2}, {Kind: "k", AggregateId: "c", Seq: 3},
	}}, from)
	var replies int
	for replies < 3 {
		r, ok := (<-cp.got).(*wire.CommandBatchReply)
		if !ok {
			t.Fatalf("answered %T", r)
		}
		for _, rep := range r.GetReplies() {
			if rep.GetCode() != wire.Code_OK {
				t.Fatalf("reply %v: the command's context had ended", rep)
			}
		}
		replies += len(r.GetReplies())
	}
	after := time.Now()
	for range 3 {
		dl := <-k.got
		if dl.Before(before.Add(m.cfg.RequestTimeout)) || dl.After(after.Add(m.cfg.RequestTimeout)) {
			t.Fatalf("a batch's command was served with deadline %v; want RequestTimeout (%v) after its arrival, between %v and %v",
				dl, m.cfg.RequestTimeout, before.Add(m.cfg.RequestTimeout), after.Add(m.cfg.RequestTimeout))
		}
	}
}

// Under a load that comes in bursts (the last batch to the address left
// less than outboxBusy ago with at least outboxBurst commands), the
// outbox gathers for outboxHold before it flushes; otherwise (a lone
// command, a small last batch, a quiet address) it flushes at once.
func TestBatch_OutboxHoldsOnlyUnderBurstyLoad(t *testing.T) {
	m, h := batchMember(t)
	id := peerOwned(t, m)
	announce(t, m, h, m.features())
	clock := actortest.NewManualClock(time.Unix(0, 0))
	m.outboxTestClock, m.outboxHold = clock, 3*time.Millisecond
	ob := m.outboxes.get(peerAddr)
	setLast := func(ago time.Duration, size int) {
		ob.mu.Lock()
		ob.lastSent, ob.lastSize = clock.Now().Add(-ago), size
		ob.mu.Unlock()
	}
	queued := func() int {
		ob.mu.Lock()
		defer ob.mu.Unlock()
		return len(ob.queue)
	}
	answer := func(env *proto.MessageEnvelope) {
		reqs, packed, ok := m.batchCommands(env.Message.(*wire.CommandBatch))
		if !ok {
			t.Fatal("malformed batch")
		}
		var replies []*wire.CommandReply
		for _, c := range reqs {
			replies = append(replies, &wire.CommandReply{Version: 1, Seq: c.GetSeq()})
		}
		m.root().Send(env.Sender, batchReplyMsg(replies, packed))
	}
	sendsAtOnce := func(what string) {
		t.Helper()
		res := sendCommand(m, id, "c-"+what, func(context.Context) error { return errors.New("ran locally") })
		select {
		case env := <-h.got:
			answer(env)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the command was not sent at once", what)
		}
		if r := <-res; r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
	}

	sendsAtOnce("lone")
	setLast(time.Millisecond, outboxBurst-1)
	sendsAtOnce("after a small batch")
	setLast(outboxBusy, outboxBurst)
	sendsAtOnce("after a quiet spell")

	setLast(time.Millisecond, outboxBurst)
	res := sendCommand(m, id, "c-held", func(context.Context) error { return errors.New("ran locally") })
	for queued() == 0 || clock.Timers() == 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case env := <-h.got:
		t.Fatalf("sent %T during the hold", env.Message)
	default:
	}
	clock.Advance(3 * time.Millisecond)
	select {
	case env := <-h.got:
		answer(env)
	case <-time.After(10 * time.Second):
		t.Fatal("the held command was not sent once the hold passed")
	}
	if r := <-res; r.err != nil {
		t.Fatal(r.err)
	}
}
