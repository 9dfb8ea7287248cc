package pii

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/orchestrix/orchestrix"
)

// tokenPrefix starts every encrypted field: "enc:v1:<key id>:<sealed>",
// where sealed is the unpadded URL-safe base64 of the 12-byte random
// nonce followed by the AES-256-GCM ciphertext and tag.
const tokenPrefix = "enc:v1:"

// aadPrefix is bound into every ciphertext together with the key id, so
// a field cannot be passed off as encrypted under another key.
const aadPrefix = "orchestrix/pii/v1/"

// Config configures a Codec.
type Config struct {
	// Keys stores the subjects' keys. Required.
	Keys KeyStore
	// Codec encodes the payload once its personal fields are encrypted,
	// and decodes it before they are decrypted. It must round-trip
	// strings and byte slices unchanged. Nil means orchestrix.JSONCodec.
	Codec orchestrix.Codec
}

// Codec is an orchestrix.SubjectCodec that encrypts the personal-data
// fields of payloads (see the package documentation) and otherwise
// delegates to another Codec. It is safe for concurrent use.
type Codec struct {
	keys  KeyStore
	inner orchestrix.Codec
}

var _ orchestrix.SubjectCodec = (*Codec)(nil)

// NewCodec returns a Codec for cfg. A nil Config.Keys is an error.
func NewCodec(cfg Config) (*Codec, error) {
	if cfg.Keys == nil {
		return nil, errors.New("pii: Config.Keys is nil")
	}
	if cfg.Codec == nil {
		cfg.Codec = orchestrix.JSONCodec{}
	}
	if _, ok := cfg.Codec.(orchestrix.SubjectCodec); ok {
		return nil, errors.New("pii: Config.Codec is itself a SubjectCodec; wrap the plain codec")
	}
	return &Codec{keys: cfg.Keys, inner: cfg.Codec}, nil
}

// Keys returns the codec's key store.
func (c *Codec) Keys() KeyStore { return c.keys }

// ContentType implements orchestrix.Codec: the wrapped codec's media type
// (encrypted fields are ordinary strings of that encoding).
func (c *Codec) ContentType() string { return c.inner.ContentType() }

// Encode implements orchestrix.Codec for a payload without a known
// subject: it succeeds when every non-empty personal field names its
// subject with a subject=Field tag option, and otherwise fails with
// ErrNoSubject rather than store personal data in the clear.
func (c *Codec) Encode(v any) ([]byte, error) {
	return c.EncodeFor(context.Background(), "", v)
}

// Decode implements orchestrix.Codec. Decryption does not need the
// subject (fields carry their key id), so it is DecodeFor with no
// subject.
func (c *Codec) Decode(data []byte, v any) error {
	return c.DecodeFor(context.Background(), "", data, v)
}

// EncodeFor implements orchestrix.SubjectCodec: it encodes a copy of v in
// which every non-empty personal field (other than the Erased marker) is
// encrypted with the active key of its subject — subject, or the value of
// the field named by the tag's subject= option — created on first use.
// v itself is not modified. A type without tagged fields costs one cache
// lookup on top of the wrapped codec.
//
// Errors: ErrErased when a subject has been erased, ErrNoSubject when a
// subject is empty, ErrUnsupportedField for tags that cannot be honoured,
// and the key store's or wrapped codec's errors.
func (c *Codec) EncodeFor(ctx context.Context, subject string, v any) ([]byte, error) {
	if v == nil {
		return c.inner.Encode(v)
	}
	rv := reflect.ValueOf(v)
	t := rv.Type()
	isPtr := t.Kind() == reflect.Pointer
	if isPtr {
		if rv.IsNil() {
			return c.inner.Encode(v)
		}
		t = t.Elem()
	}
	p := planFor(t)
	if p.err != nil {
		return nil, p.err
	}
	if p.root == nil {
		return c.inner.Encode(v)
	}
	cp := reflect.New(t)
	if isPtr {
		cp.Elem().Set(rv.Elem())
	} else {
		cp.Elem().Set(rv)
	}
	w := walker{c: c, ctx: ctx, subject: subject, encrypt: true}
	if err := w.walk(p.root, cp.Elem()); err != nil {
		return nil, err
	}
	if isPtr {
		return c.inner.Encode(cp.Interface())
	}
	return c.inner.Encode(cp.Elem().Interface())
}

// DecodeFor implements orchestrix.SubjectCodec: it decodes data into v
// with the wrapped codec, then decrypts every encrypted personal field of
// v in place. A field whose key was destroyed reads back as Erased; a
// field that is not encrypted (written before the field was tagged) is
// left as it is. subject is not needed and may be empty.
//
// Errors: a malformed or unauthentic field matches ErrCorruptField, a
// key id the store never issued ErrUnknownKey (both match
// orchestrix.ErrCorrupt); the key store's and wrapped codec's errors are
// returned as they are.
func (c *Codec) DecodeFor(ctx context.Context, subject string, data []byte, v any) error {
	if err := c.inner.Decode(data, v); err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil // the wrapped codec accepted it; nothing to decrypt
	}
	p := planFor(rv.Type().Elem())
	if p.err != nil {
		return p.err
	}
	if p.root == nil {
		return nil
	}
	w := walker{c: c, ctx: ctx, subject: subject}
	return w.walk(p.root, rv.Elem())
}

// walker encrypts (copying every pointer and slice on the way, so the
// caller's value is untouched) or decrypts (in place) one value.
type walker struct {
	c       *Codec
	ctx     context.Context
	subject string
	encrypt bool

	// One encode or decode usually meets one key: remember the last.
	lastSubject string
	lastID      string
	lastAEAD    cipher.AEAD
	lastErased  bool
}

// walk handles v, an addressable value of the type n describes.
func (w *walker) walk(n *node, v reflect.Value) error {
	switch n.kind {
	case reflect.Struct:
		for _, f := range n.fields {
			if err := w.field(f, v); err != nil {
				return fmt.Errorf("field %s: %w", f.name, err)
			}
		}
		for _, ch := range n.children {
			if err := w.walk(ch.node, v.Field(ch.index)); err != nil {
				return err
			}
		}
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		if w.encrypt {
			cp := reflect.New(v.Type().Elem())
			cp.Elem().Set(v.Elem())
			v.Set(cp)
		}
		return w.walk(n.elem, v.Elem())
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		if w.encrypt {
			cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(cp, v)
			v.Set(cp)
		}
		fallthrough
	case reflect.Array:
		for i := range v.Len() {
			if err := w.walk(n.elem, v.Index(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// field encrypts or decrypts one personal field of the struct s.
func (w *walker) field(f field, s reflect.Value) error {
	fv := s.Field(f.index)
	subject := w.subject
	if f.subject >= 0 {
		subject = s.Field(f.subject).String()
	}
	switch f.kind {
	case kindString:
		out, err := w.value(subject, fv.String())
		if err != nil {
			return err
		}
		fv.SetString(out)
	case kindBytes:
		if fv.Len() == 0 {
			return nil
		}
		out, err := w.value(subject, string(fv.Bytes()))
		if err != nil {
			return err
		}
		fv.SetBytes([]byte(out))
	case kindStrings:
		if fv.IsNil() {
			return nil
		}
		cp := reflect.MakeSlice(fv.Type(), fv.Len(), fv.Len())
		for i := range fv.Len() {
			out, err := w.value(subject, fv.Index(i).String())
			if err != nil {
				return err
			}
			cp.Index(i).SetString(out)
		}
		fv.Set(cp)
	}
	return nil
}

// value encrypts or decrypts one string. The empty string and the Erased
// marker are not personal data and pass through unchanged.
func (w *walker) value(subject, s string) (string, error) {
	if s == "" || s == Erased {
		return s, nil
	}
	if w.encrypt {
		return w.seal(subject, s)
	}
	return w.open(s)
}

func (w *walker) seal(subject, plain string) (string, error) {
	if subject == "" {
		return "", ErrNoSubject
	}
	if w.lastAEAD == nil || subject != w.lastSubject {
		k, err := w.c.keys.GetOrCreate(w.ctx, subject)
		if err != nil {
			return "", fmt.Errorf("key of subject %q: %w", subject, err)
		}
		aead, err := newAEAD(k)
		if err != nil {
			return "", err
		}
		w.lastSubject, w.lastID, w.lastAEAD = subject, k.ID, aead
	}
	sealed := w.lastAEAD.Seal(nil, nil, []byte(plain), []byte(aadPrefix+w.lastID))
	var b strings.Builder
	b.Grow(len(tokenPrefix) + len(w.lastID) + 1 + base64.RawURLEncoding.EncodedLen(len(sealed)))
	b.WriteString(tokenPrefix)
	b.WriteString(w.lastID)
	b.WriteByte(':')
	b.WriteString(base64.RawURLEncoding.EncodeToString(sealed))
	return b.String(), nil
}

func (w *walker) open(token string) (string, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return token, nil // stored in the clear before the field was tagged
	}
	id, body, ok := strings.Cut(rest, ":")
	if !ok || !ValidKeyID(id) {
		return "", fmt.Errorf("%w: malformed key id", ErrCorruptField)
	}
	sealed, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return "", fmt.Errorf("%w: ciphertext is not base64: %v", ErrCorruptField, err)
	}
	if w.lastID != id || (w.lastAEAD == nil && !w.lastErased) {
		k, err := w.c.keys.Get(w.ctx, id)
		switch {
		case errors.Is(err, ErrErased):
			w.lastID, w.lastAEAD, w.lastErased = id, nil, true
		case err != nil:
			return "", fmt.Errorf("key %q: %w", id, err)
		default:
			aead, err := newAEAD(k)
			if err != nil {
				return "", err
			}
			w.lastID, w.lastAEAD, w.lastErased = id, aead, false
		}
	}
	if w.lastErased {
		return Erased, nil
	}
	plain, err := w.lastAEAD.Open(nil, nil, sealed, []byte(aadPrefix+id))
	if err != nil {
		return "", fmt.Errorf("%w: key %q: %v", ErrCorruptField, id, err)
	}
	return string(plain), nil
}

// newAEAD returns AES-256-GCM with random nonces for k.
func newAEAD(k Key) (cipher.AEAD, error) {
	if len(k.Material) != KeySize {
		return nil, fmt.Errorf("%w: key %q has %d bytes of material, want %d", orchestrix.ErrCorrupt, k.ID, len(k.Material), KeySize)
	}
	block, err := aes.NewCipher(k.Material)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}
