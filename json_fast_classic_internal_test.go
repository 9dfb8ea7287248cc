//go:build !goexperiment.jsonv2

package orchestrix

// stdJSONIsV2 reports whether encoding/json is built on the v2 engine
// (GOEXPERIMENT=jsonv2), the engine the Registry's fast path uses.
const stdJSONIsV2 = false
