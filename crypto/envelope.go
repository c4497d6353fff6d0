package crypto

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Errors Open returns; callers tell them apart with errors.Is.
var (
	ErrDecrypt    = errors.New("decryption failed: data was tampered with, moved to another row, or sealed under another master key")
	ErrUnknownKEK = errors.New("sealed under a master key that is not loaded")
	ErrMalformed  = errors.New("malformed envelope")
)

const (
	nonceSize = chacha20poly1305.NonceSizeX
	tagSize   = chacha20poly1305.Overhead

	// A data key is wrapped with AES-256-GCM under a key derived from the
	// KEK (format v2). Envelopes written before that wrap it with
	// XChaCha20-Poly1305 under the KEK itself (v1); Open tells them apart
	// by length and opens both.
	gcmNonceSize     = 12
	wrappedDEKSize   = gcmNonceSize + KeySize + tagSize // v2: 60 bytes
	wrappedDEKSizeV1 = nonceSize + KeySize + tagSize    // v1: 72 bytes

	valueLabel = "keyledger value v1"
	dekLabel   = "keyledger dek v2"
	dekLabelV1 = "keyledger dek v1" // same length as dekLabel: dekADSize serves both
)

// Keyring is an immutable set of KEKs, one of which is primary. It is safe for
// concurrent use. Rotating the master key means building a new Keyring. Make
// one with NewKeyring; the zero Keyring is not usable.
type Keyring struct {
	keks []KEK // keks[0] is the primary
}

// NewKeyring returns a keyring that seals under primary and opens anything
// sealed under primary or others.
func NewKeyring(primary KEK, others ...KEK) (*Keyring, error) {
	keks := make([]KEK, 0, 1+len(others))
	for _, k := range append([]KEK{primary}, others...) {
		if !k.valid() {
			return nil, errors.New("keyring: zero KEK")
		}
		for _, seen := range keks {
			if seen.ID() == k.ID() {
				return nil, fmt.Errorf("keyring: %v given twice", k)
			}
		}
		keks = append(keks, k)
	}
	return &Keyring{keks: keks}, nil
}

// Primary returns the KEK that new seals and rewraps use.
func (r *Keyring) Primary() KEK { return r.keks[0] }

// KEKs returns every key in the ring, primary first.
func (r *Keyring) KEKs() []KEK { return append([]KEK(nil), r.keks...) }

// Has reports whether envelopes naming kekID can be opened.
func (r *Keyring) Has(kekID string) bool {
	_, ok := r.lookup(kekID)
	return ok
}

// A linear scan beats a map for the one or two keys a ring holds.
func (r *Keyring) lookup(kekID string) (KEK, bool) {
	for _, k := range r.keks {
		if k.s.id == kekID {
			return k, true
		}
	}
	return KEK{}, false
}

// Envelope is a sealed value as the store writes it, one column per field.
// See the package documentation for what each field is bound to.
type Envelope struct {
	KEKID      string
	WrappedDEK []byte // nonce || AEAD_KEK(DEK), 72 bytes
	Nonce      []byte // nonce of Ciphertext, 24 bytes
	Ciphertext []byte // AEAD_DEK(plaintext), len(plaintext)+16 bytes
}

// Seal encrypts plaintext under a fresh random DEK, wrapped under the primary
// KEK. subject names where the envelope will be stored (for example
// "key/<uuid>/v/3"); the same subject must be given to Open.
func (r *Keyring) Seal(subject string, plaintext []byte) (Envelope, error) {
	return r.seal(rand.Reader, subject, plaintext)
}

// seal takes its randomness as a parameter so tests can build fixed vectors.
func (r *Keyring) seal(random io.Reader, subject string, plaintext []byte) (Envelope, error) {
	if subject == "" {
		// An empty subject binds the value to nothing, which is always a
		// caller bug.
		return Envelope{}, errors.New("seal: empty subject")
	}
	kek := r.Primary()
	w := newWorkspace(0, subject, kek.s.id, dekLabel)
	defer clear(w.dek)
	if _, err := io.ReadFull(random, w.dek); err != nil {
		return Envelope{}, fmt.Errorf("seal: reading random DEK: %w", err)
	}

	// The three columns share one allocation; capped capacities keep an
	// append to one from writing into the next.
	out := make([]byte, nonceSize+wrappedDEKSize+len(plaintext)+tagSize)
	nonce := out[:nonceSize:nonceSize]
	if _, err := io.ReadFull(random, nonce); err != nil {
		return Envelope{}, fmt.Errorf("seal: reading random nonce: %w", err)
	}
	wrapped, err := wrapDEK(out[nonceSize:nonceSize:nonceSize+wrappedDEKSize], random, kek, w.dek, w.dekAD)
	if err != nil {
		return Envelope{}, err
	}
	aead, err := chacha20poly1305.NewX(w.dek)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{
		KEKID:      kek.s.id,
		WrappedDEK: wrapped,
		Nonce:      nonce,
		Ciphertext: aead.Seal(out[nonceSize+wrappedDEKSize:nonceSize+wrappedDEKSize], nonce, plaintext, w.valueAD),
	}, nil
}

// wrapDEK appends a fresh nonce and the sealed DEK to dst, which must be
// empty with room for wrappedDEKSize bytes.
func wrapDEK(dst []byte, random io.Reader, kek KEK, dek, ad []byte) ([]byte, error) {
	dst = dst[:gcmNonceSize]
	if _, err := io.ReadFull(random, dst); err != nil {
		return nil, fmt.Errorf("seal: reading random nonce: %w", err)
	}
	return kek.s.wrap.Seal(dst, dst, dek, ad), nil
}

// Open authenticates and decrypts env, which must have been sealed for
// subject. Errors match ErrMalformed, ErrUnknownKEK or ErrDecrypt with
// errors.Is. Open never panics, whatever the envelope holds.
func (r *Keyring) Open(subject string, env Envelope) ([]byte, error) {
	if err := checkLengths(env); err != nil {
		return nil, err
	}
	kek, ok := r.lookup(env.KEKID)
	if !ok {
		return nil, unknownKEK(env.KEKID)
	}
	n := len(env.Ciphertext) - tagSize
	w := newWorkspace(n, subject, kek.s.id, wrapLabel(env))
	defer clear(w.dek)
	if err := unwrapDEK(w.dek, kek, env.WrappedDEK, w.dekAD); err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(w.dek)
	if err != nil {
		return nil, err
	}
	plaintext, err := aead.Open(w.head[:0], env.Nonce, env.Ciphertext, w.valueAD)
	if err != nil {
		return nil, fmt.Errorf("%w (the data key unwrapped but the value did not open with it)", ErrDecrypt)
	}
	return plaintext, nil
}

// Rewrap moves env to the primary KEK by unwrapping its DEK and wrapping it
// again. Nonce and Ciphertext are returned as they are (sharing memory with
// env), which is what makes master-key rotation cheap and safe to resume: a
// row is either fully old or fully new. An envelope already under the primary
// is returned unchanged. Rewrap does not decrypt the value.
func (r *Keyring) Rewrap(subject string, env Envelope) (Envelope, error) {
	primary := r.Primary()
	if env.KEKID == primary.s.id {
		return env, nil
	}
	if err := checkLengths(env); err != nil {
		return Envelope{}, err
	}
	kek, ok := r.lookup(env.KEKID)
	if !ok {
		return Envelope{}, unknownKEK(env.KEKID)
	}
	w := newWorkspace(0, subject, kek.s.id, wrapLabel(env))
	defer clear(w.dek)
	if err := unwrapDEK(w.dek, kek, env.WrappedDEK, w.dekAD); err != nil {
		return Envelope{}, err
	}
	ad := dekAD(make([]byte, 0, dekADSize(subject, primary.s.id)), dekLabel, subject, primary.s.id)
	wrapped, err := wrapDEK(make([]byte, 0, wrappedDEKSize), rand.Reader, primary, w.dek, ad)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{
		KEKID:      primary.s.id,
		WrappedDEK: wrapped,
		Nonce:      env.Nonce,
		Ciphertext: env.Ciphertext,
	}, nil
}

// workspace is the scratch memory of one Seal, Open or Rewrap, carved out of a
// single allocation. Open runs on every reveal and its two ciphers cost only
// a few hundred nanoseconds for an API key, so five small allocations (DEK,
// two associated-data strings grown by append, plaintext) were worth folding
// into one.
type workspace struct {
	head    []byte // len(head) bytes for the caller (Open's plaintext)
	dek     []byte
	dekAD   []byte
	valueAD []byte
}

func newWorkspace(head int, subject, kekID, label string) workspace {
	dekADLen, valueADLen := dekADSize(subject, kekID), valueADSize(subject)
	buf := make([]byte, head+KeySize+dekADLen+valueADLen)
	// Each piece's capacity ends where the next begins, so the AEADs, which
	// append into their dst, can never spill into a neighbour.
	i, j, k := head, head+KeySize, head+KeySize+dekADLen
	return workspace{
		head:    buf[:i:i],
		dek:     buf[i:j:j],
		dekAD:   dekAD(buf[j:j:k], label, subject, kekID),
		valueAD: valueAD(buf[k:k:len(buf)], subject),
	}
}

func checkLengths(env Envelope) error {
	switch {
	case len(env.WrappedDEK) != wrappedDEKSize && len(env.WrappedDEK) != wrappedDEKSizeV1:
		return fmt.Errorf("%w: wrapped data key is %d bytes, want %d (or %d, format v1)", ErrMalformed, len(env.WrappedDEK), wrappedDEKSize, wrappedDEKSizeV1)
	case len(env.Nonce) != nonceSize:
		return fmt.Errorf("%w: nonce is %d bytes, want %d", ErrMalformed, len(env.Nonce), nonceSize)
	case len(env.Ciphertext) < tagSize:
		return fmt.Errorf("%w: ciphertext is %d bytes, want at least %d", ErrMalformed, len(env.Ciphertext), tagSize)
	}
	return nil
}

func unknownKEK(id string) error {
	// The ID comes from the database; keep a corrupted one from flooding logs.
	if len(id) > 32 {
		id = id[:32] + "..."
	}
	return fmt.Errorf("%w: KEK %q", ErrUnknownKEK, id)
}

// wrapLabel is the associated-data label of env's wrapped DEK, by format.
func wrapLabel(env Envelope) string {
	if len(env.WrappedDEK) == wrappedDEKSizeV1 {
		return dekLabelV1
	}
	return dekLabel
}

// unwrapDEK opens wrapped, which the caller has length-checked, into dek.
func unwrapDEK(dek []byte, kek KEK, wrapped, ad []byte) error {
	aead, n := kek.s.wrap, gcmNonceSize
	if len(wrapped) == wrappedDEKSizeV1 {
		aead, n = kek.s.aead, nonceSize
	}
	if _, err := aead.Open(dek[:0], wrapped[:n], wrapped[n:], ad); err != nil {
		return fmt.Errorf("%w (the data key did not unwrap under %v)", ErrDecrypt, kek)
	}
	return nil
}

func valueAD(b []byte, subject string) []byte {
	b = appendField(b, valueLabel)
	return appendField(b, subject)
}

func dekAD(b []byte, label, subject, kekID string) []byte {
	b = appendField(b, label)
	b = appendField(b, subject)
	return appendField(b, kekID)
}

func valueADSize(subject string) int { return 2*8 + len(valueLabel) + len(subject) }

func dekADSize(subject, kekID string) int { return 3*8 + len(dekLabel) + len(subject) + len(kekID) }

func appendField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}
