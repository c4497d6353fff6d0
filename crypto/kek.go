package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size in bytes of a KEK and of a DEK.
const KeySize = chacha20poly1305.KeySize

const (
	kekIDLabel   = "keyledger kek id v1"
	wrapKeyLabel = "keyledger dek wrap key v2"
)

// KEK is a master key-encryption key. The zero KEK is not usable. Compare
// KEKs by ID: two KEKs parsed from the same key are not ==.
//
// The key lives behind a pointer so that printing a struct that embeds a KEK
// in an unexported field (where fmt cannot call String) shows an address, not
// the key bytes.
type KEK struct {
	s *kekState
}

type kekState struct {
	id string
	// The AEADs are built once per KEK: they are stateless and safe for
	// concurrent use, and building them per Open would cost allocations on
	// the hot path. aead (XChaCha20-Poly1305 under the KEK) seals canaries
	// and opens v1 wrapped DEKs; wrap (AES-256-GCM under a key derived
	// from the KEK) wraps DEKs.
	aead cipher.AEAD
	wrap cipher.AEAD
}

var (
	_ fmt.Stringer   = KEK{}
	_ fmt.GoStringer = KEK{}
	_ slog.LogValuer = KEK{}
)

// ParseKEK decodes a base64 master key. It accepts standard or URL-safe
// base64, padded or not, and ignores surrounding whitespace (key files usually
// end in a newline). Errors never include the input.
func ParseKEK(b64 string) (KEK, error) {
	s := strings.TrimSpace(b64)
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if !strings.HasSuffix(s, "=") {
		enc = enc.WithPadding(base64.NoPadding)
	}
	key, err := enc.DecodeString(s)
	if err != nil {
		// base64.CorruptInputError names only an offset, never the data.
		return KEK{}, fmt.Errorf("not valid base64: %v", err)
	}
	defer clear(key)
	if len(key) != KeySize {
		return KEK{}, fmt.Errorf("want %d bytes of base64, got %d bytes", KeySize, len(key))
	}
	return newKEK(key)
}

// GenerateKEK returns a new random master key as standard base64, ready for
// ParseKEK.
func GenerateKEK() (string, error) {
	key, err := RandomBytes(KeySize)
	if err != nil {
		return "", err
	}
	defer clear(key)
	return base64.StdEncoding.EncodeToString(key), nil
}

func newKEK(key []byte) (KEK, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return KEK{}, err
	}
	// The wrap key is derived, never the KEK itself: one key, one
	// algorithm.
	wrapKey, err := hkdf.Key(sha256.New, key, nil, wrapKeyLabel, KeySize)
	if err != nil {
		return KEK{}, err
	}
	defer clear(wrapKey)
	block, err := aes.NewCipher(wrapKey)
	if err != nil {
		return KEK{}, err
	}
	wrap, err := cipher.NewGCM(block)
	if err != nil {
		return KEK{}, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(kekIDLabel))
	id := hex.EncodeToString(mac.Sum(nil)[:8])
	return KEK{&kekState{id: id, aead: aead, wrap: wrap}}, nil
}

// ID identifies the key without revealing it. It is stable for a given key.
func (k KEK) ID() string {
	if k.s == nil {
		return ""
	}
	return k.s.id
}

func (k KEK) String() string {
	if k.s == nil {
		return "KEK(zero)"
	}
	return "KEK(" + k.s.id + ")"
}

// GoString keeps %#v from printing the struct, which would otherwise be the
// easiest way to leak a key into a log.
func (k KEK) GoString() string { return k.String() }

// LogValue keeps slog handlers from reflecting into the key.
func (k KEK) LogValue() slog.Value { return slog.StringValue(k.String()) }

func (k KEK) valid() bool { return k.s != nil }
