package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	r := testRing(t, testKEK(t, 1))
	for _, n := range []int{0, 1, 64, 8 << 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			plaintext := bytes.Repeat([]byte{0xa5}, n)
			env := mustSeal(t, r, "key/1/v/1", plaintext)
			if env.KEKID != r.Primary().ID() {
				t.Errorf("KEKID = %q, want primary %q", env.KEKID, r.Primary().ID())
			}
			if len(env.WrappedDEK) != 60 || len(env.Nonce) != 24 || len(env.Ciphertext) != n+16 {
				t.Errorf("lengths = %d, %d, %d; want 60, 24, %d", len(env.WrappedDEK), len(env.Nonce), len(env.Ciphertext), n+16)
			}
			got, err := r.Open("key/1/v/1", env)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plaintext) {
				t.Errorf("Open = %x, want %x", got, plaintext)
			}
		})
	}
}

func TestSealIsFresh(t *testing.T) {
	r := testRing(t, testKEK(t, 1))
	a := mustSeal(t, r, "key/1/v/1", []byte("same value"))
	b := mustSeal(t, r, "key/1/v/1", []byte("same value"))
	if bytes.Equal(a.Nonce, b.Nonce) {
		t.Error("two seals share a nonce")
	}
	if bytes.Equal(a.Ciphertext, b.Ciphertext) {
		t.Error("two seals share a ciphertext")
	}
	if bytes.Equal(a.WrappedDEK, b.WrappedDEK) || bytes.Equal(a.WrappedDEK[24:], b.WrappedDEK[24:]) {
		t.Error("two seals share a wrapped DEK")
	}
}

func TestSealEmptySubject(t *testing.T) {
	r := testRing(t, testKEK(t, 1))
	if _, err := r.Seal("", []byte("x")); err == nil {
		t.Error("Seal with empty subject succeeded")
	}
}

func TestFlipEveryByte(t *testing.T) {
	r := testRing(t, testKEK(t, 1))
	const subject = "key/1/v/1"
	env := mustSeal(t, r, subject, bytes.Repeat([]byte("k"), 64))
	fields := []struct {
		name string
		get  func(*Envelope) []byte
	}{
		{"WrappedDEK", func(e *Envelope) []byte { return e.WrappedDEK }},
		{"Nonce", func(e *Envelope) []byte { return e.Nonce }},
		{"Ciphertext", func(e *Envelope) []byte { return e.Ciphertext }},
	}
	for _, f := range fields {
		for i := range f.get(&env) {
			for _, mask := range []byte{0x01, 0x80, 0xff} {
				e := clone(env)
				f.get(&e)[i] ^= mask
				if _, err := r.Open(subject, e); !errors.Is(err, ErrDecrypt) {
					t.Fatalf("%s[%d]^%#x: err = %v, want ErrDecrypt", f.name, i, mask, err)
				}
			}
		}
	}
	if _, err := r.Open(subject, env); err != nil {
		t.Fatalf("original no longer opens: %v", err)
	}
}

func TestBinding(t *testing.T) {
	a, b, c := testKEK(t, 1), testKEK(t, 2), testKEK(t, 3)
	r := testRing(t, a, b)
	onA := mustSeal(t, r, "key/1/v/1", []byte("value one"))
	onA2 := mustSeal(t, r, "key/2/v/1", []byte("value two"))
	onA3 := mustSeal(t, r, "key/1/v/1", []byte("value one"))

	tests := []struct {
		name    string
		subject string
		env     Envelope
		want    error
	}{
		{"other subject", "key/2/v/1", onA, ErrDecrypt},
		{"other version", "key/1/v/2", onA, ErrDecrypt},
		{"subject prefix", "key/1/v/", onA, ErrDecrypt},
		{"empty subject", "", onA, ErrDecrypt},
		{"ciphertext moved to another row", "key/2/v/1",
			Envelope{onA2.KEKID, onA2.WrappedDEK, onA.Nonce, onA.Ciphertext}, ErrDecrypt},
		{"wrapped DEK moved to another row", "key/2/v/1",
			Envelope{onA.KEKID, onA.WrappedDEK, onA2.Nonce, onA2.Ciphertext}, ErrDecrypt},
		{"ciphertexts swapped, same subject", "key/1/v/1",
			Envelope{onA.KEKID, onA.WrappedDEK, onA3.Nonce, onA3.Ciphertext}, ErrDecrypt},
		{"ciphertexts swapped, nonce kept", "key/1/v/1",
			Envelope{onA.KEKID, onA.WrappedDEK, onA.Nonce, onA3.Ciphertext}, ErrDecrypt},
		{"relabelled to another loaded KEK", "key/1/v/1",
			Envelope{b.ID(), onA.WrappedDEK, onA.Nonce, onA.Ciphertext}, ErrDecrypt},
		{"relabelled to an unknown KEK", "key/1/v/1",
			Envelope{c.ID(), onA.WrappedDEK, onA.Nonce, onA.Ciphertext}, ErrUnknownKEK},
		{"KEKID emptied", "key/1/v/1",
			Envelope{"", onA.WrappedDEK, onA.Nonce, onA.Ciphertext}, ErrUnknownKEK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Open(tt.subject, tt.env)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("Open returned %q alongside an error", got)
			}
		})
	}
}

func TestWrongKEK(t *testing.T) {
	a, b := testKEK(t, 1), testKEK(t, 2)
	env := mustSeal(t, testRing(t, a), "key/1/v/1", []byte("v"))
	if _, err := testRing(t, b).Open("key/1/v/1", env); !errors.Is(err, ErrUnknownKEK) {
		t.Fatalf("err = %v, want ErrUnknownKEK", err)
	}
}

func TestRotation(t *testing.T) {
	oldK, newK := testKEK(t, 1), testKEK(t, 2)
	const subject = "key/1/v/1"
	oldEnv := mustSeal(t, testRing(t, oldK), subject, []byte("old value"))

	both := testRing(t, newK, oldK)
	newEnv := mustSeal(t, both, subject, []byte("new value"))
	for _, env := range []Envelope{oldEnv, newEnv} {
		if _, err := both.Open(subject, env); err != nil {
			t.Fatalf("ring with both keys: %v", err)
		}
	}

	before := clone(oldEnv)
	moved, err := both.Rewrap(subject, oldEnv)
	if err != nil {
		t.Fatal(err)
	}
	if moved.KEKID != newK.ID() {
		t.Errorf("rewrapped KEKID = %q, want %q", moved.KEKID, newK.ID())
	}
	if !bytes.Equal(moved.Nonce, before.Nonce) || !bytes.Equal(moved.Ciphertext, before.Ciphertext) {
		t.Error("Rewrap changed Nonce or Ciphertext")
	}
	if bytes.Equal(moved.WrappedDEK, before.WrappedDEK) {
		t.Error("Rewrap kept the old wrapped DEK")
	}
	if !bytes.Equal(oldEnv.WrappedDEK, before.WrappedDEK) || oldEnv.KEKID != before.KEKID {
		t.Error("Rewrap modified its input")
	}

	onlyNew := testRing(t, newK)
	got, err := onlyNew.Open(subject, moved)
	if err != nil || string(got) != "old value" {
		t.Fatalf("new key alone: Open = %q, %v", got, err)
	}
	if _, err := testRing(t, oldK).Open(subject, moved); !errors.Is(err, ErrUnknownKEK) {
		t.Errorf("old key alone: err = %v, want ErrUnknownKEK", err)
	}

	again, err := onlyNew.Rewrap(subject, moved)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.WrappedDEK, moved.WrappedDEK) {
		t.Error("Rewrap of an envelope already under the primary changed it")
	}

	if _, err := both.Rewrap("key/2/v/1", oldEnv); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rewrap under the wrong subject: err = %v, want ErrDecrypt", err)
	}
	if _, err := onlyNew.Rewrap(subject, oldEnv); !errors.Is(err, ErrUnknownKEK) {
		t.Errorf("Rewrap from an unloaded key: err = %v, want ErrUnknownKEK", err)
	}
	bad := clone(oldEnv)
	bad.WrappedDEK = bad.WrappedDEK[:len(bad.WrappedDEK)-1]
	if _, err := both.Rewrap(subject, bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("Rewrap of a truncated envelope: err = %v, want ErrMalformed", err)
	}
}

func TestTruncatedAndExtended(t *testing.T) {
	r := testRing(t, testKEK(t, 1))
	const subject = "key/1/v/1"
	env := mustSeal(t, r, subject, bytes.Repeat([]byte("k"), 64))
	fields := []struct {
		name string
		ptr  func(*Envelope) *[]byte
	}{
		{"WrappedDEK", func(e *Envelope) *[]byte { return &e.WrappedDEK }},
		{"Nonce", func(e *Envelope) *[]byte { return &e.Nonce }},
		{"Ciphertext", func(e *Envelope) *[]byte { return &e.Ciphertext }},
	}
	for _, f := range fields {
		full := *f.ptr(&env)
		for n := 0; n <= len(full)+1; n++ {
			e := clone(env)
			switch {
			case n < len(full):
				*f.ptr(&e) = full[:n:n]
			case n == len(full):
				continue
			default:
				*f.ptr(&e) = append(append([]byte(nil), full...), 0)
			}
			_, err := r.Open(subject, e)
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrDecrypt) {
				t.Fatalf("%s of %d bytes: err = %v", f.name, n, err)
			}
			// A truncated wrapped DEK or nonce can never be authentic, so it
			// is caught before any decryption.
			if f.name != "Ciphertext" && !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s of %d bytes: err = %v, want ErrMalformed", f.name, n, err)
			}
		}
		e := clone(env)
		*f.ptr(&e) = nil
		if _, err := r.Open(subject, e); !errors.Is(err, ErrMalformed) {
			t.Errorf("nil %s: err = %v, want ErrMalformed", f.name, err)
		}
	}
	if _, err := r.Open(subject, Envelope{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero Envelope: err = %v, want ErrMalformed", err)
	}
	if _, err := r.Open("", Envelope{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero Envelope, empty subject: err = %v, want ErrMalformed", err)
	}
}

func TestNewKeyring(t *testing.T) {
	a, b, c := testKEK(t, 1), testKEK(t, 2), testKEK(t, 3)
	r := testRing(t, b, a, c)
	if r.Primary() != b {
		t.Errorf("Primary = %v, want %v", r.Primary(), b)
	}
	keks := r.KEKs()
	if len(keks) != 3 || keks[0] != b || keks[1] != a || keks[2] != c {
		t.Errorf("KEKs = %v, want [%v %v %v]", keks, b, a, c)
	}
	keks[0] = c
	if r.Primary() != b {
		t.Error("changing the slice from KEKs changed the keyring")
	}
	for _, k := range []KEK{a, b, c} {
		if !r.Has(k.ID()) {
			t.Errorf("Has(%s) = false", k.ID())
		}
	}
	if r.Has(testKEK(t, 4).ID()) || r.Has("") {
		t.Error("Has reports a key that is not loaded")
	}

	if _, err := NewKeyring(a, b, testKEK(t, 1)); err == nil {
		t.Error("NewKeyring accepted the same key twice")
	}
	if _, err := NewKeyring(a, a); err == nil {
		t.Error("NewKeyring accepted the primary twice")
	}
	if _, err := NewKeyring(KEK{}); err == nil {
		t.Error("NewKeyring accepted a zero KEK")
	}
	if _, err := NewKeyring(a, KEK{}); err == nil {
		t.Error("NewKeyring accepted a zero KEK among others")
	}
}

// goldenEnvelopeV1 was sealed by seal(detReader(7), "key/0190c3d2-7a4e-7c1b-9f00-000000000001/v/3",
// "sk_live_0123456789abcdef") under testKEK(1) in format v1 (DEK wrapped
// with XChaCha20-Poly1305 under the KEK). Rows already in databases must
// keep opening: if this test fails, old rows no longer open. The vector was
// also opened by an independent implementation (Python cryptography's
// ChaCha20Poly1305 plus a hand-written HChaCha20) following only the
// package documentation.
var goldenEnvelopeV1 = struct {
	subject, plaintext                   string
	kekID, wrappedDEK, nonce, ciphertext string
}{
	subject:    "key/0190c3d2-7a4e-7c1b-9f00-000000000001/v/3",
	plaintext:  "sk_live_0123456789abcdef",
	kekID:      "5ac45b665d08189c",
	wrappedDEK: "4f8f789f44ebb18eaefca77286015ec24861aac04906dddf6d7a6f88eb80b50c9abb04abd23d51e47658f6d05f8b65a750e5d4e386625770d8cedb19c9a343a5450f8a7b2278794f",
	nonce:      "33703b7158a07611ce9337376b0e4da88e4a270c7028bc88",
	ciphertext: "758a25ba58bbda1859e91d08fdf8b90b2512d945c2bd3cc067a9d281d5ae9b8e7e0c7d9af8ce3981",
}

// goldenEnvelope is the same seal in the current format (v2: DEK wrapped
// with AES-256-GCM under HKDF-SHA256(KEK, "keyledger dek wrap key v2")).
// If sealing it gives other bytes, the on-disk format changed.
var goldenEnvelope = struct {
	subject, plaintext                   string
	kekID, wrappedDEK, nonce, ciphertext string
}{
	subject:    goldenEnvelopeV1.subject,
	plaintext:  goldenEnvelopeV1.plaintext,
	kekID:      "5ac45b665d08189c",
	wrappedDEK: "4f8f789f44ebb18eaefca77216b47f97b8fe1372bde1e5f73e014f71fff14b96a1d5e27c74471e0aa5d17fd8858d50158359ca9aecfb57e0c29643a1",
	nonce:      "33703b7158a07611ce9337376b0e4da88e4a270c7028bc88",
	ciphertext: "758a25ba58bbda1859e91d08fdf8b90b2512d945c2bd3cc067a9d281d5ae9b8e7e0c7d9af8ce3981",
}

func goldenV1Envelope(t testing.TB) Envelope {
	t.Helper()
	g := goldenEnvelopeV1
	env := Envelope{KEKID: g.kekID}
	var err error
	for _, f := range []struct {
		dst *[]byte
		hex string
	}{{&env.WrappedDEK, g.wrappedDEK}, {&env.Nonce, g.nonce}, {&env.Ciphertext, g.ciphertext}} {
		if *f.dst, err = hex.DecodeString(f.hex); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

func TestGoldenEnvelope(t *testing.T) {
	g := goldenEnvelope
	r := testRing(t, testKEK(t, 1))
	env, err := r.seal(detReader(7), g.subject, []byte(g.plaintext))
	if err != nil {
		t.Fatal(err)
	}
	got := [...]string{env.KEKID, hex.EncodeToString(env.WrappedDEK), hex.EncodeToString(env.Nonce), hex.EncodeToString(env.Ciphertext)}
	want := [...]string{g.kekID, g.wrappedDEK, g.nonce, g.ciphertext}
	if got != want {
		t.Errorf("sealing the golden vector gave\nkekID:      %q,\nwrappedDEK: %q,\nnonce:      %q,\nciphertext: %q,", got[0], got[1], got[2], got[3])
	}

	fixed := Envelope{KEKID: g.kekID}
	fixed.WrappedDEK, _ = hex.DecodeString(g.wrappedDEK)
	fixed.Nonce, _ = hex.DecodeString(g.nonce)
	fixed.Ciphertext, _ = hex.DecodeString(g.ciphertext)
	pt, err := r.Open(g.subject, fixed)
	if err != nil || string(pt) != g.plaintext {
		t.Errorf("Open(golden) = %q, %v", pt, err)
	}
}

// TestGoldenEnvelopeV1: rows written before format v2 still open, fail
// closed when tampered with or moved, and a master-key rotation moves them
// to v2.
func TestGoldenEnvelopeV1(t *testing.T) {
	g := goldenEnvelopeV1
	oldK, newK := testKEK(t, 1), testKEK(t, 2)
	r := testRing(t, oldK)
	v1 := goldenV1Envelope(t)
	pt, err := r.Open(g.subject, v1)
	if err != nil || string(pt) != g.plaintext {
		t.Fatalf("Open(v1 golden) = %q, %v", pt, err)
	}
	if _, err := r.Open(g.subject+"x", v1); !errors.Is(err, ErrDecrypt) {
		t.Errorf("v1 under another subject: %v, want ErrDecrypt", err)
	}
	bad := clone(v1)
	bad.WrappedDEK[30] ^= 1
	if _, err := r.Open(g.subject, bad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("v1 with a flipped bit in the wrapped DEK: %v, want ErrDecrypt", err)
	}
	moved, err := testRing(t, newK, oldK).Rewrap(g.subject, v1)
	if err != nil {
		t.Fatal(err)
	}
	if len(moved.WrappedDEK) != 60 || !bytes.Equal(moved.Ciphertext, v1.Ciphertext) {
		t.Fatalf("rewrapped v1: wrapped DEK %d bytes (want 60), ciphertext kept %v", len(moved.WrappedDEK), bytes.Equal(moved.Ciphertext, v1.Ciphertext))
	}
	if pt, err := testRing(t, newK).Open(g.subject, moved); err != nil || string(pt) != g.plaintext {
		t.Errorf("v1 rewrapped to v2 under the new key: %q, %v", pt, err)
	}
	// A v1 wrapped DEK relabelled as v2 by length cannot be opened: the
	// two wraps use different keys and labels.
	cut := clone(v1)
	cut.WrappedDEK = cut.WrappedDEK[12:]
	if _, err := r.Open(g.subject, cut); !errors.Is(err, ErrDecrypt) {
		t.Errorf("v1 wrapped DEK cut to v2 length: %v, want ErrDecrypt", err)
	}
}

// TestBindingAfterRewrap: a re-wrapped envelope is bound to its subject and
// master key as tightly as a fresh one. Two users' secrets, moved to the
// new key, then swapped whole or in parts, relabelled or altered, must
// fail to open rather than open to the other's secret.
func TestBindingAfterRewrap(t *testing.T) {
	oldK, newK := testKEK(t, 1), testKEK(t, 2)
	both := testRing(t, newK, oldK)
	rewrap := func(subject, secret string) Envelope {
		t.Helper()
		env, err := both.Rewrap(subject, mustSeal(t, testRing(t, oldK), subject, []byte(secret)))
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	u1, u2 := rewrap("user/1/totp", "secret one"), rewrap("user/2/totp", "secret two")
	flipped := clone(u1)
	flipped.WrappedDEK[len(flipped.WrappedDEK)/2] ^= 1
	tests := []struct {
		name    string
		subject string
		env     Envelope
		want    error
	}{
		{"whole envelopes swapped (1 in row 2)", "user/2/totp", u1, ErrDecrypt},
		{"whole envelopes swapped (2 in row 1)", "user/1/totp", u2, ErrDecrypt},
		{"wrapped DEK swapped", "user/1/totp", Envelope{u1.KEKID, u2.WrappedDEK, u1.Nonce, u1.Ciphertext}, ErrDecrypt},
		{"ciphertext swapped", "user/1/totp", Envelope{u1.KEKID, u1.WrappedDEK, u2.Nonce, u2.Ciphertext}, ErrDecrypt},
		// With the new key only, the old one is simply unknown.
		{"relabelled to the old key", "user/1/totp", Envelope{oldK.ID(), u1.WrappedDEK, u1.Nonce, u1.Ciphertext}, ErrDecrypt},
		{"wrapped DEK altered", "user/1/totp", flipped, ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, r := range map[string]*Keyring{"both keys": both, "new key only": testRing(t, newK)} {
				want := tt.want
				if name == "new key only" && tt.env.KEKID == oldK.ID() {
					want = ErrUnknownKEK
				}
				got, err := r.Open(tt.subject, tt.env)
				if !errors.Is(err, want) || got != nil {
					t.Errorf("%s: Open = %q, %v; want nothing and %v", name, got, err, want)
				}
			}
		})
	}
	for subject, want := range map[string]string{"user/1/totp": "secret one", "user/2/totp": "secret two"} {
		env := u1
		if subject == "user/2/totp" {
			env = u2
		}
		if got, err := testRing(t, newK).Open(subject, env); err != nil || string(got) != want {
			t.Errorf("%s, untouched, with the new key only: %q, %v", subject, got, err)
		}
		if _, err := testRing(t, oldK).Open(subject, env); !errors.Is(err, ErrUnknownKEK) {
			t.Errorf("%s with the old key only: %v, want ErrUnknownKEK", subject, err)
		}
	}
}
