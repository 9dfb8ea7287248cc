package pii

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"

	"github.com/orchestrix/orchestrix"
)

// KeySize is the length in bytes of every key's material (AES-256).
const KeySize = 32

// MaxSubjectLen is the longest subject id a KeyStore must accept, in bytes.
const MaxSubjectLen = 1024

// Key is the encryption key of one data subject.
type Key struct {
	// ID names the key inside every encrypted field it produced, so the
	// field can be decrypted without knowing its subject. It is 1-64
	// characters of the URL-safe base64 alphabet (A-Z a-z 0-9 - _) and
	// reveals nothing about the subject.
	ID string
	// Material is the KeySize-byte AES-256 key.
	Material []byte
}

// NewKey returns a fresh key: KeySize random bytes from crypto/rand and
// a random 128-bit id. KeyStore implementations use it to create keys.
func NewKey() Key {
	var id [16]byte
	material := make([]byte, KeySize)
	rand.Read(id[:])    // never fails (crypto/rand, Go 1.24+)
	rand.Read(material) // never fails
	return Key{ID: base64.RawURLEncoding.EncodeToString(id[:]), Material: material}
}

// ValidKeyID reports whether id is a well-formed key id: 1-64 characters
// of the URL-safe base64 alphabet. A key store may report an ill-formed
// id as ErrUnknownKey without looking it up.
func ValidKeyID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// CheckSubject reports whether subject is usable as a key store subject:
// non-empty and at most MaxSubjectLen bytes. The error matches
// ErrNoSubject or ErrInvalidSubject.
func CheckSubject(subject string) error {
	switch {
	case subject == "":
		return ErrNoSubject
	case len(subject) > MaxSubjectLen:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidSubject, len(subject), MaxSubjectLen)
	}
	return nil
}

// KeyStore keeps the keys of data subjects. Destroying a subject's keys
// (Delete) is what erases its personal data: every field encrypted with
// them becomes unreadable for good.
//
// Implementations must be safe for concurrent use, honour the context of
// every call, and return errors matching orchestrix.ErrClosed after Close.
// The conformance suite in package piitest checks these rules.
type KeyStore interface {
	// GetOrCreate returns the active key of subject, creating a new one
	// (NewKey) and storing it durably before returning when the subject
	// has none. Concurrent first calls for one subject return the same
	// key. A subject erased by Delete yields ErrErased: no personal data
	// can be encrypted for it any more. An empty subject yields
	// ErrNoSubject, an overlong one ErrInvalidSubject.
	GetOrCreate(ctx context.Context, subject string) (Key, error)

	// Get returns the key with the given id. A key destroyed by Delete
	// yields ErrErased; an id the store never issued yields an error
	// matching ErrUnknownKey (and orchestrix.ErrCorrupt). The returned
	// Material belongs to the caller.
	Get(ctx context.Context, id string) (Key, error)

	// Delete destroys every key of subject and marks the subject erased,
	// so later GetOrCreate calls for it and Get calls for its key ids
	// yield ErrErased. It returns once the destruction is durable.
	// Deleting a subject that has no key marks it erased as well;
	// deleting it again is a no-op.
	Delete(ctx context.Context, subject string) error

	// Close releases the store. Later calls return errors matching
	// orchestrix.ErrClosed. Close is idempotent.
	Close() error
}

// BatchDeleter is implemented by a KeyStore that erases many subjects more
// cheaply together than one by one (pii/bolt removes the key bytes from
// its file in one pass, pii/postgres commits once and vacuums once).
// Eraser.EraseMany uses it when the store has it.
type BatchDeleter interface {
	// DeleteMany does what Delete does for every subject in subjects, as
	// one operation: it returns once every erasure is durable. It checks
	// every subject first (ErrNoSubject, ErrInvalidSubject) and erases
	// nothing when one is bad. After an error, some subjects may be
	// erased; calling it again is safe.
	DeleteMany(ctx context.Context, subjects []string) error
}

// MemKeyStore is an in-memory KeyStore for tests and examples. NOT FOR
// PRODUCTION: its keys vanish with the process, which erases every
// subject's personal data. Delete overwrites the key material with zeros
// before dropping it. The zero value is not usable; call NewMemKeyStore.
type MemKeyStore struct {
	mu       sync.RWMutex
	closed   bool
	subjects map[string]string // subject → active key id, "" once erased
	keys     map[string][]byte // key id → material, nil once erased
}

var _ KeyStore = (*MemKeyStore)(nil)

// NewMemKeyStore returns an empty in-memory key store.
func NewMemKeyStore() *MemKeyStore {
	return &MemKeyStore{subjects: make(map[string]string), keys: make(map[string][]byte)}
}

func (s *MemKeyStore) check(ctx context.Context) error {
	if s.closed {
		return orchestrix.ErrClosed
	}
	return ctx.Err()
}

// GetOrCreate implements KeyStore.
func (s *MemKeyStore) GetOrCreate(ctx context.Context, subject string) (Key, error) {
	if err := CheckSubject(subject); err != nil {
		return Key{}, err
	}
	s.mu.RLock()
	k, err := s.lookupSubject(ctx, subject)
	s.mu.RUnlock()
	if err == nil || !errors.Is(err, orchestrix.ErrNotFound) {
		return k, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err = s.lookupSubject(ctx, subject)
	if err == nil || !errors.Is(err, orchestrix.ErrNotFound) {
		return k, err
	}
	k = NewKey()
	s.subjects[subject] = k.ID
	s.keys[k.ID] = k.Material
	return Key{ID: k.ID, Material: append([]byte(nil), k.Material...)}, nil
}

// lookupSubject returns subject's active key; orchestrix.ErrNotFound when
// it has none. Callers hold s.mu.
func (s *MemKeyStore) lookupSubject(ctx context.Context, subject string) (Key, error) {
	if err := s.check(ctx); err != nil {
		return Key{}, err
	}
	id, ok := s.subjects[subject]
	switch {
	case !ok:
		return Key{}, orchestrix.ErrNotFound
	case id == "":
		return Key{}, ErrErased
	}
	return Key{ID: id, Material: append([]byte(nil), s.keys[id]...)}, nil
}

// Get implements KeyStore.
func (s *MemKeyStore) Get(ctx context.Context, id string) (Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return Key{}, err
	}
	m, ok := s.keys[id]
	switch {
	case !ok:
		return Key{}, fmt.Errorf("%w: %q", ErrUnknownKey, id)
	case m == nil:
		return Key{}, ErrErased
	}
	return Key{ID: id, Material: append([]byte(nil), m...)}, nil
}

// Delete implements KeyStore.
func (s *MemKeyStore) Delete(ctx context.Context, subject string) error {
	if err := CheckSubject(subject); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	if id := s.subjects[subject]; id != "" {
		clear(s.keys[id])
		s.keys[id] = nil
	}
	s.subjects[subject] = ""
	return nil
}

// Close implements KeyStore.
func (s *MemKeyStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
