package keyledger_test

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

// The signature covers every field but the key and itself: changing any
// of them, or checking under another key, fails.
func TestAuditCheckpointSignature(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cp := keyledger.SignAuditCheckpoint(keyledger.AuditCheckpoint{Seq: 7, Link: strings.Repeat("0f", 32), KeyedFrom: 3, Time: time.Now()}, priv)
	if err := cp.VerifySignature(cp.PublicKey); err != nil {
		t.Fatalf("fresh checkpoint: %v", err)
	}
	for name, edit := range map[string]func(*keyledger.AuditCheckpoint){
		"seq":        func(c *keyledger.AuditCheckpoint) { c.Seq++ },
		"link":       func(c *keyledger.AuditCheckpoint) { c.Link = strings.Repeat("f0", 32) },
		"keyed_from": func(c *keyledger.AuditCheckpoint) { c.KeyedFrom = 1 },
		"time":       func(c *keyledger.AuditCheckpoint) { c.Time = c.Time.Add(time.Nanosecond) },
		"signature":  func(c *keyledger.AuditCheckpoint) { c.Signature = strings.Repeat("0", 128) },
	} {
		c := cp
		edit(&c)
		if err := c.VerifySignature(cp.PublicKey); err == nil {
			t.Errorf("%s changed: signature still verifies", name)
		}
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if err := cp.VerifySignature(keyledger.SignAuditCheckpoint(cp, other).PublicKey); err == nil {
		t.Error("verified under another instance's key")
	}
	for _, in := range []string{"", "{}", "klcp1.!!!", `{"seq":1,"keyed_from":1}`, cp.JSON()[:20]} {
		if _, err := keyledger.ParseAuditCheckpoint([]byte(in)); err == nil {
			t.Errorf("ParseAuditCheckpoint(%q) accepted", in)
		}
	}
	for _, in := range []string{cp.JSON(), cp.Token(), "  " + cp.Token() + "\n"} {
		if got, err := keyledger.ParseAuditCheckpoint([]byte(in)); err != nil || got.JSON() != cp.JSON() {
			t.Errorf("ParseAuditCheckpoint(%.30q…): %v", in, err)
		}
	}
}
