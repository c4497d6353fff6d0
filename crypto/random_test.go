package crypto

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func TestRandomBytes(t *testing.T) {
	for _, n := range []int{0, 1, 16, 32, 1000} {
		b, err := RandomBytes(n)
		if err != nil || len(b) != n {
			t.Errorf("RandomBytes(%d) = %d bytes, %v", n, len(b), err)
		}
	}
	a, _ := RandomBytes(32)
	b, _ := RandomBytes(32)
	if bytes.Equal(a, b) {
		t.Error("RandomBytes repeated itself")
	}
	if _, err := RandomBytes(-1); err == nil {
		t.Error("RandomBytes(-1) succeeded")
	}
}

func TestRandomToken(t *testing.T) {
	tok, err := RandomToken(32)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) != 32 {
		t.Errorf("token %q decodes to %d bytes, %v", tok, len(raw), err)
	}
	if other, _ := RandomToken(32); other == tok {
		t.Error("RandomToken repeated itself")
	}
	if _, err := RandomToken(-1); err == nil {
		t.Error("RandomToken(-1) succeeded")
	}
}

func TestFingerprint(t *testing.T) {
	k1, k2 := testKeyBytes(1), testKeyBytes(2)
	v := []byte("sk_live_123")
	mac := hmac.New(sha256.New, k1)
	mac.Write(v)
	if got := Fingerprint(k1, v); !bytes.Equal(got, mac.Sum(nil)) {
		t.Errorf("Fingerprint = %x, want HMAC-SHA256 %x", got, mac.Sum(nil))
	}
	if !bytes.Equal(Fingerprint(k1, v), Fingerprint(k1, bytes.Clone(v))) {
		t.Error("equal values, different fingerprints")
	}
	if bytes.Equal(Fingerprint(k1, v), Fingerprint(k2, v)) {
		t.Error("different keys, same fingerprint")
	}
	if bytes.Equal(Fingerprint(k1, v), Fingerprint(k1, []byte("sk_live_124"))) {
		t.Error("different values, same fingerprint")
	}
	for _, n := range []int{0, 16, 31, 33} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Fingerprint with a %d-byte key did not panic", n)
				}
			}()
			Fingerprint(make([]byte, n), v)
		}()
	}
}
