package main

import (
	"testing"

	"github.com/orchestrix/orchestrix/aggregate/aggregatetest"
)

func TestDefinitions_Serialize(t *testing.T) {
	aggregatetest.CheckSerialization(t, Orders)
	aggregatetest.CheckSerialization(t, Payments)
	aggregatetest.CheckSerialization(t, Inventory)
}
