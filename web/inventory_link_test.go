package web_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestInventoryLinkByHandPage: on /inventory an admin gets, on the
// ambiguous row, a small form choosing among its candidates; linking
// keeps through a sync, shows who decided it, and can be undone; a lead
// sees the candidates but no form; a key of another provider is refused
// on the page with the reason and nothing changes.
func TestInventoryLinkByHandPage(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	ctx := context.Background()
	fakes.openai.Generate(2, 20)
	env.createKey("member", "development", "twin a", "sk-proj-Ab"+strings.Repeat("x", 30)+"0007")
	twinB := env.createKey("member", "staging", "twin b", "sk-proj-Ab"+strings.Repeat("y", 30)+"0007")
	claude := env.createKey("member", "development", "claude", "sk-ant-api03-"+strings.Repeat("z", 40)+"0007")
	conn := fakes.connectOpenAI(t, env, "acme")
	var pk int64
	if err := env.Pool.QueryRow(ctx, `SELECT id FROM provider_keys WHERE provider_key_id = 'key_gen_00007'`).Scan(&pk); err != nil {
		t.Fatal(err)
	}
	action := "/inventory/" + strconv.FormatInt(pk, 10)

	lead := env.client().login("lead")
	_, page := lead.get("/inventory?state=ambiguous")
	if !strings.Contains(page, `data-testid="candidates"`) || strings.Contains(page, `data-testid="link-form"`) {
		t.Errorf("a lead's ambiguous row:\n%s", authzMain(page, ""))
	}

	admin := env.client().login("admin")
	_, page = admin.get("/inventory?state=ambiguous")
	if strings.Count(page, `data-testid="link-form"`) != 1 || !strings.Contains(page, `action="`+action+`/link"`) ||
		!strings.Contains(page, `value="`+twinB.ID+`"`) || !strings.Contains(page, `name="_csrf"`) {
		t.Fatalf("the admin's ambiguous row has no link form:\n%s", authzMain(page, ""))
	}
	if !strings.Contains(page, `name="state" value="ambiguous"`) {
		t.Error("the link form does not carry the state filter")
	}
	// Its select has a label.
	if !regexp.MustCompile(`<label for="link-` + strconv.FormatInt(pk, 10) + `">`).MatchString(page) {
		t.Error("the candidate choice has no label")
	}

	resp, page := admin.post(action+"/link", url.Values{"key_id": {claude.ID}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(page), `The key "claude" is for Anthropic; this provider key is at OpenAI.`) {
		t.Errorf("another provider's key: %d\n%s", resp.StatusCode, authzMain(page, ""))
	}
	var manual int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM provider_keys WHERE linked_by IS NOT NULL`).Scan(&manual); err != nil || manual != 0 {
		t.Errorf("%d links after a refusal (%v)", manual, err)
	}

	// The form carries the page's filters, and the answer goes back to them.
	resp, _ = admin.post(action+"/link", url.Values{"key_id": {twinB.ID}, "state": {"ambiguous"}, "connection": {conn.ID}})
	if want := "/inventory?connection=" + conn.ID + "&state=ambiguous&linked=1"; resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Fatalf("link: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, err := env.Store.SyncProviderConnection(ctx, actorOf(env, "admin"), fakes.client, conn.ID); err != nil {
		t.Fatal(err)
	}
	_, page = admin.get("/inventory?state=registered")
	if !strings.Contains(page, `data-testid="linked-manually"`) || !strings.Contains(page, "twin b") || !strings.Contains(page, `action="`+action+`/unlink"`) {
		t.Errorf("after linking and a sync:\n%s", authzMain(page, ""))
	}
	_, page = admin.get("/inventory?state=ambiguous")
	if strings.Contains(page, `data-testid="inventory-row"`) {
		t.Error("still ambiguous after linking")
	}

	resp, _ = admin.post(action+"/unlink", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/inventory?unlinked=1" {
		t.Fatalf("unlink: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = admin.get("/inventory?state=ambiguous")
	if strings.Count(page, `data-testid="link-form"`) != 1 {
		t.Errorf("after unlinking:\n%s", authzMain(page, ""))
	}
}

// TestInventoryPagesOnThePage: 250 provider keys are three pages of the
// inventory (100, 100, 50) joined by "Next page" links that keep the
// filters; the counts are over all of them; the CSV stays whole.
func TestInventoryPagesOnThePage(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	fakes.openai.Generate(3, 250)
	conn := fakes.connectOpenAI(t, env, "acme")
	lead := env.client().login("lead")
	next := regexp.MustCompile(`href="([^"]+)" data-testid="next-page"`)
	path := "/inventory?connection=" + conn.ID
	var rows []int
	seen := map[string]bool{}
	rowRe := regexp.MustCompile(`data-testid="inventory-row" data-provider-key="([^"]+)"`)
	for range 5 {
		resp, page := lead.get(path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		if !strings.Contains(page, `data-testid="count-not_in_keyledger">Not in keyledger: 250<`) {
			t.Errorf("%s: the counts are not over every page", path)
		}
		for _, m := range rowRe.FindAllStringSubmatch(page, -1) {
			if seen[m[1]] {
				t.Errorf("%s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		rows = append(rows, len(rowRe.FindAllStringSubmatch(page, -1)))
		if len(rows) > 1 && !strings.Contains(page, `data-testid="first-page"`) {
			t.Errorf("page %d has no link to the first page", len(rows))
		}
		m := next.FindStringSubmatch(page)
		if m == nil {
			break
		}
		path = html.UnescapeString(m[1])
		if !strings.Contains(path, "connection="+conn.ID) {
			t.Errorf("the next page drops the filter: %s", path)
		}
	}
	if len(rows) != 3 || rows[0] != 100 || rows[1] != 100 || rows[2] != 50 || len(seen) != 250 {
		t.Errorf("pages of %v rows, %d keys", rows, len(seen))
	}
	resp, _ := lead.get("/inventory?after=bogus")
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a bad cursor: %d", resp.StatusCode)
	}
	resp, body := lead.get("/inventory.csv")
	if resp.StatusCode != http.StatusOK || strings.Count(body, "\n") != 251 {
		t.Errorf("CSV: %d, %d lines", resp.StatusCode, strings.Count(body, "\n"))
	}
}
