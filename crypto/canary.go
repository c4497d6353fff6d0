package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"
)

const (
	canaryLabel = "keyledger canary v1"
	canarySize  = nonceSize + tagSize
)

// SealCanary returns a value that only k can open. The store keeps one per
// KEK and CheckCanary opens it at startup.
func SealCanary(k KEK) ([]byte, error) {
	if !k.valid() {
		return nil, errors.New("canary: zero KEK")
	}
	sealed := make([]byte, nonceSize, canarySize)
	if _, err := rand.Read(sealed); err != nil {
		return nil, err
	}
	var adBuf [64]byte
	return k.s.aead.Seal(sealed, sealed, nil, canaryAD(adBuf[:0], k.s.id)), nil
}

// CheckCanary returns nil if k opens sealed. Otherwise the error says that the
// master key does not open the canary, and matches ErrMalformed or ErrDecrypt.
func CheckCanary(k KEK, sealed []byte) error {
	if !k.valid() {
		return errors.New("canary: zero KEK")
	}
	if len(sealed) != canarySize {
		return fmt.Errorf("master key %v does not open the canary: %w: canary is %d bytes, want %d",
			k, ErrMalformed, len(sealed), canarySize)
	}
	var adBuf [64]byte
	if _, err := k.s.aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], canaryAD(adBuf[:0], k.s.id)); err != nil {
		return fmt.Errorf("master key %v does not open the canary (wrong master key, or the canary was altered): %w", k, ErrDecrypt)
	}
	return nil
}

func canaryAD(b []byte, kekID string) []byte {
	b = appendField(b, canaryLabel)
	return appendField(b, kekID)
}
