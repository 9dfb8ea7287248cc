// Package wire holds the fixed set of protobuf messages members of an
// Orchestrix cluster exchange (wire.proto; wire.pb.go is generated and
// committed, see wire.proto for how to regenerate it).
package wire
