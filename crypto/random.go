package crypto

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// RandomBytes returns n bytes from the operating system's CSPRNG.
func RandomBytes(n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("random bytes: negative length %d", n)
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// RandomToken returns n random bytes as unpadded URL-safe base64, fit for
// session IDs, CSRF tokens and URLs. Use at least 16 bytes for anything that
// must not be guessed.
func RandomToken(n int) (string, error) {
	b, err := RandomBytes(n)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Fingerprint returns HMAC-SHA256(key, value): equal values give equal
// fingerprints, so duplicates can be found without storing or decrypting the
// values, while someone holding only the fingerprints cannot test guesses
// without the key.
//
// key must be a KeySize-byte secret. Fingerprint panics otherwise, because a
// short key would silently make every fingerprint guessable; the key comes
// from configuration, so the panic shows at the first use after startup.
func Fingerprint(key, value []byte) []byte {
	if len(key) != KeySize {
		panic(fmt.Sprintf("crypto: fingerprint key is %d bytes, want %d", len(key), KeySize))
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(value)
	return mac.Sum(nil)
}
