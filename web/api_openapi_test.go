package web_test

import (
	"bytes"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestAPIOpenAPIDocument: the document is served without a token, is a
// valid OpenAPI 3.0 document, and describes exactly the routes the server
// registers under /api/v1, each with the bearer scheme (but itself).
func TestAPIOpenAPIDocument(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	r := a.get("", "/api/v1/openapi.json")
	a.want(r, http.StatusOK, "")
	if cc := r.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("Cache-Control %q", cc)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	file, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Body, file) {
		t.Error("the served document differs from web/openapi.json")
	}
	if !strings.HasPrefix(a.doc.OpenAPI, "3.0") {
		t.Errorf("openapi %q, want 3.0.x", a.doc.OpenAPI)
	}
	if s := a.doc.Components.SecuritySchemes["bearerAuth"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Error("no bearer security scheme")
	}
	if len(a.doc.Security) != 1 || a.doc.Security[0]["bearerAuth"] == nil {
		t.Error("the bearer scheme is not the default security requirement")
	}

	// Every registered API route is documented, and every documented
	// operation is a route.
	param := regexp.MustCompile(`:([a-z_]+)`)
	registered := map[string]bool{}
	for _, rt := range env.Server.Routes() {
		method, path, _ := strings.Cut(rt, " ")
		if !strings.HasPrefix(path, "/api/v1/") || strings.HasPrefix(method, "echo_") {
			continue
		}
		registered[method+" "+param.ReplaceAllString(strings.TrimPrefix(path, "/api/v1"), "{$1}")] = true
	}
	documented := map[string]bool{}
	for path, item := range a.doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = true
			if path == "/openapi.json" {
				if op.Security == nil || len(*op.Security) != 0 {
					t.Error("GET /openapi.json must need no token (security: [])")
				}
				continue
			}
			if op.Security != nil {
				t.Errorf("%s %s overrides the bearer requirement", method, path)
			}
			for _, status := range []string{"401", "429", "500"} {
				if op.Responses.Value(status) == nil {
					t.Errorf("%s %s does not document %s", method, path, status)
				}
			}
		}
	}
	var missing, extra []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for d := range documented {
		if !registered[d] {
			extra = append(extra, d)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, m := range missing {
		t.Errorf("route %s is not in openapi.json", m)
	}
	for _, e := range extra {
		t.Errorf("openapi.json documents %s, which the server does not register", e)
	}
	if len(registered) < 11 {
		t.Errorf("only %d API routes registered: %v", len(registered), registered)
	}
}
