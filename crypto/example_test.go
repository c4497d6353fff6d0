package crypto_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/keyledger/keyledger/crypto"
)

// In production the key comes from KEYLEDGER_MASTER_KEY; GenerateKEK makes one.
const exampleKEK = "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k="

func ExampleKeyring_Seal() {
	kek, err := crypto.ParseKEK(exampleKEK)
	if err != nil {
		log.Fatal(err)
	}
	ring, err := crypto.NewKeyring(kek)
	if err != nil {
		log.Fatal(err)
	}

	// The subject names the row the envelope is stored in.
	env, err := ring.Seal("key/42/v/1", []byte("sk_live_123"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(env.KEKID == kek.ID(), len(env.WrappedDEK), len(env.Nonce), len(env.Ciphertext))

	plaintext, err := ring.Open("key/42/v/1", env)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", plaintext)

	// The same envelope copied into another row does not open.
	_, err = ring.Open("key/43/v/1", env)
	fmt.Println(errors.Is(err, crypto.ErrDecrypt))
	// Output:
	// true 60 24 27
	// sk_live_123
	// true
}

func ExampleKeyring_Rewrap() {
	oldKEK, _ := crypto.ParseKEK(exampleKEK)
	newB64, _ := crypto.GenerateKEK()
	newKEK, _ := crypto.ParseKEK(newB64)

	oldRing, _ := crypto.NewKeyring(oldKEK)
	env, _ := oldRing.Seal("key/42/v/1", []byte("sk_live_123"))

	// During rotation both keys are loaded and the new one is primary.
	ring, _ := crypto.NewKeyring(newKEK, oldKEK)
	moved, err := ring.Rewrap("key/42/v/1", env)
	if err != nil {
		log.Fatal(err)
	}

	// Afterwards the old key can be dropped.
	newOnly, _ := crypto.NewKeyring(newKEK)
	plaintext, err := newOnly.Open("key/42/v/1", moved)
	fmt.Printf("%s %v\n", plaintext, err)
	// Output: sk_live_123 <nil>
}

func ExampleParseKEK() {
	kek, err := crypto.ParseKEK(exampleKEK + "\n")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(kek)
	fmt.Printf("%#v\n", kek)

	_, err = crypto.ParseKEK("q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZw")
	fmt.Println(err)
	// Output:
	// KEK(9285a1236738f83f)
	// KEK(9285a1236738f83f)
	// want 32 bytes of base64, got 31 bytes
}

func ExampleCheckCanary() {
	kek, _ := crypto.ParseKEK(exampleKEK)
	canary, _ := crypto.SealCanary(kek)

	otherB64, _ := crypto.GenerateKEK()
	other, _ := crypto.ParseKEK(otherB64)

	fmt.Println(crypto.CheckCanary(kek, canary))
	fmt.Println(errors.Is(crypto.CheckCanary(other, canary), crypto.ErrDecrypt))
	// Output:
	// <nil>
	// true
}

func ExampleVerifyPassword() {
	params := crypto.DefaultPasswordParams()
	params.MemoryKiB = 64 // small, to keep the example fast; use the default

	phc, err := crypto.HashPassword("hunter2", params)
	if err != nil {
		log.Fatal(err)
	}
	ok, needsRehash, err := crypto.VerifyPassword("hunter2", phc, params)
	fmt.Println(ok, needsRehash, err)

	// Raising the cost later: the next sign-in reports that the stored hash
	// should be replaced.
	params.Time = 2
	ok, needsRehash, err = crypto.VerifyPassword("hunter2", phc, params)
	fmt.Println(ok, needsRehash, err)
	// Output:
	// true false <nil>
	// true true <nil>
}
