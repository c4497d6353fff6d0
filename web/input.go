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
// package's CheckValue applies the value's own documented rules (surrounding
// whitespace trimmed; NUL, other control characters than newline and tab,
// and invalid UTF-8 refused) and answers with a field error on the form,
// which keeps everything else the person typed.
var secretFields = map[string]bool{"value": true}

// rejectBadBytes refuses, with 400 and the name of the field, any request
// whose path, query parameters or form fields hold a NUL byte or invalid
// UTF-8. It is the one place that keeps such bytes out: Postgres refuses
// NUL in text (which surfaced as a 500 wherever a filter reached a query),
// and no name, filter or reason of keyledger can hold them. The check runs
// before the session, CSRF and every handler, so the database is never
// asked. Values are never echoed: the message names the field only.
//
// JSON bodies are read by the API's handlers, whose fields go through the
// root package's validation (checkText), which refuses the same bytes.
func rejectBadBytes(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if !cleanText(req.URL.Path) {
			return badRequest("The address contains a NUL byte or is not valid UTF-8 text.")
		}
		if name := badValue(req.URL.Query()); name != "" {
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
			if name := badValue(req.PostForm); name != "" {
				return badRequest("The form field %q contains a NUL byte or is not valid UTF-8 text.", name)
			}
		}
		return next(c)
	}
}

// badValue names the first field in vs whose name or value is not clean
// text, skipping secretFields' values; "" when all are clean.
func badValue(vs url.Values) string {
	for name, values := range vs {
		if !cleanText(name) {
			return strings.ToValidUTF8(strings.ReplaceAll(name, "\x00", ""), "") + " (its name)"
		}
		if secretFields[name] {
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
