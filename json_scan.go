package orchestrix

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonMember is one top-level member of a JSON object as read by
// scanObject: its raw value text and, for string values, the unquoted
// string.
type jsonMember struct {
	name  string
	raw   []byte // the value's JSON text, aliasing the input
	str   string // the unquoted value when isStr
	isStr bool
}

var errJSONSyntax = errors.New("malformed JSON")

// scanObject reads data, which must be exactly one JSON object (with
// optional surrounding white space), and calls fn for each member in
// order. String values are unquoted as encoding/json does (invalid UTF-8
// and lone surrogates become U+FFFD); other values are checked with
// json.Valid. Member names are compared as written, case-sensitively.
func scanObject(data []byte, fn func(m jsonMember) error) error {
	s := jsonScanner{b: data}
	s.ws()
	if !s.eat('{') {
		return syntaxErr(&s, "expected a JSON object")
	}
	s.ws()
	if !s.eat('}') {
		for {
			s.ws()
			if s.peek() != '"' {
				return syntaxErr(&s, "expected a member name")
			}
			name, _, err := s.str()
			if err != nil {
				return err
			}
			s.ws()
			if !s.eat(':') {
				return syntaxErr(&s, "expected ':'")
			}
			s.ws()
			m := jsonMember{name: name}
			start := s.i
			if s.peek() == '"' {
				m.str, _, err = s.str()
				m.isStr = true
			} else {
				err = s.skipValue()
			}
			if err != nil {
				return err
			}
			m.raw = s.b[start:s.i]
			if err := fn(m); err != nil {
				return err
			}
			s.ws()
			if s.eat('}') {
				break
			}
			if !s.eat(',') {
				return syntaxErr(&s, "expected ',' or '}'")
			}
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return syntaxErr(&s, "data after the JSON object")
	}
	return nil
}

type jsonScanner struct {
	b []byte
	i int
}

func syntaxErr(s *jsonScanner, msg string) error {
	return &jsonSyntaxError{msg: msg, offset: s.i}
}

type jsonSyntaxError struct {
	msg    string
	offset int
}

func (e *jsonSyntaxError) Error() string {
	return errJSONSyntax.Error() + ": " + e.msg + " at offset " + strconv.Itoa(e.offset)
}

func (e *jsonSyntaxError) Unwrap() error { return errJSONSyntax }

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a JSON string starting at its opening quote and returns it
// unquoted; raw is its content between the quotes.
func (s *jsonScanner) str() (v string, raw []byte, err error) {
	s.i++ // opening quote
	start := s.i
	plain := true // no escapes, all ASCII
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			if plain || (!hasByte(raw, '\\') && utf8.Valid(raw)) {
				return string(raw), raw, nil
			}
			v, err := unquote(raw)
			if err != nil {
				return "", nil, &jsonSyntaxError{msg: err.Error(), offset: start}
			}
			return v, raw, nil
		case c == '\\':
			plain = false
			s.i += 2
		case c < 0x20:
			return "", nil, syntaxErr(s, "control character in string")
		case c >= utf8.RuneSelf:
			plain = false
			s.i++
		default:
			s.i++
		}
	}
	return "", nil, syntaxErr(s, "unterminated string")
}

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// unquote decodes the content of a JSON string the way encoding/json
// does: escapes resolved, invalid UTF-8 and unpaired surrogates replaced
// by U+FFFD.
func unquote(b []byte) (string, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\':
			if i+1 >= len(b) {
				return "", errors.New("truncated escape")
			}
			i++
			switch b[i] {
			case '"', '\\', '/':
				out = append(out, b[i])
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(b[i+1:])
				if !ok {
					return "", errors.New(`invalid \u escape`)
				}
				i += 5 // past the 'u' and its four digits
				if utf16.IsSurrogate(r) {
					// Only a valid pair makes a rune; a lone surrogate is
					// replaced and whatever follows it read on its own.
					dec := utf8.RuneError
					if i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
						if r2, ok := hex4(b[i+2:]); ok {
							if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
								dec = d
								i += 6
							}
						}
					}
					r = dec
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				return "", errors.New("invalid escape character")
			}
			i++
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			out = utf8.AppendRune(out, r) // RuneError for invalid UTF-8
			i += size
		}
	}
	return string(out), nil
}

// hex4 decodes the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// skipValue moves past a non-string JSON value and checks it with
// json.Valid (which also bounds nesting depth).
func (s *jsonScanner) skipValue() error {
	start := s.i
	switch s.peek() {
	case '{', '[':
		depth := 0
	scan:
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				s.i++
				for s.i < len(s.b) && s.b[s.i] != '"' {
					if s.b[s.i] == '\\' {
						s.i++
					}
					s.i++
				}
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					break scan
				}
			}
			s.i++
		}
		if depth != 0 || s.i > len(s.b) {
			s.i = min(s.i, len(s.b))
			return syntaxErr(s, "unterminated object or array")
		}
	default:
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				goto done
			}
			s.i++
		}
	done:
	}
	if s.i == start || !json.Valid(s.b[start:s.i]) {
		return &jsonSyntaxError{msg: "invalid value", offset: start}
	}
	return nil
}
