package wire

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestCommandRequestRoundTrip(t *testing.T) {
	in := &CommandRequest{Kind: "account", AggregateId: "a-1", CommandId: "c-1", Command: []byte{1, 2, 3}}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out CommandRequest
	if err := proto.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, &out) {
		t.Fatalf("round trip: got %v, want %v", &out, in)
	}
}

func TestReplyCodesRoundTrip(t *testing.T) {
	in := &CommandReply{Code: Code_NOT_OWNER, Message: "not the owner", Events: [][]byte{{9}}, Version: 7}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out CommandReply
	if err := proto.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.GetCode() != Code_NOT_OWNER || out.GetVersion() != 7 || len(out.GetEvents()) != 1 {
		t.Fatalf("round trip lost fields: %v", &out)
	}
}

func TestHandoffAndLeaveRoundTrip(t *testing.T) {
	for _, in := range []proto.Message{
		&HandoffRequest{MemberId: "m1", Address: "127.0.0.1:1", Epoch: 7,
			Members: []*Peer{{Id: "m1", Address: "127.0.0.1:1", Kinds: []string{"account"}}, {Id: "m2", Address: "127.0.0.1:2"}}},
		&HandoffReply{Known: true, Released: 3, Features: 1 << uint(Feature_FEATURE_COMMAND_BATCH)},
		&CommandBatch{Commands: []*CommandRequest{{Kind: "account", AggregateId: "a-1", CommandId: "c-1", Command: []byte{1}, Seq: 1},
			{Kind: "account", AggregateId: "a-2", CommandId: "c-2", Command: []byte{2}, Seq: 2}}},
		&CommandBatchReply{Replies: []*CommandReply{{Seq: 2, Version: 3}, {Seq: 1, Code: Code_NOT_OWNER, Message: "x"}}},
		&LeaveRequest{MemberId: "m1", Address: "127.0.0.1:1"},
		&LeaveReply{},
	} {
		b, err := proto.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		out := in.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(in, out) {
			t.Fatalf("round trip: got %v, want %v", out, in)
		}
	}
}

// A member of an older build reads a HandoffReply without the features
// field it does not know: adding it must keep the message readable by the
// old schema (an unknown field is skipped, not an error).
func TestHandoffReplyFeaturesSkippedByOlderReaders(t *testing.T) {
	b, err := proto.Marshal(&HandoffReply{Known: true, Released: 2, Features: 1 << uint(Feature_FEATURE_COMMAND_BATCH)})
	if err != nil {
		t.Fatal(err)
	}
	// LeaveReply has no fields at all: the strictest older reader.
	var old LeaveReply
	if err := proto.Unmarshal(b, &old); err != nil {
		t.Fatalf("a reader without the new field: %v", err)
	}
}
