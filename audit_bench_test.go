package keyledger_test

import (
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

func benchEvent() *keyledger.AuditEvent {
	return &keyledger.AuditEvent{ID: 123456, Time: time.Now(), ActorID: 7, ActorEmail: "lead@example.com", Action: keyledger.ActionKeyReveal,
		KeyID: "0b6f1c1e-8f6a-4c55-9c1e-2f0d7a1c9b3e", KeyName: "checkout OpenAI", KeyVersion: 3, Environment: "production",
		IP: "203.0.113.9", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", Reason: "deploy", Details: `{"via_token": 12}`}
}

// BenchmarkChainHash and BenchmarkChainHMAC compare the two link formats'
// cost per event (the chainer computes one per event).
func BenchmarkChainHash(b *testing.B) {
	e, prev := benchEvent(), make([]byte, 32)
	for b.Loop() {
		prev = keyledger.ChainHash(prev, e)
	}
}

func BenchmarkChainHMAC(b *testing.B) {
	e, prev, key := benchEvent(), make([]byte, 32), make([]byte, 32)
	for b.Loop() {
		prev = keyledger.ChainHMAC(key, prev, e)
	}
}

func BenchmarkChainKeyed(b *testing.B) {
	e, prev, c := benchEvent(), make([]byte, 32), keyledger.NewChainKeyed(make([]byte, 32))
	for b.Loop() {
		prev = c.Link(prev, e)
	}
}
