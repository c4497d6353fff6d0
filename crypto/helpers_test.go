package crypto

import (
	"crypto/sha256"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"testing"
)

// testKeyBytes returns a fixed key per n, so that fuzz workers, which each
// rebuild their keyring, agree on what a genuine envelope is.
func testKeyBytes(n int) []byte {
	sum := sha256.Sum256(fmt.Appendf(nil, "keyledger test kek %d", n))
	return sum[:]
}

func testKEK(tb testing.TB, n int) KEK {
	tb.Helper()
	k, err := newKEK(testKeyBytes(n))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func testRing(tb testing.TB, primary KEK, others ...KEK) *Keyring {
	tb.Helper()
	r, err := NewKeyring(primary, others...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// detReader is a deterministic stand-in for crypto/rand, for fixed vectors.
func detReader(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mathrand.NewChaCha8(s)
}

func clone(env Envelope) Envelope {
	return Envelope{
		KEKID:      env.KEKID,
		WrappedDEK: append([]byte(nil), env.WrappedDEK...),
		Nonce:      append([]byte(nil), env.Nonce...),
		Ciphertext: append([]byte(nil), env.Ciphertext...),
	}
}

func mustSeal(tb testing.TB, r *Keyring, subject string, plaintext []byte) Envelope {
	tb.Helper()
	env, err := r.Seal(subject, plaintext)
	if err != nil {
		tb.Fatal(err)
	}
	return env
}
