// Package crypto holds keyledger's cryptography: envelope encryption of
// secrets at rest, master-key canaries, keyed fingerprints, random tokens and
// password hashing. It knows nothing about keys, users or storage; callers
// give it bytes and a subject string and store what it returns.
//
// # Envelope scheme
//
// A master key-encryption key (KEK) comes from configuration. Its ID is
//
//	hex(HMAC-SHA256(KEK, "keyledger kek id v1")[:8])
//
// so a configuration can never attach the wrong ID to a key, and the ID
// reveals nothing about the key.
//
// Every [Keyring.Seal] draws a fresh random 256-bit data-encryption key (DEK)
// and produces an [Envelope]:
//
//	Nonce      = 24 random bytes
//	Ciphertext = XChaCha20-Poly1305(DEK, Nonce, plaintext, AD = "keyledger value v1", subject)
//	WrappedDEK = n || AES-256-GCM(W, n, DEK, AD = "keyledger dek v2", subject, KEKID)
//	             where n is 12 random bytes and W = HKDF-SHA256(KEK, no salt, "keyledger dek wrap key v2", 32 bytes)
//	KEKID      = ID of the primary KEK
//
// Format v1, written before, wrapped the DEK as
//
//	WrappedDEK = n || XChaCha20-Poly1305(KEK, n, DEK, AD = "keyledger dek v1", subject, KEKID)   (n: 24 random bytes)
//
// A v1 wrapped DEK is 72 bytes and a v2 one 60, so Open tells them apart by
// length and opens both; a master-key rotation ([Keyring.Rewrap]) writes v2.
// v2 exists for speed: the unwrap runs on every reveal, and AES-GCM with a
// precomputed key schedule opens 32 bytes in a fraction of what
// XChaCha20-Poly1305's extra HChaCha20 step costs (go test -bench Open).
//
// What is bound to what, and why:
//
//   - The subject (for example "key/<uuid>/v/3") is bound into both the value
//     and the wrapped DEK. Someone who can write to the database cannot move a
//     ciphertext or a wrapped DEK to another row, or an old version's
//     envelope onto a newer version, without Open failing.
//   - The wrapped DEK also binds the KEK ID, so relabelling a row to another
//     loaded KEK fails as an authentication error rather than relying on the
//     keys merely being different.
//   - The value does not bind the KEK ID. That is what lets [Keyring.Rewrap]
//     move a row to a new master key by rewriting only WrappedDEK and KEKID,
//     leaving Nonce and Ciphertext byte-for-byte untouched.
//   - The labels separate the uses of one key: a canary can never be accepted
//     as a wrapped DEK, nor a wrapped DEK as a canary.
//
// Nonces are random. For the value that is trivially safe: each DEK seals
// exactly one message. The wrap key W seals one DEK per [Keyring.Seal] and
// per [Keyring.Rewrap] under its KEK; with 96-bit random nonces NIST SP
// 800-38D allows 2^32 seals under one key, four billion sealed values,
// which no team reaches (and a master-key rotation starts a new W). Lengths are checked
// exactly before decrypting (a wrapped DEK is 12+32+16 or, v1, 24+32+16
// bytes); a fixed short size also limits multi-key (partitioning) attacks
// on Poly1305 and GCM, neither of which is key-committing.
//
// What this layer cannot detect: replacing a whole row with an older copy of
// the same row (same subject), or deleting it. Those are the store's concern.
//
// # Master-key rotation
//
// A keyring cannot know where its envelopes are stored, so rotation is the
// caller's loop: load the new KEK as primary with the old one beside it,
// [Keyring.Rewrap] every stored envelope, and only then drop the old KEK.
// An envelope the loop missed cannot be opened once the old KEK is gone
// ([ErrUnknownKEK]). keyledger's store keeps one list of every place it
// stores an envelope, and refuses to start while any of them is under a
// KEK that is not loaded.
//
// # Canary
//
// [SealCanary] encrypts an empty message under a KEK; [CheckCanary] at
// startup tells "this is the wrong master key" apart from "this row was
// tampered with", which Open alone cannot.
//
// # Passwords
//
// Passwords are hashed with Argon2id and stored as PHC strings, so parameters
// can be raised later: [VerifyPassword] reports when a stored hash was made
// with other parameters and should be replaced at the next successful
// sign-in. Parameters read from a stored string are bounded before use, so a
// hostile row cannot make the server allocate unbounded memory.
package crypto
