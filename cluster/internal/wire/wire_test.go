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
