package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/keyledger/keyledger"
)

// TestAdminEnvironmentsCompact: the environments page is one table, a row
// per environment whose controls all belong to that row's form (by the
// form attribute), with what each setting means said once above it; saving
// a row changes that environment only.
func TestAdminEnvironmentsCompact(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	admin := env.client().login("admin")
	_, body := admin.get("/admin/environments")
	main := authzMain(body, "")
	if n := strings.Count(main, `data-testid="env-table"`); n != 1 {
		t.Fatalf("%d environment tables, want 1", n)
	}
	for _, help := range []string{"Matters for sensitive environments only", "password or code from the last 10 minutes", "A reason is required to reveal or export"} {
		if n := strings.Count(main, help); n != 1 {
			t.Errorf("%q is said %d times, want once", help, n)
		}
	}
	rows := regexp.MustCompile(`(?s)<tr data-testid="env-row" data-env="([a-z0-9_-]+)">(.*?)</tr>`).FindAllStringSubmatch(main, -1)
	if len(rows) != 3 {
		t.Fatalf("%d environment rows, want development, staging and production", len(rows))
	}
	for _, r := range rows {
		name, row := r[1], r[2]
		formID := name + "-form"
		if !strings.Contains(row, `<form id="`+formID+`" method="post" action="/admin/environments/`+name+`"`) {
			t.Errorf("%s: the row holds no form %s posting to its route", name, formID)
		}
		for _, field := range []string{"reveal_policy", "reason_required", "sensitive", "allow_token_reveal", "rotation_days"} {
			control := regexp.MustCompile(`<(?:select|input)[^>]*\bname="` + field + `"[^>]*>`).FindString(row)
			if control == "" || !strings.Contains(control, `form="`+formID+`"`) {
				t.Errorf("%s: %s is missing or not in the row's form: %q", name, field, control)
			}
			if !strings.Contains(control, `aria-label="`) {
				t.Errorf("%s: %s has no accessible name", name, field)
			}
		}
	}

	// Saving staging changes staging, not its neighbours.
	before, err := env.Store.Environments(context.Background(), keyledger.Actor{User: env.Users["admin"]})
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := admin.post("/admin/environments/staging", url.Values{"reveal_policy": {"owner_leads_admins"}, "rotation_days": {"45"}, "sensitive": {"1"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save staging = %d", resp.StatusCode)
	}
	after, err := env.Store.Environments(context.Background(), keyledger.Actor{User: env.Users["admin"]})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range after {
		switch e.Name {
		case "staging":
			if e.RotationDays != 45 || !e.Sensitive || e.RevealPolicy != keyledger.RevealOwnerLeadsAdmins || e.ReasonRequired {
				t.Errorf("staging after saving = %+v", e)
			}
		default:
			if e != before[i] {
				t.Errorf("%s changed: %+v -> %+v", e.Name, before[i], e)
			}
		}
	}
	// A bad row keeps the others as they are and marks its own field.
	resp, body = admin.post("/admin/environments/staging", url.Values{"reveal_policy": {"any_user"}, "rotation_days": {"soon"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad save = %d", resp.StatusCode)
	}
	if !regexp.MustCompile(`<input id="staging-rotation_days"[^>]*aria-invalid="true"`).MatchString(body) ||
		!strings.Contains(body, `href="#staging-rotation_days"`) {
		t.Error("the failed row's field is not marked invalid and linked from the summary")
	}
}

// TestAdminUsersRoleInline: the role is changed in the user's row, with a
// select and Save in one form posting to the role route (role), and
// Deactivate is marked dangerous.
func TestAdminUsersRoleInline(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	admin := env.client().login("admin")
	_, body := admin.get("/admin/users")
	member := env.Users["member"]
	row := regexp.MustCompile(`(?s)<tr data-testid="user-row" data-email="member@example\.com">(.*?)</tr>`).FindStringSubmatch(body)
	if row == nil {
		t.Fatal("no row for member@example.com")
	}
	form := regexp.MustCompile(`(?s)<form method="post" action="/admin/users/(\d+)/role" class="role-form"[^>]*>(.*?)</form>`).FindStringSubmatch(row[1])
	if len(form) < 3 || form[1] != strconv.FormatInt(member.ID, 10) {
		t.Fatalf("the member's row has no role form posting to /admin/users/%d/role:\n%s", member.ID, row[1])
	}
	if !strings.Contains(form[2], `<select name="role" aria-label="Role of member@example.com">`) ||
		!regexp.MustCompile(`<button type="submit"[^>]*data-testid="set-role">Save<span class="visually-hidden"> role of member@example\.com</span></button>`).MatchString(form[2]) {
		t.Errorf("the role form lacks its select or its Save button:\n%s", form[2])
	}
	if !regexp.MustCompile(`<button type="submit" class="outline danger" data-testid="deactivate">Deactivate</button>`).MatchString(row[1]) {
		t.Error("Deactivate is not marked dangerous")
	}
	// The form's fields, posted as the browser does.
	if resp, _ := admin.post("/admin/users/"+form[1]+"/role", url.Values{"role": {"lead"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("role change = %d", resp.StatusCode)
	}
	if u, err := env.Store.UserByEmail(context.Background(), "member@example.com"); err != nil || u.Role != keyledger.RoleLead {
		t.Errorf("member after the role change: %+v, %v", u, err)
	}
}

// TestBrowserAdminPages: in Chromium, Deactivate (and every other danger
// button) is red, not the primary colour, hovered or not; the role select
// and its Save button share one line in the row at desktop width; and a
// row of the environments table saves through its form attribute.
func TestBrowserAdminPages(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	env := newEnv(t)
	b := newBrowser(t, env.HTTP.URL, 90*time.Second)
	b.do("set the viewport", chromedp.EmulateViewport(1280, 800))
	b.signIn("admin@example.com", "Admin (admin)")
	if st := b.navigate("/admin/users"); st != http.StatusOK {
		b.fatalf("GET /admin/users: %d", st)
	}
	colors := evalIn[[]string](b, `(() => {
		const d = document.querySelector('[data-testid="deactivate"]');
		const p = document.querySelector('[data-testid="set-role"]');
		const probe = document.createElement('span');
		probe.style.color = getComputedStyle(document.documentElement).getPropertyValue('--pico-del-color');
		document.body.appendChild(probe);
		const del = getComputedStyle(probe).color;
		probe.remove();
		return [getComputedStyle(d).color, getComputedStyle(d).borderColor, del, getComputedStyle(p).color];
	})()`)
	if colors[0] != colors[2] || colors[1] != colors[2] || colors[0] == colors[3] {
		t.Errorf("Deactivate is %s with a %s border; want the danger colour %s (the Save button is %s)", colors[0], colors[1], colors[2], colors[3])
	}
	b.do("hover Deactivate", chromedp.ScrollIntoView(chromedp.CSS(`[data-testid="deactivate"]`)), chromedp.Focus(chromedp.CSS(`[data-testid="deactivate"]`)))
	if c := evalIn[string](b, `getComputedStyle(document.querySelector('[data-testid="deactivate"]')).color`); c != colors[2] {
		t.Errorf("focused Deactivate is %s, want %s", c, colors[2])
	}
	sameLine := evalIn[bool](b, `(() => {
		const f = document.querySelector('tr[data-email="member@example.com"] .role-form');
		const s = f.querySelector('select').getBoundingClientRect(), btn = f.querySelector('button').getBoundingClientRect();
		return btn.top < s.bottom && s.top < btn.bottom && btn.left >= s.right;
	})()`)
	if !sameLine {
		t.Error("the role select and its Save button are not on one line")
	}
	b.do("choose lead", chromedp.SetValue(chromedp.CSS(`tr[data-email="member@example.com"] select[name="role"]`), "lead"))
	if st := b.press(`tr[data-email="member@example.com"] [data-testid="set-role"]`); st != http.StatusOK {
		b.fatalf("save the role: %d", st)
	}
	if u, err := env.Store.UserByEmail(context.Background(), "member@example.com"); err != nil || u.Role != keyledger.RoleLead {
		t.Errorf("member after Save in the row: %+v, %v", u, err)
	}

	if st := b.navigate("/admin/environments"); st != http.StatusOK {
		b.fatalf("GET /admin/environments: %d", st)
	}
	b.do("set staging's rotation", chromedp.SetValue(chromedp.ID("staging-rotation_days"), "30"))
	b.do("tick staging sensitive", chromedp.Click(chromedp.CSS(`tr[data-env="staging"] input[name="sensitive"]`), chromedp.NodeVisible))
	if st := b.press(`tr[data-env="staging"] [data-testid="env-save"]`); st != http.StatusOK {
		b.fatalf("save staging: %d", st)
	}
	e, err := env.Store.Environment(context.Background(), "staging")
	if err != nil || e.RotationDays != 30 || !e.Sensitive || !e.ReasonRequired {
		t.Errorf("staging after Save in its row: %+v, %v", e, err)
	}
	if problems := b.consoleProblems(); len(problems) > 0 {
		t.Errorf("console: %s", strings.Join(problems, "\n"))
	}
}
