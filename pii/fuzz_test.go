package pii_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/pii"
)

// FuzzCodec_Decode feeds arbitrary field values to the decoder: it must
// return the value, Erased, or an error matching ErrCorrupt — never panic.
func FuzzCodec_Decode(f *testing.F) {
	keys := pii.NewMemKeyStore()
	c, err := pii.NewCodec(pii.Config{Keys: keys})
	if err != nil {
		f.Fatal(err)
	}
	data, err := c.EncodeFor(context.Background(), "alice", Address{Street: "1 Rabbit Hole"})
	if err != nil {
		f.Fatal(err)
	}
	var enc Address
	if err := json.Unmarshal(data, &enc); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{enc.Street, "enc:v1:", "enc:v1::", "enc:v1:x:", "enc:v1:" + enc.Street[7:30], "plain", pii.Erased, ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		payload, err := json.Marshal(map[string]string{"Street": s})
		if err != nil {
			t.Skip()
		}
		var out Address
		err = c.Decode(payload, &out)
		if err != nil && !errors.Is(err, orchestrix.ErrCorrupt) {
			t.Fatalf("Decode(%q) = %v, want nil or ErrCorrupt", s, err)
		}
	})
}
