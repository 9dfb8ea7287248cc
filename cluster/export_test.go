package cluster

// SetOlderBuildForTests makes the members started afterwards in this
// process behave as members of a build without command batches (batch.go).
func SetOlderBuildForTests() { olderBuildForTests = true }

// SetUnpackedBuildForTests makes the members started afterwards in this
// process behave as members of a build with command batches but without
// packed ones (packed.go).
func SetUnpackedBuildForTests() { unpackedBuildForTests = true }
