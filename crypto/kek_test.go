package crypto

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Chosen so standard and URL-safe base64 differ ("+/" versus "-_").
var kekBytes = bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:KeySize]

func TestParseKEK(t *testing.T) {
	want, err := newKEK(kekBytes)
	if err != nil {
		t.Fatal(err)
	}
	valid := []struct{ name, in string }{
		{"std", base64.StdEncoding.EncodeToString(kekBytes)},
		{"raw std", base64.RawStdEncoding.EncodeToString(kekBytes)},
		{"url", base64.URLEncoding.EncodeToString(kekBytes)},
		{"raw url", base64.RawURLEncoding.EncodeToString(kekBytes)},
		{"surrounding space", " \t" + base64.StdEncoding.EncodeToString(kekBytes) + "\n"},
		{"file with CRLF", base64.StdEncoding.EncodeToString(kekBytes) + "\r\n"},
	}
	if !strings.ContainsAny(valid[0].in, "+/") {
		t.Fatal("test key does not exercise the URL-safe alphabet")
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKEK(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if k.ID() != want.ID() {
				t.Errorf("ID = %s, want %s", k.ID(), want.ID())
			}
		})
	}

	invalid := []struct{ name, in, wantErr string }{
		{"31 bytes", base64.StdEncoding.EncodeToString(kekBytes[:31]), "want 32 bytes of base64, got 31 bytes"},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(kekBytes, 0x42)), "want 32 bytes of base64, got 33 bytes"},
		{"empty", "", "want 32 bytes of base64, got 0 bytes"},
		{"space only", " \n", "want 32 bytes of base64, got 0 bytes"},
		{"not base64", "this is not base64 but it is long enough!!!", "not valid base64: "},
		{"mixed alphabets", "+-" + base64.RawStdEncoding.EncodeToString(kekBytes)[2:], "not valid base64: "},
		{"hex", hex.EncodeToString(kekBytes), "want 32 bytes of base64, got 48 bytes"},
		{"padding in the middle", "AAAA=AAA" + base64.StdEncoding.EncodeToString(kekBytes), "not valid base64: "},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKEK(tt.in)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantErr)
			}
			if in := strings.TrimSpace(tt.in); len(in) >= 4 && strings.Contains(err.Error(), in[:4]) {
				t.Errorf("err = %q repeats the input", err)
			}
		})
	}
}

func TestKEKID(t *testing.T) {
	a1, a2, b := testKEK(t, 1), testKEK(t, 1), testKEK(t, 2)
	if a1.ID() != a2.ID() {
		t.Errorf("same key, different IDs: %s, %s", a1.ID(), a2.ID())
	}
	if a1.ID() == b.ID() {
		t.Errorf("different keys, same ID %s", a1.ID())
	}
	mac := hmac.New(sha256.New, testKeyBytes(1))
	mac.Write([]byte("keyledger kek id v1"))
	if want := hex.EncodeToString(mac.Sum(nil)[:8]); a1.ID() != want {
		t.Errorf("ID = %s, want %s", a1.ID(), want)
	}
	if got := a1.String(); got != "KEK("+a1.ID()+")" {
		t.Errorf("String = %q", got)
	}
	if (KEK{}).ID() != "" || (KEK{}).String() != "KEK(zero)" {
		t.Errorf("zero KEK: ID %q, String %q", KEK{}.ID(), KEK{}.String())
	}
}

func TestKEKDoesNotLeak(t *testing.T) {
	k, err := ParseKEK(base64.StdEncoding.EncodeToString(kekBytes))
	if err != nil {
		t.Fatal(err)
	}
	type exported struct{ Key KEK }
	type unexported struct{ key KEK }
	var outputs []string
	for _, v := range []any{k, &k, []KEK{k}, exported{k}, unexported{k}, &unexported{k}, map[string]KEK{"k": k}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("loaded", "kek", k, "wrapped", exported{k}, "ring", []KEK{k})
	slog.New(slog.NewTextHandler(&buf, nil)).Info("loaded", "kek", k, "wrapped", exported{k}, "ptr", &k)
	outputs = append(outputs, buf.String())
	j, _ := json.Marshal(exported{k})
	outputs = append(outputs, string(j))

	forbidden := []string{
		string(kekBytes),
		base64.StdEncoding.EncodeToString(kekBytes)[:8],
		base64.URLEncoding.EncodeToString(kekBytes)[:8],
		hex.EncodeToString(kekBytes)[:8],
		strings.ToUpper(hex.EncodeToString(kekBytes)[:8]),
		strings.Trim(fmt.Sprint(kekBytes[:4]), "[]"), //nolint:staticcheck // QF1010: the decimal list "1 2 3 4" is the leak looked for, not the bytes as text
		fmt.Sprintf("%#x", kekBytes[:2]),
	}
	for _, out := range outputs {
		for _, f := range forbidden {
			if strings.Contains(out, f) {
				t.Errorf("output %q contains key material %q", out, f)
			}
		}
	}
	if !strings.Contains(buf.String(), k.ID()) {
		t.Errorf("log lost the KEK ID: %s", buf.String())
	}
}

func TestGenerateKEK(t *testing.T) {
	s1, err := GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := GenerateKEK()
	if s1 == s2 {
		t.Error("GenerateKEK returned the same key twice")
	}
	if b, err := base64.StdEncoding.DecodeString(s1); err != nil || len(b) != KeySize {
		t.Errorf("GenerateKEK = %d bytes of std base64, %v", len(b), err)
	}
	k1, err := ParseKEK(s1)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := ParseKEK(s2)
	if k1.ID() == k2.ID() {
		t.Error("two generated keys share an ID")
	}
}
