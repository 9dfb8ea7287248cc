package orchestrix

import (
	"errors"
	"mime"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// validateSeeds are strings that sit on the edges of the fast paths of
// Validate: ASCII and non-ASCII, blank and white space, URI and media type
// forms that the fast scans accept and ones they hand to the parsers.
var validateSeeds = []string{
	"", " ", "\t\n", "\u00a0", "\u00a0x", "\u0085", "x", " x", "\x01",
	"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5\xff",
	"abcdefghijklmnop", "abcdefghijklmnopq\xc3\xa9", "abcdefghijklmno\xc3\xa9", "\xc3",
	"/orchestrix/bank", "//", "///", "//host/path", "//host:80/x", "//[::1]/", "//a b",
	"urn:x", "urn:orchestrix:bank", "https://schemas.example.com/x/v2", "1a:b", "a:", ":",
	"a:b c", "a://h%zz", "%zz", "%41", "a?b#c", "a#b#c", "mailto:x@y", "x:/\x7f",
	"https://example.com/é", "HTTP://X", "a+b-c.d:x", "+a:b", "a_b:c",
	"application/json", "text/plain; charset=utf-8", "text/plain; =x", "json", "a/", "/a",
	"a/b/c", "A/B", "a/b ", " a/b", "a/b;", "application/cloudevents+json", "x/y\x00",
}

// FuzzValidateFastPaths checks every fast path of Validate against the
// general parser it stands in for, so that the fast paths never change
// what Validate accepts.
func FuzzValidateFastPaths(f *testing.F) {
	for _, s := range validateSeeds {
		f.Add(s, int64(0))
	}
	for _, sec := range []int64{minRFC3339Unix - 1, minRFC3339Unix, endRFC3339Unix - 1, endRFC3339Unix, -1 << 62, 1 << 62} {
		f.Add("", sec)
	}
	f.Fuzz(func(t *testing.T, s string, sec int64) {
		if got, want := validUTF8(s), utf8.ValidString(s); got != want {
			t.Fatalf("validUTF8(%q) = %v, want %v", s, got, want)
		}
		wantRequired := strings.TrimSpace(s) != "" && utf8.ValidString(s)
		if got := checkRequired("x", s) == nil; got != wantRequired {
			t.Fatalf("checkRequired(%q) ok = %v, want %v", s, got, wantRequired)
		}
		u, err := url.Parse(s)
		if got, want := isURIReference(s), err == nil; got != want {
			t.Fatalf("isURIReference(%q) = %v, url.Parse error %v", s, got, err)
		}
		if got, want := isAbsoluteURI(s), err == nil && u.IsAbs(); got != want {
			t.Fatalf("isAbsoluteURI(%q) = %v, want %v (url.Parse error %v)", s, got, want, err)
		}
		mt, _, err := mime.ParseMediaType(s)
		if got, want := isMediaType(s), err == nil && strings.Contains(mt, "/"); got != want {
			t.Fatalf("isMediaType(%q) = %v, want %v (mime error %v)", s, got, want, err)
		}

		// Validate as a whole, with s in the attributes that have fast paths.
		e := Envelope{ID: s, Source: s, Type: "t", DataContentType: s, CorrelationID: s}
		if sec != 0 {
			e.Time = time.Unix(sec, 0)
		}
		wantValid := wantRequired && isURIReference(s) && (s == "" || isMediaType(s))
		if !e.Time.IsZero() {
			if y := e.Time.UTC().Year(); y < 0 || y > 9999 {
				wantValid = false
			}
		}
		err = e.Validate()
		if (err == nil) != wantValid {
			t.Fatalf("Validate(%+v) = %v, want valid = %v", e, err, wantValid)
		}
		if err != nil && !errors.Is(err, ErrInvalidEnvelope) {
			t.Fatalf("Validate() = %v, want an error matching ErrInvalidEnvelope", err)
		}
	})
}
