package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store/storetest"
)

// TestFaultTamperedEnvelopes alters stored envelopes behind the app's back
// (bit flips, truncation, an envelope copied from another key or another
// version, an unknown master-key id). Through the HTTP API only the altered
// key fails, with the store's integrity message, no value and no reveal
// event; every other key, including the one an envelope was copied from,
// still reveals.
func TestFaultTamperedEnvelopes(t *testing.T) {
	t.Parallel()
	keyledgerBinary(t)
	ctx := context.Background()
	url := storetest.NewDatabase(t)
	key := newKEK(t)
	st, pool := openStore(t, url, key, fastOpts())
	lead := seedUser(t, st, "lead@example.com", keyledger.RoleLead)
	token := mintToken(t, st, lead, "read", "reveal")

	type keyCase struct {
		name   string
		tamper string // SQL with $1 = this key's id, $2 = the donor's id; "" = untouched
	}
	cases := []keyCase{
		{"untouched-1", ""},
		{"donor", ""},
		{"untouched-2", ""},
		{"ciphertext-bit-flipped", `UPDATE key_versions SET ciphertext = set_byte(ciphertext, 3, get_byte(ciphertext, 3) # 1) WHERE key_id = $1`},
		{"ciphertext-truncated", `UPDATE key_versions SET ciphertext = substring(ciphertext FROM 1 FOR length(ciphertext) - 5) WHERE key_id = $1`},
		{"ciphertext-emptied", `UPDATE key_versions SET ciphertext = ''::bytea WHERE key_id = $1`},
		{"wrapped-dek-truncated", `UPDATE key_versions SET wrapped_dek = substring(wrapped_dek FROM 1 FOR 10) WHERE key_id = $1`},
		{"wrapped-dek-bit-flipped", `UPDATE key_versions SET wrapped_dek = set_byte(wrapped_dek, length(wrapped_dek) - 1, get_byte(wrapped_dek, length(wrapped_dek) - 1) # 128) WHERE key_id = $1`},
		{"nonce-altered", `UPDATE key_versions SET nonce = set_byte(nonce, 0, get_byte(nonce, 0) # 1) WHERE key_id = $1`},
		{"nonce-truncated", `UPDATE key_versions SET nonce = substring(nonce FROM 1 FOR 4) WHERE key_id = $1`},
		{"unknown-master-key", `UPDATE key_versions SET kek_id = 'kek_not_loaded_anywhere' WHERE key_id = $1`},
		{"swapped-from-donor", `UPDATE key_versions v SET kek_id = d.kek_id, wrapped_dek = d.wrapped_dek, nonce = d.nonce, ciphertext = d.ciphertext
			FROM key_versions d WHERE v.key_id = $1 AND d.key_id = $2`},
	}
	ids := map[string]string{}
	values := map[string]string{}
	for _, c := range cases {
		ids[c.name], values[c.name] = seedKey(t, st, lead, c.name)
	}
	// A key with two versions whose current one gets the old one's
	// envelope (moved between versions): v2 fails, v1 still opens.
	rotated, v1 := seedKey(t, st, lead, "versions-swapped")
	v2 := "sk-test-v2-" + randomHex(t, 16)
	if _, err := st.RotateKey(ctx, keyledger.Actor{User: lead, StepUpAt: time.Now()}, rotated, keyledger.RotateInput{Value: v2, GraceDays: "7"}); err != nil {
		t.Fatal(err)
	}
	// All tampering happens while the server runs: nothing is cached.
	srv, base := serveAt(t, dbEnv(url, key))
	waitReady(t, srv, base)
	c := &http.Client{Timeout: 10 * time.Second}
	for name, id := range ids {
		if code, v, body, err := apiReveal(c, base, token, id); err != nil || code != http.StatusOK || v != values[name] {
			t.Fatalf("%s before tampering: %d %v %.300s", name, code, err, body)
		}
	}
	for _, cs := range cases {
		switch {
		case strings.Contains(cs.tamper, "$2"):
			superExec(t, url, cs.tamper, ids[cs.name], ids["donor"])
		case cs.tamper != "":
			superExec(t, url, cs.tamper, ids[cs.name])
		}
	}
	superExec(t, url, `UPDATE key_versions v SET kek_id = o.kek_id, wrapped_dek = o.wrapped_dek, nonce = o.nonce, ciphertext = o.ciphertext
		FROM key_versions o WHERE v.key_id = $1 AND v.version = 2 AND o.key_id = $1 AND o.version = 1`, rotated)
	events := countAudit(t, pool, keyledger.ActionKeyReveal)

	const integrity = "failed its integrity check"
	expectBroken := func(what, id string, leak ...string) {
		t.Helper()
		code, _, body, err := apiReveal(c, base, token, id)
		ec, msg := apiErrorOf(body)
		if err != nil || code != http.StatusInternalServerError || ec != keyledger.EINTERNAL || !strings.Contains(msg, integrity) {
			t.Errorf("%s: %d %v %s; want 500 %s with %q", what, code, err, body, keyledger.EINTERNAL, integrity)
		}
		for _, v := range leak {
			if strings.Contains(string(body), v) {
				t.Errorf("%s: the error answer carries a value", what)
			}
		}
	}
	revealed := 0
	for _, cs := range cases {
		id := ids[cs.name]
		if cs.tamper == "" {
			if code, v, body, err := apiReveal(c, base, token, id); err != nil || code != http.StatusOK || v != values[cs.name] {
				t.Errorf("%s (untouched) after tampering with others: %d %v %.300s", cs.name, code, err, body)
			} else {
				revealed++
			}
			continue
		}
		expectBroken(cs.name, id, values[cs.name], values["donor"])
		// Its metadata is still there.
		if code, body, err := apiCall(c, http.MethodGet, base, token, "/api/v1/keys/"+id, nil); err != nil || code != http.StatusOK {
			t.Errorf("%s: GET metadata: %d %v %.300s", cs.name, code, err, body)
		}
	}
	expectBroken("versions-swapped (current v2)", rotated, v1, v2)
	code, body, err := apiCall(c, http.MethodPost, base, token, "/api/v1/keys/"+rotated+"/reveal", map[string]any{"version": 1, "reason": "fault test"})
	if err != nil || code != http.StatusOK || !strings.Contains(string(body), v1) {
		t.Errorf("versions-swapped: v1 (untouched, in its grace period): %d %v %.300s", code, err, body)
	} else {
		revealed++
	}

	// The list, and the server, are unaffected.
	if code, body, err := apiCall(c, http.MethodGet, base, token, "/api/v1/keys?project=fault", nil); err != nil || code != http.StatusOK {
		t.Errorf("GET /api/v1/keys: %d %v %.300s", code, err, body)
	} else {
		for name, id := range ids {
			if !strings.Contains(string(body), id) {
				t.Errorf("key list lacks %s", name)
			}
		}
	}
	if code, body, err := getStatus(c, base, "/readyz"); err != nil || code != http.StatusOK {
		t.Errorf("/readyz: %d %q %v", code, body, err)
	}
	// Only the successful reveals were audited.
	if n := countAudit(t, pool, keyledger.ActionKeyReveal) - events; n != revealed {
		t.Errorf("%d key.reveal events after tampering, %d reveals answered 200", n, revealed)
	}
	// The log names the key, never a value.
	logs := srv.output.String()
	if !strings.Contains(logs, "key version does not decrypt") || !strings.Contains(logs, ids["swapped-from-donor"]) {
		t.Errorf("no integrity failure logged with the key id")
	}
	for name, v := range values {
		if strings.Contains(logs, v) {
			t.Errorf("server log contains the value of %s", name)
		}
	}
}
