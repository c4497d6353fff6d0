package web_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyledger/keyledger/store"
)

// auditRowActions lists the action labels of the audit page's rows, in
// order.
func auditRowActions(body string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`data-testid="audit-action"[^>]*>([^<]*)<`).FindAllStringSubmatch(body, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

// The audit page reads as sentences: human action labels, a relative time
// with the exact time in datetime/title (by the store's clock), keys picked
// by name, and one filter for everything that handed a value out.
func TestAuditPageReadable(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	env := newEnvWithStore(t, store.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	k := env.createKey("member", "development", "stripe payments", "sk-audit-page-value-0001")
	other := env.createKey("member", "development", "openai dev", "sk-audit-page-value-0002")
	m := env.client().login("member")
	if resp, body := m.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"debugging"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("reveal: %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	if resp, body := m.post("/export", url.Values{"environment": {"development"}, "format": {"dotenv"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %d\n%s", resp.StatusCode, authzMain(body, ""))
	}

	offset.Store(int64(3 * time.Hour))
	lead := env.client().login("lead")
	resp, body := lead.get("/audit")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /audit: %d", resp.StatusCode)
	}
	if !strings.Contains(body, ">Signed in<") || !strings.Contains(body, ">Key revealed<") || !strings.Contains(body, ">Key created<") {
		t.Errorf("no human action labels on the audit page: %q", auditRowActions(body))
	}
	if strings.Contains(body, ">auth.sign_in<") {
		t.Error("the audit page still shows the raw action auth.sign_in")
	}
	// The reveal was three hours ago by the store's clock; the exact time
	// rides along in datetime and title.
	tm := regexp.MustCompile(`<time datetime="([^"]+)" title="([^"]+)">3 hours ago</time>`).FindStringSubmatch(body)
	if tm == nil {
		t.Errorf("no <time datetime=… title=…>3 hours ago</time> on the audit page:\n%s", authzMain(body, ""))
	} else if at, err := time.Parse(time.RFC3339, tm[1]); err != nil || tm[2] != at.Format("2006-01-02 15:04 UTC") {
		t.Errorf("time datetime=%q title=%q: not the same instant (%v)", tm[1], tm[2], err)
	}
	// Key by name: the filter offers the key's name with its id as value.
	opt := regexp.MustCompile(`<option value="` + k.ID + `"[^>]*>stripe payments[^<]*</option>`)
	if !opt.MatchString(body) {
		t.Errorf("the key filter does not offer %q by name:\n%s", "stripe payments", authzMain(body, ""))
	}
	_, body = lead.get("/audit?key=" + k.ID)
	if strings.Contains(body, "/keys/"+other.ID) || !strings.Contains(body, `value="`+k.ID+`" selected`) {
		t.Errorf("filter by key: other key's events shown or the key not selected:\n%s", authzMain(body, ""))
	}

	_, body = lead.get("/audit?action=reveals-and-exports")
	got := auditRowActions(body)
	if len(got) == 0 {
		t.Fatalf("reveals and exports: no rows\n%s", authzMain(body, ""))
	}
	var reveals, exports int
	for _, a := range got {
		switch a {
		case "Key revealed":
			reveals++
		case "Key exported":
			exports++
		default:
			t.Errorf("reveals and exports filter shows %q", a)
		}
	}
	if reveals != 1 || exports == 0 {
		t.Errorf("reveals and exports: %d reveals, %d exports, want 1 and ≥1 (%q)", reveals, exports, got)
	}
	resp, csv := lead.get("/audit.csv?action=reveals-and-exports")
	if resp.StatusCode != http.StatusOK || strings.Contains(csv, "auth.sign_in") || !strings.Contains(csv, "key.reveal") || !strings.Contains(csv, "key.export") {
		t.Errorf("audit.csv with the reveals-and-exports filter: %d\n%s", resp.StatusCode, csv)
	}
}
