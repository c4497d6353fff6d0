package keyledger

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuditCheckpoint is a signed statement of the audit chain's head: link
// Seq is Link, and links from KeyedFrom on are keyed. Kept somewhere the
// database's admin cannot reach (the log, a chat channel, a file), it lets
// `keyledger audit verify --checkpoint` prove that the chain still extends
// it, which catches a rewrite even by someone holding the master key.
type AuditCheckpoint struct {
	Seq int64 `json:"seq"`
	// Link is the chain link at Seq, hex; empty for an empty chain.
	Link      string    `json:"link"`
	KeyedFrom int64     `json:"keyed_from"`
	Time      time.Time `json:"time"`
	// PublicKey is the instance's Ed25519 checkpoint key, hex. Pin it:
	// a checkpoint is only as good as the key it is checked against.
	PublicKey string `json:"public_key"`
	Signature string `json:"signature"`
}

// signedBytes is what the signature covers: every field but the key and
// the signature, one per line, under a versioned label.
func (c AuditCheckpoint) signedBytes() []byte {
	return []byte("keyledger audit checkpoint v1\n" +
		"seq " + strconv.FormatInt(c.Seq, 10) + "\n" +
		"link " + c.Link + "\n" +
		"keyed_from " + strconv.FormatInt(c.KeyedFrom, 10) + "\n" +
		"time " + c.Time.UTC().Format(time.RFC3339Nano) + "\n")
}

// SignAuditCheckpoint fills in the public key and signature of c.
func SignAuditCheckpoint(c AuditCheckpoint, key ed25519.PrivateKey) AuditCheckpoint {
	c.Time = c.Time.UTC()
	c.PublicKey = hex.EncodeToString(key.Public().(ed25519.PublicKey))
	c.Signature = hex.EncodeToString(ed25519.Sign(key, c.signedBytes()))
	return c
}

// ErrCheckpointSignature means a checkpoint's signature does not verify.
var ErrCheckpointSignature = errors.New("the checkpoint's signature does not verify")

// VerifySignature checks c's signature under pub (hex), which must be the
// key the checkpoint names: a checkpoint naming another key was not made
// by this instance.
func (c AuditCheckpoint) VerifySignature(pub string) error {
	if pub != c.PublicKey {
		return fmt.Errorf("the checkpoint was signed by key %s, but this instance's checkpoint key is %s", c.PublicKey, pub)
	}
	k, err := hex.DecodeString(pub)
	if err != nil || len(k) != ed25519.PublicKeySize {
		return errors.New("the checkpoint's public key is not a hex Ed25519 key")
	}
	sig, err := hex.DecodeString(c.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return ErrCheckpointSignature
	}
	if !ed25519.Verify(ed25519.PublicKey(k), c.signedBytes(), sig) {
		return ErrCheckpointSignature
	}
	return nil
}

// checkpointTokenPrefix starts the one-token form of a checkpoint.
const checkpointTokenPrefix = "klcp1."

// Token is the checkpoint as one copyable token, for log lines and chat:
// "klcp1." and the JSON in unpadded base64url (no quotes or spaces that a
// log format would escape).
func (c AuditCheckpoint) Token() string {
	return checkpointTokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(c.JSON()))
}

// ParseAuditCheckpoint reads a checkpoint file: the JSON `keyledger audit
// checkpoint` prints, or the token a log line or chat message carries. It
// checks the shape, not the signature.
func ParseAuditCheckpoint(b []byte) (AuditCheckpoint, error) {
	var c AuditCheckpoint
	if tok, ok := strings.CutPrefix(strings.TrimSpace(string(b)), checkpointTokenPrefix); ok {
		var err error
		if b, err = base64.RawURLEncoding.DecodeString(tok); err != nil {
			return c, errors.New("not a checkpoint: the klcp1. token is damaged (copy it whole)")
		}
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("not a checkpoint (want the JSON that 'keyledger audit checkpoint' prints): %w", err)
	}
	if c.Seq < 0 || c.KeyedFrom < 1 || c.PublicKey == "" || c.Signature == "" || c.Time.IsZero() {
		return c, errors.New("not a checkpoint: seq, keyed_from, time, public_key and signature are required")
	}
	if c.Link != "" {
		if b, err := hex.DecodeString(c.Link); err != nil || len(b) != 32 {
			return c, errors.New("not a checkpoint: link must be 64 hex digits")
		}
	}
	return c, nil
}

// JSON is the checkpoint as one line of JSON, the form that is logged,
// posted and printed.
func (c AuditCheckpoint) JSON() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// CheckpointPublisher posts audit checkpoints somewhere the database's
// admin cannot rewrite (a chat channel through a webhook).
type CheckpointPublisher interface {
	PublishCheckpoint(ctx context.Context, c AuditCheckpoint) error
}
