package crypto

import (
	"bytes"
	"errors"
	"testing"
)

type genuine struct {
	subject   string
	env       Envelope
	plaintext []byte
}

// genuineEnvelopes are sealed with fixed keys and fixed randomness, so every
// fuzz worker derives the same set and can tell a real envelope from a forgery.
func genuineEnvelopes(tb testing.TB, ringA, ringB *Keyring) []genuine {
	var out []genuine
	for i, g := range []struct {
		ring      *Keyring
		subject   string
		plaintext string
	}{
		{ringA, "key/1/v/1", "sk_live_0123456789abcdef"},
		{ringA, "key/1/v/2", ""},
		{ringB, "key/2/v/1", "x"},
	} {
		env, err := g.ring.seal(detReader(byte(i)), g.subject, []byte(g.plaintext))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, genuine{g.subject, env, []byte(g.plaintext)})
	}
	return out
}

func FuzzOpen(f *testing.F) {
	a, b := testKEK(f, 1), testKEK(f, 2)
	ringA, ringB := testRing(f, a, b), testRing(f, b, a)
	known := genuineEnvelopes(f, ringA, ringB)
	for _, g := range known {
		e := g.env
		f.Add(g.subject, e.KEKID, e.WrappedDEK, e.Nonce, e.Ciphertext)
		f.Add(g.subject+"x", e.KEKID, e.WrappedDEK, e.Nonce, e.Ciphertext)
		f.Add(g.subject, e.KEKID, e.WrappedDEK[:len(e.WrappedDEK)-1], e.Nonce, e.Ciphertext)
	}
	f.Add(known[0].subject, known[0].env.KEKID, known[0].env.WrappedDEK, known[1].env.Nonce, known[1].env.Ciphertext)
	f.Add("", "", []byte(nil), []byte(nil), []byte(nil))

	f.Fuzz(func(t *testing.T, subject, kekID string, wrapped, nonce, ciphertext []byte) {
		env := Envelope{KEKID: kekID, WrappedDEK: wrapped, Nonce: nonce, Ciphertext: ciphertext}
		isGenuine := func() *genuine {
			for i, g := range known {
				if g.subject == subject && g.env.KEKID == kekID && bytes.Equal(g.env.WrappedDEK, wrapped) &&
					bytes.Equal(g.env.Nonce, nonce) && bytes.Equal(g.env.Ciphertext, ciphertext) {
					return &known[i]
				}
			}
			return nil
		}
		for _, r := range []*Keyring{ringA, ringB} {
			pt, err := r.Open(subject, env)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKEK) && !errors.Is(err, ErrDecrypt) {
					t.Fatalf("Open error matches no sentinel: %v", err)
				}
				if pt != nil {
					t.Fatal("Open returned plaintext with an error")
				}
				if g := isGenuine(); g != nil {
					t.Fatalf("genuine envelope failed to open: %v", err)
				}
				continue
			}
			g := isGenuine()
			if g == nil {
				t.Fatalf("forged envelope opened to %q", pt)
			}
			if !bytes.Equal(pt, g.plaintext) {
				t.Fatalf("Open = %q, want %q", pt, g.plaintext)
			}

			moved, err := r.Rewrap(subject, env)
			if err != nil {
				t.Fatalf("Rewrap of a genuine envelope: %v", err)
			}
			if pt2, err := r.Open(subject, moved); err != nil || !bytes.Equal(pt2, pt) {
				t.Fatalf("rewrapped envelope: Open = %q, %v", pt2, err)
			}
		}
		// Rewrap must refuse forgeries too (it does not look at the value, so
		// only a forged wrapped DEK or KEKID is interesting).
		if moved, err := ringA.Rewrap(subject, env); err == nil && kekID != a.ID() {
			found := false
			for _, g := range known {
				if g.subject == subject && g.env.KEKID == kekID && bytes.Equal(g.env.WrappedDEK, wrapped) {
					found = true
				}
			}
			if !found {
				t.Fatalf("Rewrap accepted a forged wrapped DEK: %+v", moved)
			}
		}
	})
}

func FuzzVerifyPassword(f *testing.F) {
	const password = "correct horse battery staple"
	phc, err := HashPassword(password, testParams)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(password, phc)
	f.Add(password, "$argon2id$v=19$m=64,t=2,p=1$a2V5bGVkZ2VyLXNhbHQxNg$JwWwA6mazL+bj36nImmfSVNv0MVLFfR9s0qqF6THdYQ")
	f.Add(password, "$argon2id$v=19$m=256,t=3,p=4$a2V5bGVkZ2VyLXNhbHQxNg$0Bf0SmbEa5B2SdJ6gocJtWbz7PiddKvR")
	f.Add("wrong", phc)
	f.Add(password, "$argon2id$v=19$m=1048576,t=100,p=64$a2V5bGVkZ2VyLXNhbHQxNg$0Bf0SmbEa5B2SdJ6gocJtWbz7PiddKvR")
	f.Add("", "")

	f.Fuzz(func(t *testing.T, pw, phc string) {
		p, salt, hash, perr := parsePHC(phc)
		if perr == nil {
			if got := formatPHC(p, salt, hash); got != phc {
				t.Fatalf("accepted a non-canonical PHC string:\n%q\nre-encodes as\n%q", phc, got)
			}
			if err := p.check(); err != nil {
				t.Fatalf("parsePHC accepted out-of-bounds params: %v", err)
			}
			// Within bounds but too slow to run thousands of times a second.
			if uint64(p.MemoryKiB)*uint64(p.Time) > 4096 {
				return
			}
		}
		ok, rehash, err := VerifyPassword(pw, phc, testParams)
		if (err == nil) != (perr == nil) {
			t.Fatalf("VerifyPassword err = %v, parsePHC err = %v", err, perr)
		}
		if err != nil && (ok || rehash) {
			t.Fatal("VerifyPassword reported success with an error")
		}
		if !ok && rehash {
			t.Fatal("needsRehash without a match")
		}
		if ok && pw != password {
			t.Fatalf("password %q accepted", pw)
		}
	})
}
