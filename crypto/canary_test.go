package crypto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCanary(t *testing.T) {
	a, b := testKEK(t, 1), testKEK(t, 2)
	sealed, err := SealCanary(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckCanary(a, sealed); err != nil {
		t.Fatalf("right key: %v", err)
	}
	again, err := SealCanary(a)
	if err != nil {
		t.Fatalf("second canary: %v", err)
	}
	if bytes.Equal(again, sealed) {
		t.Error("two canaries are identical")
	}

	err = CheckCanary(b, sealed)
	if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "does not open the canary") {
		t.Errorf("other key: err = %v", err)
	}
	if !strings.Contains(err.Error(), b.ID()) {
		t.Errorf("error %q does not name the key that failed", err)
	}

	for i := range sealed {
		tampered := append([]byte(nil), sealed...)
		tampered[i] ^= 0x01
		if err := CheckCanary(a, tampered); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("byte %d flipped: err = %v, want ErrDecrypt", i, err)
		}
	}
	for n := 0; n < len(sealed); n++ {
		if err := CheckCanary(a, sealed[:n]); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "does not open the canary") {
			t.Fatalf("%d bytes: err = %v, want ErrMalformed", n, err)
		}
	}
	if err := CheckCanary(a, append(sealed, 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("extended: err = %v, want ErrMalformed", err)
	}

	// A wrapped DEK is sealed under the same KEK, but the labels keep it from
	// passing as a canary, whatever its length.
	env := mustSeal(t, testRing(t, a), "key/1/v/1", nil)
	if err := CheckCanary(a, env.WrappedDEK); err == nil {
		t.Error("a wrapped DEK passed as a canary")
	}

	if _, err := SealCanary(KEK{}); err == nil {
		t.Error("SealCanary(zero KEK) succeeded")
	}
	if err := CheckCanary(KEK{}, sealed); err == nil {
		t.Error("CheckCanary(zero KEK) succeeded")
	}
}
