package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/orchestrix/orchestrix"
)

// streamTemplate names the stream of an imported CloudEvent: literal text
// and {attribute} references (subject, type, source, id, or an extension).
type streamTemplate struct {
	parts []tmplPart
}

type tmplPart struct {
	text string
	attr bool
}

func parseStreamTemplate(s string) (streamTemplate, error) {
	var t streamTemplate
	if s == "" {
		return t, errors.New("empty template")
	}
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			if strings.IndexByte(s, '}') >= 0 {
				return t, fmt.Errorf("unmatched '}' in %q", s)
			}
			t.parts = append(t.parts, tmplPart{text: s})
			break
		}
		if i > 0 {
			if strings.IndexByte(s[:i], '}') >= 0 {
				return t, fmt.Errorf("unmatched '}' in %q", s)
			}
			t.parts = append(t.parts, tmplPart{text: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return t, fmt.Errorf("unclosed '{' in %q", s)
		}
		name := s[i+1 : i+j]
		if name == "" {
			return t, errors.New("empty {} in template")
		}
		t.parts = append(t.parts, tmplPart{text: name, attr: true})
		s = s[i+j+1:]
	}
	return t, nil
}

// expand returns the stream of e; an attribute the event lacks is an
// error.
func (t streamTemplate) expand(e orchestrix.Envelope) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if !p.attr {
			b.WriteString(p.text)
			continue
		}
		var v string
		switch p.text {
		case "subject":
			v = e.Subject
		case "type":
			v = e.Type
		case "source":
			v = e.Source
		case "id":
			v = e.ID
		case "correlationid":
			v = e.CorrelationID
		default:
			v = e.Extensions[p.text]
		}
		if v == "" {
			return "", fmt.Errorf("no %q attribute for the stream template", p.text)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func (im *importer) readLines(src io.Reader) error {
	im.fileVers = make(map[string]uint64)
	br := bufio.NewReaderSize(src, 1<<16)
	if im.cloudEvents {
		// A batch is a JSON array; anything else is one event per line.
		for {
			b, err := br.Peek(1)
			if err != nil {
				break
			}
			if b[0] == '[' {
				return im.readBatch(br)
			}
			if b[0] != ' ' && b[0] != '\t' && b[0] != '\r' && b[0] != '\n' {
				break
			}
			_, _ = br.ReadByte()
		}
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		raw := sc.Bytes()
		im.read += int64(len(raw)) + 1
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		if err := im.add("line", lineNo, raw); err != nil {
			// What was read before the bad line stays imported.
			return errors.Join(im.flush(), err)
		}
	}
	if err := sc.Err(); err != nil {
		return errors.Join(im.flush(), fmt.Errorf("line %d: %w", lineNo+1, err))
	}
	return im.flush()
}

// readBatch reads CloudEvents JSON arrays (one or more in a row); events
// are numbered from 1 across them.
func (im *importer) readBatch(r io.Reader) error {
	dec := json.NewDecoder(r)
	n := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return im.flush()
		}
		if err != nil {
			return errors.Join(im.flush(), fmt.Errorf("event %d: %w", n+1, err))
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return errors.Join(im.flush(), fmt.Errorf("event %d: want a JSON array of CloudEvents", n+1))
		}
		for dec.More() {
			n++
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return errors.Join(im.flush(), fmt.Errorf("event %d: %w", n, err))
			}
			im.read = dec.InputOffset()
			if err := im.add("event", n, raw); err != nil {
				return errors.Join(im.flush(), err)
			}
		}
		if _, err := dec.Token(); err != nil {
			return errors.Join(im.flush(), fmt.Errorf("event %d: %w", n, err))
		}
	}
}

// add parses one line (or batch element, unit "event") and adds it to
// the batch, flushing the batch when the new event does not continue it.
func (im *importer) add(unit string, lineNo int, raw []byte) error {
	if !utf8.Valid(raw) {
		return fmt.Errorf("%s %d: not valid UTF-8 (refusing rather than rewriting it)", unit, lineNo)
	}
	var stream string
	var version uint64
	var ev orchestrix.Envelope
	if im.cloudEvents {
		if err := ev.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("%s %d: %w", unit, lineNo, err)
		}
		var err error
		if stream, err = im.tmpl.expand(ev); err != nil {
			return fmt.Errorf("%s %d: event %q: %w", unit, lineNo, ev.ID, err)
		}
		version = ev.Sequence
		if version == 0 {
			version = im.fileVers[stream] + 1
		}
		im.fileVers[stream] = version
	} else {
		var l recordLine
		if err := json.Unmarshal(raw, &l); err != nil {
			return fmt.Errorf("%s %d: %w", unit, lineNo, err)
		}
		if l.Stream == "" || l.Version == 0 || len(l.Event) == 0 {
			return fmt.Errorf("%s %d: want an object with \"stream\", \"version\" (from 1) and \"event\"", unit, lineNo)
		}
		if err := ev.UnmarshalJSON(l.Event); err != nil {
			return fmt.Errorf("%s %d: stream %q version %d: event: %w", unit, lineNo, l.Stream, l.Version, err)
		}
		if ev.Sequence != 0 && ev.Sequence != l.Version {
			return fmt.Errorf("%s %d: stream %q: version %d but the event's sequence is %d", unit, lineNo, l.Stream, l.Version, ev.Sequence)
		}
		stream, version = l.Stream, l.Version
	}
	// encoding/json turns an unpaired surrogate escape into U+FFFD: refuse
	// a stream name that gained one.
	if strings.ContainsRune(stream, utf8.RuneError) && !bytes.ContainsRune(raw, utf8.RuneError) &&
		!bytes.Contains(bytes.ToLower(raw), []byte(`\ufffd`)) {
		return fmt.Errorf("%s %d: stream name %q is not valid UTF-8 (an unpaired surrogate escape?)", unit, lineNo, stream)
	}
	if len(im.batch) > 0 && (stream != im.stream || version != im.firstVer+uint64(len(im.batch)) ||
		len(im.batch) >= maxImportBatch || im.batchBytes+len(raw) > 4<<20) {
		if err := im.flush(); err != nil {
			return err
		}
	}
	if len(im.batch) == 0 {
		im.stream, im.firstVer, im.batchLine, im.batchBytes = stream, version, lineNo, 0
	}
	im.batch = append(im.batch, ev)
	im.batchBytes += len(raw)
	return nil
}
