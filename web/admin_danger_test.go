package web_test

import (
	"regexp"
	"testing"
)

// Deactivate ends a person's access at once: it looks dangerous (the
// danger class, red in app.css) and asks before it submits.
func TestAdminDeactivateLooksDangerous(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	_, body := env.client().login("admin").get("/admin/users")
	btn := regexp.MustCompile(`<form [^>]*data-confirm="Deactivate [^"]+"[^>]*>(?:[^<]|<input[^>]*>)*<button type="submit" class="[^"]*\bdanger\b[^"]*" data-testid="deactivate">`)
	if !btn.MatchString(body) {
		t.Errorf("no deactivate button styled as danger, with a confirmation:\n%s", authzMain(body, ""))
	}
}
