package web

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// secretFields are form fields that carry a key's value. A value is
// stored exactly as given, so this layer does not judge it: the root
// package's CheckValue applies the value's own documented rules (never
// trimmed; surrounding whitespace only when confirmed; NUL, other control
// characters than newline, CR and tab, and invalid UTF-8 refused) and answers with a field error on the form,
// which keeps everything else the person typed.
var secretFields = map[string]bool{"value": true}

// foreignText are query parameters that another system writes and whose
// handler already reduces them to printable text: the identity provider's
// error_description on the single sign-on callback (see printable in
// oidc.go). Refusing them would turn "your identity provider did not sign
// you in" into a bare 400, and lose its audit event.
var foreignText = map[string]map[string]bool{oidcCallbackPath: {"error_description": true}}

// rejectBadBytes refuses, with 400 and the name of the field, any request
// whose query parameters or form fields hold a NUL byte or invalid UTF-8.
// It is the one place that keeps such bytes out: Postgres refuses NUL in
// text (which surfaced as a 500 wherever a filter reached a query), and no
// name, filter or reason of keyledger can hold them. The check runs before
// the session, CSRF and every handler, so the database is never asked.
// Values are never echoed: the message names the field only. Path
// parameters are ids each handler parses strictly: a NUL there is "not
// found", like any id that does not exist (the sweep test checks it).
//
// JSON bodies are read by the API's handlers, whose fields go through the
// root package's validation (checkText), which refuses the same bytes.
func rejectBadBytes(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if name := badValue(req.URL.Query(), foreignText[req.URL.Path]); name != "" {
			return badRequest("The query parameter %q contains a NUL byte or is not valid UTF-8 text.", name)
		}
		// The API takes JSON only and answers a form with 415; its body
		// is left for its own reader.
		if ct := req.Header.Get(echo.HeaderContentType); strings.HasPrefix(ct, echo.MIMEApplicationForm) && !isAPI(c) {
			// ParseForm reads the (size-limited) body once; handlers and
			// the CSRF check read the parsed fields afterwards.
			if err := req.ParseForm(); err != nil {
				var he *echo.HTTPError
				if errors.As(err, &he) {
					return err // over the body limit: 413
				}
				return badRequest("The form could not be read: it is not URL-encoded.")
			}
			if name := badValue(req.PostForm, secretFields); name != "" {
				return badRequest("The form field %q contains a NUL byte or is not valid UTF-8 text.", name)
			}
		}
		return next(c)
	}
}

// badValue names the first field in vs whose name or value is not clean
// text, skipping the values of the fields in skip; "" when all are clean.
func badValue(vs url.Values, skip map[string]bool) string {
	for name, values := range vs {
		if !cleanText(name) {
			return strings.ToValidUTF8(strings.ReplaceAll(name, "\x00", ""), "") + " (its name)"
		}
		if skip[name] {
			continue
		}
		for _, v := range values {
			if !cleanText(v) {
				return name
			}
		}
	}
	return ""
}

func cleanText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
