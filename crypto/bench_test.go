package crypto

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

const benchSubject = "key/0190c3d2-7a4e-7c1b-9f00-000000000001/v/3"

// A typical API key.
var benchValue = bytes.Repeat([]byte("k"), 64)

func BenchmarkSeal(b *testing.B) {
	r := testRing(b, testKEK(b, 1))
	b.SetBytes(int64(len(benchValue)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Seal(benchSubject, benchValue); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	r := testRing(b, testKEK(b, 1))
	env := mustSeal(b, r, benchSubject, benchValue)
	b.SetBytes(int64(len(benchValue)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Open(benchSubject, env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawAEADOpen is the floor Open is measured against: one
// XChaCha20-Poly1305 open of the same value, with the AEAD built beforehand.
func BenchmarkRawAEADOpen(b *testing.B) {
	key := testKeyBytes(9)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	ct := aead.Seal(nil, nonce, benchValue, nil)
	b.SetBytes(int64(len(benchValue)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := aead.Open(nil, nonce, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawAEADOpenWithAD is a fairer floor: a single-layer design (value
// sealed straight under the KEK) would still bind the subject, so it pays for
// building and authenticating the same associated data.
func BenchmarkRawAEADOpenWithAD(b *testing.B) {
	aead, err := chacha20poly1305.NewX(testKeyBytes(9))
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	ct := aead.Seal(nil, nonce, benchValue, valueAD(nil, benchSubject))
	b.SetBytes(int64(len(benchValue)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := aead.Open(nil, nonce, ct, valueAD(make([]byte, 0, 96), benchSubject)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawAEADOpenTwice is the hard floor for any envelope of two
// XChaCha20-Poly1305 layers: unwrap a DEK, then open the value with it, with
// no associated data and nothing else. Against BenchmarkRawAEADOpen it is
// already 2x, which is why Open cannot be.
func BenchmarkRawAEADOpenTwice(b *testing.B) {
	kek, err := chacha20poly1305.NewX(testKeyBytes(9))
	if err != nil {
		b.Fatal(err)
	}
	dek := testKeyBytes(10)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	wrapped := kek.Seal(nil, nonce, dek, nil)
	dekAEAD, _ := chacha20poly1305.NewX(dek)
	ct := dekAEAD.Seal(nil, nonce, benchValue, nil)
	b.SetBytes(int64(len(benchValue)))
	b.ReportAllocs()
	var buf [KeySize]byte
	for b.Loop() {
		k, err := kek.Open(buf[:0], nonce, wrapped, nil)
		if err != nil {
			b.Fatal(err)
		}
		aead, _ := chacha20poly1305.NewX(k)
		if _, err := aead.Open(nil, nonce, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRewrap(b *testing.B) {
	oldK, newK := testKEK(b, 1), testKEK(b, 2)
	env := mustSeal(b, testRing(b, oldK), benchSubject, benchValue)
	r := testRing(b, newK, oldK)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Rewrap(benchSubject, env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHashPassword(b *testing.B) {
	p := DefaultPasswordParams()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HashPassword("correct horse battery staple", p); err != nil {
			b.Fatal(err)
		}
	}
}
