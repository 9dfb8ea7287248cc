package pii_test

import (
	"testing"

	"github.com/orchestrix/orchestrix/pii"
	"github.com/orchestrix/orchestrix/pii/piitest"
)

func TestMemKeyStore_Conformance(t *testing.T) {
	piitest.RunKeyStore(t, piitest.Features{}, func(*testing.T, string) pii.KeyStore {
		return pii.NewMemKeyStore()
	})
}
