package web_test

import (
	"net/http"

	"github.com/keyledger/keyledger"
)

// Authorization matrix cases of single sign-on; listed in authzCases.
//
// The matrix's servers run without single sign-on, so both routes answer
// 404 to everyone there (no provider to send anyone to, no flow to
// finish). Their behaviour with single sign-on configured does not fit
// the matrix's one-request cells (a flow crosses the provider and needs
// the browser's own flow cookie): TestOIDCRoutesByActor in oidc_test.go
// runs the same actors against a configured server, and the other
// TestOIDC* tests drive whole flows.
func authzOIDCCases() []authzCase {
	notConfigured := func(string, string, *keyledger.Key) authzWant { return authzWant{status: http.StatusNotFound} }
	return []authzCase{
		{route: "GET /auth/oidc/login", method: "GET", path: fixedPath("/auth/oidc/login?next=%2Fkeys"), want: notConfigured},
		{route: "GET /auth/oidc/callback", method: "GET", path: fixedPath("/auth/oidc/callback?code=c&state=s"), want: notConfigured},
	}
}
