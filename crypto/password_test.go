package crypto

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Small parameters keep the tests fast; the code paths are the same.
var testParams = PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestPasswordRoundTrip(t *testing.T) {
	phc, err := HashPassword("correct horse", testParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("PHC = %q", phc)
	}
	if other, _ := HashPassword("correct horse", testParams); other == phc {
		t.Error("two hashes of one password are equal: salt not random")
	}

	ok, rehash, err := VerifyPassword("correct horse", phc, testParams)
	if !ok || rehash || err != nil {
		t.Errorf("right password: %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	for _, wrong := range []string{"", "correct hors", "correct horse ", "Correct horse"} {
		ok, rehash, err := VerifyPassword(wrong, phc, testParams)
		if ok || rehash || err != nil {
			t.Errorf("VerifyPassword(%q): %v, %v, %v; want false, false, nil", wrong, ok, rehash, err)
		}
	}
}

func TestPasswordNeedsRehash(t *testing.T) {
	phc, err := HashPassword("pw", testParams)
	if err != nil {
		t.Fatal(err)
	}
	changes := map[string]func(*PasswordParams){
		"time":    func(p *PasswordParams) { p.Time++ },
		"memory":  func(p *PasswordParams) { p.MemoryKiB *= 2 },
		"threads": func(p *PasswordParams) { p.Threads++ },
		"salt":    func(p *PasswordParams) { p.SaltLen = 32 },
		"key":     func(p *PasswordParams) { p.KeyLen = 64 },
	}
	for name, change := range changes {
		p := testParams
		change(&p)
		ok, rehash, err := VerifyPassword("pw", phc, p)
		if !ok || !rehash || err != nil {
			t.Errorf("%s changed: %v, %v, %v; want true, true, nil", name, ok, rehash, err)
		}
	}
}

// These were made by the reference C implementation (libargon2 via
// argon2id_hash_encoded), so our hashes stay interchangeable with it.
func TestPasswordReferenceVectors(t *testing.T) {
	vectors := []struct {
		phc    string
		params PasswordParams
	}{
		{"$argon2id$v=19$m=64,t=2,p=1$a2V5bGVkZ2VyLXNhbHQxNg$JwWwA6mazL+bj36nImmfSVNv0MVLFfR9s0qqF6THdYQ",
			PasswordParams{Time: 2, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"$argon2id$v=19$m=256,t=3,p=4$a2V5bGVkZ2VyLXNhbHQxNg$0Bf0SmbEa5B2SdJ6gocJtWbz7PiddKvR",
			PasswordParams{Time: 3, MemoryKiB: 256, Threads: 4, SaltLen: 16, KeyLen: 24}},
	}
	for _, v := range vectors {
		ok, rehash, err := VerifyPassword("correct horse battery staple", v.phc, v.params)
		if !ok || rehash || err != nil {
			t.Errorf("%s: %v, %v, %v; want true, false, nil", v.phc, ok, rehash, err)
		}
		if ok, _, _ := VerifyPassword("correct horse battery stapler", v.phc, v.params); ok {
			t.Errorf("%s: wrong password accepted", v.phc)
		}
		p, salt, hash, err := parsePHC(v.phc)
		if err != nil || formatPHC(p, salt, hash) != v.phc {
			t.Errorf("%s does not round-trip: %v", v.phc, err)
		}
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	const salt = "a2V5bGVkZ2VyLXNhbHQxNg"
	const hash = "JwWwA6mazL+bj36nImmfSVNv0MVLFfR9s0qqF6THdYQ"
	const good = "$argon2id$v=19$m=64,t=2,p=1$" + salt + "$" + hash
	if ok, _, err := VerifyPassword("correct horse battery staple", good, testParams); !ok || err != nil {
		t.Fatalf("baseline does not verify: %v, %v", ok, err)
	}
	phc := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + hash }
	tests := map[string]string{
		"empty":              "",
		"dollar":             "$",
		"no leading dollar":  good[1:],
		"trailing dollar":    good + "$",
		"missing hash":       "$argon2id$v=19$m=64,t=2,p=1$" + salt,
		"argon2i":            strings.Replace(good, "argon2id", "argon2i", 1),
		"argon2d":            strings.Replace(good, "argon2id", "argon2d", 1),
		"bcrypt":             "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"version 16":         strings.Replace(good, "v=19", "v=16", 1),
		"no version":         "$argon2id$m=64,t=2,p=1$" + salt + "$" + hash,
		"params reordered":   phc("t=2,m=64,p=1"),
		"params missing":     phc("m=64,t=2"),
		"params extra":       phc("m=64,t=2,p=1,k=1"),
		"params empty":       phc(""),
		"m empty":            phc("m=,t=2,p=1"),
		"m leading zero":     phc("m=064,t=2,p=1"),
		"m plus sign":        phc("m=+64,t=2,p=1"),
		"m negative":         phc("m=-64,t=2,p=1"),
		"m hex":              phc("m=0x40,t=2,p=1"),
		"m space":            phc("m= 64,t=2,p=1"),
		"m zero":             phc("m=0,t=2,p=1"),
		"m below 8 per lane": phc("m=31,t=2,p=4"),
		"m over 1 GiB":       phc("m=1048577,t=1,p=1"),
		"m 4 TiB":            phc("m=4294967295,t=1,p=1"),
		"m overflows":        phc("m=4294967296,t=1,p=1"),
		"t zero":             phc("m=64,t=0,p=1"),
		"t 101":              phc("m=64,t=101,p=1"),
		"t huge":             phc("m=64,t=4294967295,p=1"),
		"p zero":             phc("m=64,t=2,p=0"),
		"p 65":               phc("m=1024,t=2,p=65"),
		"p overflows":        phc("m=4096,t=2,p=256"),
		"salt padded":        "$argon2id$v=19$m=64,t=2,p=1$" + salt + "==$" + hash,
		"salt not base64":    "$argon2id$v=19$m=64,t=2,p=1$!!!!$" + hash,
		"salt url base64":    "$argon2id$v=19$m=64,t=2,p=1$a2V5bGVkZ2VyLXNhbHQxNg$JwWwA6mazL-bj36nImmfSVNv0MVLFfR9s0qqF6THdYQ",
		"salt with newline":  "$argon2id$v=19$m=64,t=2,p=1$a2V5bGVkZ2Vy\nLXNhbHQxNg$" + hash,
		"salt too short":     "$argon2id$v=19$m=64,t=2,p=1$c2FsdA$" + hash,
		"salt empty":         "$argon2id$v=19$m=64,t=2,p=1$$" + hash,
		"salt too long":      "$argon2id$v=19$m=64,t=2,p=1$" + strings.Repeat("QUFB", 30) + "$" + hash,
		"hash too short":     "$argon2id$v=19$m=64,t=2,p=1$" + salt + "$AAAAAAAAAAAAAAAAAAA",
		"hash empty":         "$argon2id$v=19$m=64,t=2,p=1$" + salt + "$",
		"hash non-canonical": good[:len(good)-1] + "Z",
		"too long":           good + strings.Repeat("A", 1<<20),
		"NUL":                good[:10] + "\x00" + good[11:],
		"space":              " " + good,
	}
	for name, phc := range tests {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			ok, rehash, err := VerifyPassword("correct horse battery staple", phc, testParams)
			if err == nil || ok || rehash {
				t.Fatalf("got %v, %v, %v; want an error", ok, rehash, err)
			}
			if !errors.Is(err, errMalformedPHC) {
				t.Errorf("err = %v, want errMalformedPHC", err)
			}
			if len(phc) > 8 && strings.Contains(err.Error(), phc[len(phc)-8:]) {
				t.Errorf("err %q repeats the input", err)
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("refusing took %v: was the hostile hash computed?", d)
			}
		})
	}
}

func TestHashPasswordParams(t *testing.T) {
	bad := map[string]PasswordParams{
		"zero":         {},
		"time 0":       {Time: 0, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32},
		"time 101":     {Time: 101, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32},
		"memory 2 GiB": {Time: 1, MemoryKiB: 2 << 20, Threads: 1, SaltLen: 16, KeyLen: 32},
		"memory 7":     {Time: 1, MemoryKiB: 7, Threads: 1, SaltLen: 16, KeyLen: 32},
		"threads 0":    {Time: 1, MemoryKiB: 64, Threads: 0, SaltLen: 16, KeyLen: 32},
		"threads 65":   {Time: 1, MemoryKiB: 1024, Threads: 65, SaltLen: 16, KeyLen: 32},
		"salt 4":       {Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 4, KeyLen: 32},
		"salt 65":      {Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 65, KeyLen: 32},
		"key 8":        {Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 8},
		"key 65":       {Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 65},
	}
	for name, p := range bad {
		if _, err := HashPassword("pw", p); err == nil {
			t.Errorf("%s: HashPassword accepted %+v", name, p)
		}
	}
	if err := DefaultPasswordParams().check(); err != nil {
		t.Errorf("default params are out of bounds: %v", err)
	}
	if d := DefaultPasswordParams(); d != (PasswordParams{Time: 1, MemoryKiB: 65536, Threads: 2, SaltLen: 16, KeyLen: 32}) {
		t.Errorf("DefaultPasswordParams = %+v", d)
	}
}
