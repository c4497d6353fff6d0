package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
	"github.com/labstack/echo/v4"
)

// apiRequestError is a request the API cannot read at all (400 malformed
// JSON, 415 wrong content type): answered in the API's error shape with a
// message saying what is wrong, which echo's generic HTTP errors lack.
type apiRequestError struct {
	status  int
	message string
}

func (e *apiRequestError) Error() string { return e.message }

// apiRequestErrors renders apiRequestError; every other error goes on to
// the server's error handler (handleError).
func apiRequestErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		var re *apiRequestError
		if err == nil || !errors.As(err, &re) || c.Response().Committed {
			return err
		}
		return c.JSON(re.status, wire.Error{Error: wire.ErrorBody{Code: keyledger.EINVALID, Message: re.message, RequestID: requestID(c)}})
	}
}

func badRequest(format string, args ...any) error {
	return &apiRequestError{status: http.StatusBadRequest, message: fmt.Sprintf(format, args...)}
}

// decodeJSON reads the request body into dst, a pointer to a struct. An
// empty body reads as {} (so POSTs whose fields are all optional need no
// body); anything else must be application/json holding exactly one JSON
// object with no fields dst does not know.
func decodeJSON(c echo.Context, dst any) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			// The body limit, hit while reading: 413.
			return he
		}
		return badRequest("The request body could not be read.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	ct := c.Request().Header.Get(echo.HeaderContentType)
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != echo.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
		return &apiRequestError{status: http.StatusUnsupportedMediaType,
			message: fmt.Sprintf("Send the request body as JSON with Content-Type: application/json (got %q).", truncateForMessage(ct, 60))}
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD without a word,
	// which for a key's value means storing something else than was sent:
	// refuse instead (the same rule as rejectBadBytes for forms).
	if !utf8.Valid(body) {
		return badRequest("The request body is not valid UTF-8 text.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err, dst)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("The request body must hold one JSON object and nothing after it.")
	}
	if name := nulField(dst); name != "" {
		return badRequest("Field %q contains a NUL byte.", name)
	}
	return nil
}

// nulField names the first string field of the struct dst points to that
// holds a NUL byte (written \u0000 in JSON), or "". A key's value is left
// to its own rule (keyledger.CheckValue), as in rejectBadBytes.
func nulField(dst any) string {
	v := reflect.ValueOf(dst)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return ""
	}
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		if secretFields[name] {
			continue
		}
		f := v.Field(i)
		for f.Kind() == reflect.Pointer && !f.IsNil() {
			f = f.Elem()
		}
		switch f.Kind() {
		case reflect.String:
			if strings.ContainsRune(f.String(), 0) {
				return name
			}
		case reflect.Slice:
			for j := range f.Len() {
				if e := f.Index(j); e.Kind() == reflect.String && strings.ContainsRune(e.String(), 0) {
					return name
				}
			}
		}
	}
	return ""
}

// jsonProblem explains a decoding error without echoing the body (which
// may hold a value).
func jsonProblem(err error, dst any) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequest("The request body is not valid JSON (error at byte %d).", syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("The request body ends in the middle of a JSON value.")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("The request body must be a JSON object.")
		}
		return badRequest("Field %q must be %s.", typ.Field, jsonKind(typ.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return badRequest("Unknown field %s; this endpoint accepts %s.", truncateForMessage(name, 60), strings.Join(jsonFields(dst), ", "))
	}
	return badRequest("The request body is not valid JSON.")
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	}
	return "a " + t.Kind().String()
}

// jsonFields lists the JSON names of a struct's fields.
func jsonFields(dst any) []string {
	t := reflect.TypeOf(dst)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{"no fields (send no body or {})"}
	}
	return out
}

func truncateForMessage(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// apiTime is a time as the API sends it: in UTC (encoding/json writes
// RFC 3339), so every answer reads the same wherever the server runs.
func apiTime(t time.Time) time.Time { return t.UTC() }

func apiTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := apiTime(*t)
	return &u
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Cursors are opaque to clients: base64url of a small JSON object with the
// kind of listing it continues, so one listing's cursor is refused by
// another.
type apiCursor struct {
	Kind string `json:"k"`
	Name string `json:"n,omitempty"`
	ID   string `json:"i,omitempty"`
	// Before is the audit listing's position (events with a smaller id).
	Before int64 `json:"b,omitempty"`
	// Inv is the inventory's position (keyledger.InventoryCursor).
	Inv *inventoryCursor `json:"v,omitempty"`
}

type inventoryCursor struct {
	Connection  string `json:"c"`
	ProjectName string `json:"p"`
	ProjectID   string `json:"j"`
	Name        string `json:"n"`
	ID          int64  `json:"i"`
}

func encodeCursor(c apiCursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, kind string) (apiCursor, error) {
	var c apiCursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Kind != kind {
		return c, &keyledger.Error{Code: keyledger.EINVALID, Message: "The cursor is not valid.",
			Fields: map[string]string{"cursor": "Use the next_cursor of a previous answer of this listing, unchanged."}}
	}
	return c, nil
}

// queryLimit reads the limit parameter: def when absent, else 1..maxLimit.
func queryLimit(c echo.Context, v *keyledger.Validation, def, maxLimit int) int {
	raw := c.QueryParam("limit")
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > maxLimit {
		v.Add("limit", fmt.Sprintf("limit is a whole number from 1 to %d.", maxLimit))
		return def
	}
	return n
}
