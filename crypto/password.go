package crypto

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are Argon2id cost parameters.
type PasswordParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32
	Threads   uint8
	SaltLen   uint32 // bytes
	KeyLen    uint32 // bytes
}

// Bounds on parameters, applied to stored hashes as well as to new ones: a
// stored PHC string is input, and without a cap a single row could ask for
// terabytes of memory or hours of CPU at sign-in.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 100
	maxThreads   = 64
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
	// Far above any string within the bounds above, and checked before
	// splitting so a huge input costs nothing.
	maxPHCLen = 256
)

// DefaultPasswordParams returns t=1, m=64 MiB, p=2, a 16-byte salt and a
// 32-byte hash: the memory of RFC 9106's second recommendation with a single
// pass, which keeps a sign-in to tens of milliseconds on a two-core server.
func DefaultPasswordParams() PasswordParams {
	return PasswordParams{Time: 1, MemoryKiB: 64 * 1024, Threads: 2, SaltLen: 16, KeyLen: 32}
}

func (p PasswordParams) check() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("time %d out of range [1, %d]", p.Time, maxTime)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("threads %d out of range [1, %d]", p.Threads, maxThreads)
	// argon2 silently raises memory below 8 KiB per thread; refuse instead, so
	// that the parameters written down are the ones used.
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("memory %d KiB out of range [%d, %d]", p.MemoryKiB, 8*uint32(p.Threads), maxMemoryKiB)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length %d out of range [%d, %d]", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length %d out of range [%d, %d]", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// HashPassword hashes password with a fresh random salt and returns a PHC
// string such as "$argon2id$v=19$m=65536,t=1,p=2$<salt>$<hash>".
func HashPassword(password string, p PasswordParams) (string, error) {
	if err := p.check(); err != nil {
		return "", fmt.Errorf("password params: %w", err)
	}
	salt, err := RandomBytes(int(p.SaltLen))
	if err != nil {
		return "", err
	}
	hash := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	return formatPHC(p, salt, hash), nil
}

// VerifyPassword reports whether password matches the PHC string phc,
// comparing in constant time. When it matches, needsRehash reports whether
// phc was made with parameters other than p, so the caller can store a fresh
// HashPassword(password, p). A wrong password is (false, false, nil); an
// error means phc is malformed or its parameters are out of bounds.
func VerifyPassword(password, phc string, p PasswordParams) (ok, needsRehash bool, err error) {
	stored, salt, hash, err := parsePHC(phc)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, stored.Time, stored.MemoryKiB, stored.Threads, stored.KeyLen)
	if subtle.ConstantTimeCompare(got, hash) != 1 {
		return false, false, nil
	}
	return true, stored != p, nil
}

// formatPHC encodes salt and hash as the reference implementation does, in
// unpadded standard base64, so hashes stay portable to other tools.
func formatPHC(p PasswordParams, salt, hash []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(hash))
}

var errMalformedPHC = errors.New("malformed password hash")

// parsePHC accepts exactly what formatPHC writes, and nothing else: one
// spelling per hash keeps the parser small and the needsRehash check honest.
// Errors never include the string.
func parsePHC(phc string) (p PasswordParams, salt, hash []byte, err error) {
	malformed := func(why string) (PasswordParams, []byte, []byte, error) {
		return PasswordParams{}, nil, nil, fmt.Errorf("%w: %s", errMalformedPHC, why)
	}
	if len(phc) > maxPHCLen {
		return malformed("too long")
	}
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" {
		return malformed("want 5 $-separated fields")
	}
	if parts[1] != "argon2id" {
		return malformed("algorithm is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return malformed("unsupported argon2 version")
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return malformed("want parameters m=,t=,p=")
	}
	m, ok1 := parseParam(params[0], "m=", 32)
	t, ok2 := parseParam(params[1], "t=", 32)
	th, ok3 := parseParam(params[2], "p=", 8)
	if !ok1 || !ok2 || !ok3 {
		return malformed("want parameters m=,t=,p= as decimal numbers")
	}
	salt, ok1 = decodeB64(parts[4])
	hash, ok2 = decodeB64(parts[5])
	if !ok1 || !ok2 {
		return malformed("salt or hash is not unpadded base64")
	}
	p = PasswordParams{
		Time:      uint32(t),
		MemoryKiB: uint32(m),
		Threads:   uint8(th),
		SaltLen:   uint32(len(salt)),
		KeyLen:    uint32(len(hash)),
	}
	if err := p.check(); err != nil {
		return malformed(err.Error())
	}
	return p, salt, hash, nil
}

func parseParam(s, prefix string, bits int) (uint64, bool) {
	digits, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(digits, 10, bits)
	// Refuse leading zeros and the like: only the canonical spelling.
	if err != nil || strconv.FormatUint(v, 10) != digits {
		return 0, false
	}
	return v, true
}

// decodeB64 refuses anything that does not re-encode to itself, which the
// decoder alone would let through (embedded newlines, non-zero trailing bits).
func decodeB64(s string) ([]byte, bool) {
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil || base64.RawStdEncoding.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}
