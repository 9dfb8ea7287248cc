package orchestrix

import (
	"math"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// SpecVersion is the CloudEvents specification version every envelope
// carries.
const SpecVersion = "1.0"

// Envelope is how every event and command travels and is stored: the
// attributes of a CloudEvents 1.0 event plus Orchestrix's extensions, and
// the already-encoded payload in Data.
//
// The structured-mode JSON form (MarshalJSON / UnmarshalJSON) is valid
// CloudEvents JSON. The binary form (AppendBinary, MarshalBinary /
// UnmarshalBinary) is the compact encoding the journals store.
type Envelope struct {
	// ID identifies the event (a UUIDv7 string by default). Together with
	// Source it is unique; journals use it for idempotent retries.
	ID string
	// Source identifies the context in which the event happened (a URI
	// reference such as "/orchestrix/bank").
	Source string
	// SpecVersion is always "1.0"; empty is read as "1.0" when encoding.
	SpecVersion string
	// Type is the registered, stable type name of the payload.
	Type string
	// Subject is the aggregate id the event belongs to.
	Subject string
	// Time is when the event happened (set from the injected clock).
	Time time.Time
	// DataContentType is the media type of Data, e.g. "application/json".
	DataContentType string
	// DataSchema optionally identifies the schema of Data (a URI).
	DataSchema string
	// SchemaVersion is the registered schema version of the payload type
	// at the time it was encoded (1 when unset). Upcasters bring older
	// versions forward on read. Extension attribute "schemaversion".
	SchemaVersion int

	// Sequence is the version of the event in its stream (extension
	// attribute "sequence", encoded as a decimal string as the CloudEvents
	// sequence extension prescribes). Set by the journal on append.
	Sequence uint64
	// CorrelationID groups every message of one business transaction
	// (extension "correlationid").
	CorrelationID string
	// CausationID is the id of the message that caused this one
	// (extension "causationid"); the runtime records the command id here,
	// which is what command deduplication reads back.
	CausationID string
	// TraceParent is a W3C trace context traceparent header value
	// (extension "traceparent").
	TraceParent string
	// Extensions holds any further CloudEvents extension attributes.
	// Names must be 1-20 lower-case letters or digits.
	Extensions map[string]string

	// Data is the encoded payload.
	Data []byte
}

// Attribute names of the CloudEvents context and of Orchestrix's extension
// attributes, as they appear in structured-mode JSON.
const (
	attrID              = "id"
	attrSource          = "source"
	attrSpecVersion     = "specversion"
	attrType            = "type"
	attrSubject         = "subject"
	attrTime            = "time"
	attrDataContentType = "datacontenttype"
	attrDataSchema      = "dataschema"
	attrData            = "data"
	attrDataBase64      = "data_base64"
	attrSequence        = "sequence"
	attrCorrelationID   = "correlationid"
	attrCausationID     = "causationid"
	attrTraceParent     = "traceparent"
	attrSchemaVersion   = "schemaversion"
)

// maxExtensionNameLen is the longest extension attribute name accepted, as
// the CloudEvents specification recommends.
const maxExtensionNameLen = 20

// isReservedName reports whether an entry of Envelope.Extensions may not
// use name, because a field of Envelope (or the data member) owns it.
func isReservedName(name string) bool {
	switch name {
	case attrID, attrSource, attrSpecVersion, attrType, attrSubject, attrTime,
		attrDataContentType, attrDataSchema, attrData, attrSequence,
		attrCorrelationID, attrCausationID, attrTraceParent, attrSchemaVersion:
		return true
	}
	return false
}

// AttributeError reports an envelope attribute that is missing or invalid.
// It matches ErrInvalidEnvelope with errors.Is.
type AttributeError struct {
	// Attribute is the CloudEvents attribute name, e.g. "source", or the
	// extension name for an entry of Envelope.Extensions.
	Attribute string
	// Reason says what is wrong with it.
	Reason string
}

// Error implements error.
func (e *AttributeError) Error() string {
	return "orchestrix: invalid envelope: attribute " + strconv.Quote(e.Attribute) + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalidEnvelope) true.
func (e *AttributeError) Is(target error) bool { return target == ErrInvalidEnvelope }

func attrErr(name, reason string) error {
	return &AttributeError{Attribute: name, Reason: reason}
}

// Validate reports whether e can be encoded as a valid CloudEvents 1.0
// event. It checks that:
//
//   - ID, Source and Type are non-blank; Subject, if set, is non-blank;
//   - Source is a URI reference and DataSchema, if set, an absolute URI;
//   - SpecVersion is "" (read as "1.0") or "1.0";
//   - DataContentType, if set, is an RFC 2046 media type;
//   - Time, if set, falls in the years 0000-9999 (RFC 3339) in UTC;
//   - SchemaVersion is between 0 (unset) and math.MaxInt32;
//   - every extension name is 1-20 lower-case ASCII letters or digits and
//     is not the name of an attribute Envelope has a field for;
//   - every string attribute and extension value is valid UTF-8.
//
// The first problem found is returned as an *AttributeError, which matches
// ErrInvalidEnvelope. Validate does not look at Data. It does not allocate
// when e is valid, and the common forms (ASCII attributes, a plain
// "type/subtype" media type, a Source made of unreserved characters and
// slashes) are checked without the general URI and media type parsers.
func (e Envelope) Validate() error {
	if err := checkRequired(attrID, e.ID); err != nil {
		return err
	}
	// A Source made of unreserved characters and slashes (the common
	// "/orchestrix/bank" form) is non-blank ASCII and a URI reference.
	if e.Source == "" || !isUnreservedPath(e.Source) {
		if err := checkRequired(attrSource, e.Source); err != nil {
			return err
		}
		if !isURIReference(e.Source) {
			return attrErr(attrSource, "not a URI reference")
		}
	}
	if e.SpecVersion != "" && e.SpecVersion != SpecVersion {
		return attrErr(attrSpecVersion, "must be "+strconv.Quote(SpecVersion)+", got "+strconv.Quote(e.SpecVersion))
	}
	if err := checkRequired(attrType, e.Type); err != nil {
		return err
	}
	if e.Subject != "" {
		if err := checkRequired(attrSubject, e.Subject); err != nil {
			return err
		}
	}
	if !e.Time.IsZero() {
		if sec := e.Time.Unix(); sec < minRFC3339Unix || sec >= endRFC3339Unix {
			y := e.Time.UTC().Year()
			return attrErr(attrTime, "year "+strconv.Itoa(y)+" outside the RFC 3339 range 0000-9999")
		}
	}
	if e.DataContentType != "" && e.DataContentType != "application/json" && !isMediaType(e.DataContentType) {
		return attrErr(attrDataContentType, "not an RFC 2046 media type")
	}
	if e.DataSchema != "" {
		if !validUTF8(e.DataSchema) {
			return attrErr(attrDataSchema, "not valid UTF-8")
		}
		if !isAbsoluteURI(e.DataSchema) {
			return attrErr(attrDataSchema, "not an absolute URI")
		}
	}
	if e.SchemaVersion < 0 || int64(e.SchemaVersion) > math.MaxInt32 {
		return attrErr(attrSchemaVersion, "out of range 0.."+strconv.Itoa(math.MaxInt32))
	}
	if !validUTF8(e.CorrelationID) {
		return attrErr(attrCorrelationID, "not valid UTF-8")
	}
	if !validUTF8(e.CausationID) {
		return attrErr(attrCausationID, "not valid UTF-8")
	}
	if !validUTF8(e.TraceParent) {
		return attrErr(attrTraceParent, "not valid UTF-8")
	}
	if len(e.Extensions) > 0 {
		for name, value := range e.Extensions {
			if err := checkExtensionName(name); err != nil {
				return err
			}
			if !validUTF8(value) {
				return attrErr(name, "value is not valid UTF-8")
			}
		}
	}
	return nil
}

// The Unix times of 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z: an
// instant t lies in the RFC 3339 years 0000-9999 exactly when
// minRFC3339Unix <= t.Unix() < endRFC3339Unix.
const (
	minRFC3339Unix = -62167219200
	endRFC3339Unix = 253402300800
)

// checkRequired checks a string attribute that, when present, must be
// valid UTF-8 and contain more than white space.
func checkRequired(name, value string) error {
	// Fast path: a first byte that is printable ASCII (not white space)
	// already proves the value is not blank.
	if len(value) > 0 && value[0] > ' ' && value[0] < utf8.RuneSelf {
		if !validUTF8(value) {
			return attrErr(name, "not valid UTF-8")
		}
		return nil
	}
	if strings.TrimSpace(value) == "" {
		return attrErr(name, "must be a non-empty string")
	}
	if !utf8.ValidString(value) {
		return attrErr(name, "not valid UTF-8")
	}
	return nil
}

func checkExtensionName(name string) error {
	if name == "" || len(name) > maxExtensionNameLen {
		return attrErr(name, "extension names must be 1-20 characters long")
	}
	for i := 0; i < len(name); i++ {
		if charClass[name[i]]&classExtName == 0 {
			return attrErr(name, "extension names must consist of lower-case letters a-z and digits 0-9")
		}
	}
	if isReservedName(name) {
		return attrErr(name, "reserved attribute name, set the Envelope field instead")
	}
	return nil
}

// validUTF8 reports whether s is valid UTF-8, checking 16 bytes at a time
// while s is ASCII.
func validUTF8(s string) bool {
	i := 0
	for ; i+16 <= len(s); i += 16 {
		lo := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		hi := uint64(s[i+8]) | uint64(s[i+9])<<8 | uint64(s[i+10])<<16 | uint64(s[i+11])<<24 |
			uint64(s[i+12])<<32 | uint64(s[i+13])<<40 | uint64(s[i+14])<<48 | uint64(s[i+15])<<56
		if (lo|hi)&0x8080808080808080 != 0 {
			return utf8.ValidString(s[i:])
		}
	}
	var or byte
	for ; i < len(s); i++ {
		or |= s[i]
	}
	return or < utf8.RuneSelf || utf8.ValidString(s[len(s)&^15:])
}

// Character classes of charClass.
const (
	// classToken marks the characters of an RFC 2045 token.
	classToken = 1 << iota
	// classPath marks RFC 3986 unreserved characters and '/'.
	classPath
	// classScheme marks the characters of an RFC 3986 scheme after its
	// first letter.
	classScheme
	// classExtName marks the characters of an extension attribute name.
	classExtName
)

// charClass maps every byte to the set of character classes it belongs to.
var charClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		lower, upper, digit := c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9'
		if c > ' ' && c < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c)) {
			t[c] |= classToken
		}
		if lower || upper || digit || strings.ContainsRune("-._~/", rune(c)) {
			t[c] |= classPath
		}
		if lower || upper || digit || strings.ContainsRune("+-.", rune(c)) {
			t[c] |= classScheme
		}
		if lower || digit {
			t[c] |= classExtName
		}
	}
	return t
}()

// isURIReference reports whether s parses as an RFC 3986 URI reference.
// Strings made only of unreserved characters and slashes (the common
// "/orchestrix/bank" form) are accepted without calling url.Parse.
func isURIReference(s string) bool {
	if isUnreservedPath(s) {
		return true
	}
	_, err := url.Parse(s)
	return err == nil
}

// isAbsoluteURI reports whether s parses as an absolute RFC 3986 URI. The
// common "scheme://host/path" form made of unreserved characters is
// accepted without calling url.Parse.
func isAbsoluteURI(s string) bool {
	if len(s) > 0 && (s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		i := 1
		for i < len(s) && charClass[s[i]]&classScheme != 0 {
			i++
		}
		if i < len(s) && s[i] == ':' && isUnreservedPath(s[i+1:]) {
			return true
		}
	}
	u, err := url.Parse(s)
	return err == nil && u.IsAbs()
}

// isUnreservedPath reports whether s consists only of RFC 3986 unreserved
// characters and slashes.
func isUnreservedPath(s string) bool {
	for i := 0; i < len(s); i++ {
		if charClass[s[i]]&classPath == 0 {
			return false
		}
	}
	return true
}

// isMediaType reports whether s is an RFC 2046 media type. A bare
// "type/subtype" of token characters is checked without allocating;
// anything else (parameters, white space) goes through mime.ParseMediaType.
func isMediaType(s string) bool {
	slash := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if charClass[c]&classToken != 0 {
			continue
		}
		if c == '/' && slash < 0 {
			slash = i
			continue
		}
		mt, _, err := mime.ParseMediaType(s)
		return err == nil && strings.Contains(mt, "/")
	}
	return slash > 0 && slash < len(s)-1
}
