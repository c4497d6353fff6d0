package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/templates"
	"github.com/keyledger/keyledger/web/wire"
	"github.com/labstack/echo/v4"
)

// render writes a component into a buffer first, so that an error halfway
// through never sends half a page.
func render(c echo.Context, status int, comp templ.Component) error {
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer putPageBuffer(buf)
	buf.Reset()
	if err := comp.Render(c.Request().Context(), buf); err != nil {
		return err
	}
	// HTMLBlob has written the bytes when it returns: the buffer can go
	// back to the pool.
	return c.HTMLBlob(status, buf.Bytes())
}

// pageBuffers reuses render buffers: pages are tens of kilobytes (the key
// list 40 to 60), and a fresh buffer per view, grown by doubling, cost a
// fifth of the server's time on the key list once its body was kept. A
// pool of empty buffers holds no state of any server, so it is shared.
var pageBuffers = sync.Pool{New: func() any {
	b := new(bytes.Buffer)
	b.Grow(64 << 10)
	return b
}}

// putPageBuffer keeps buffers up to 1 MiB: a rare huge page (a long audit
// log) should not stay pinned in the pool.
func putPageBuffer(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		pageBuffers.Put(b)
	}
}

func (s *Server) page(c echo.Context, title, nav string) templates.Page {
	return templates.Page{
		Title:     title,
		User:      currentUser(c),
		CSRF:      csrfToken(c),
		RequestID: requestID(c),
		Asset:     s.assets.Path,
		Nav:       nav,
		Now:       s.store.Now(),
	}
}

// statusOf is the one table from domain error codes to HTTP status.
func statusOf(code string) int {
	switch code {
	case keyledger.EINVALID:
		return http.StatusUnprocessableEntity
	case keyledger.ECONFLICT:
		return http.StatusConflict
	case keyledger.EFORBIDDEN, keyledger.ESTEPUP:
		// ESTEPUP: signed in, refused until the person confirms it is them.
		return http.StatusForbidden
	case keyledger.ENOTFOUND:
		return http.StatusNotFound
	case keyledger.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case keyledger.ETOOMANY:
		return http.StatusTooManyRequests
	case keyledger.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// handleError is the one place errors become responses: a page for the
// browser, JSON for the API. Only internal errors are logged with detail;
// the user gets a safe message and the request id to quote.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	err = stoppedBy(c.Request().Context(), err)
	var status int // every case below sets it
	message := keyledger.ErrorMessage(err)
	code := keyledger.ErrorCode(err)
	var he *echo.HTTPError
	var re *apiRequestError
	switch {
	case errors.As(err, &re):
		// A request that cannot be read at all (rejectBadBytes, the
		// API's JSON reader): its message says what is wrong.
		status, code, message = re.status, keyledger.EINVALID, re.message
	case errors.As(err, &he):
		status = he.Code
		code = httpCode(status)
		message = httpMessage(status)
	default:
		status = statusOf(code)
	}
	if status >= 500 {
		s.log.Error("request failed", "request_id", requestID(c), "path", logPath(c.Request().URL.Path), "status", status, "err", err)
	}
	if status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", "5")
	}
	setRetryAfter(c, err)
	if isAPI(c) || wantsJSON(c) {
		// Fields: per-field messages, keyed like the form (and API body)
		// fields; left out when there are none.
		_ = c.JSON(status, wire.Error{Error: wire.ErrorBody{Code: code, Message: message, RequestID: requestID(c),
			Fields: keyledger.FieldErrors(err)}})
		return
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	heading := http.StatusText(status)
	if rerr := render(c, status, templates.ErrorPage(s.page(c, heading, ""), templates.ErrorView{Status: status, Heading: heading, Message: message, Retry: retryAfterCSRF(c)})); rerr != nil {
		s.log.Error("render error page", "request_id", requestID(c), "err", rerr)
		_ = c.String(status, message)
	}
}

// stoppedBy gives an error that is not a domain error the reason its
// request was stopped, when that reason is one (the server's deadline:
// busy; a shutdown: shutting down), so it is answered 503, not 500.
func stoppedBy(ctx context.Context, err error) error {
	var de *keyledger.Error
	if errors.As(err, &de) || ctx.Err() == nil || !errors.As(context.Cause(ctx), &de) {
		return err
	}
	return fmt.Errorf("%w (%w)", de, err)
}

// setRetryAfter sends the wait a throttled request must observe (a
// refused sign-in, code or step-up), so clients need not parse the
// message to know when to come back.
func setRetryAfter(c echo.Context, err error) {
	if d := keyledger.RetryAfter(err); d > 0 && keyledger.ErrorCode(err) == keyledger.ETOOMANY {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	}
}

func httpCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return keyledger.ENOTFOUND
	case http.StatusForbidden:
		return keyledger.EFORBIDDEN
	case http.StatusUnauthorized:
		return keyledger.EUNAUTHORIZED
	case http.StatusTooManyRequests:
		return keyledger.ETOOMANY
	case http.StatusServiceUnavailable:
		return keyledger.EUNAVAILABLE
	}
	if status >= 500 {
		return keyledger.EINTERNAL
	}
	return keyledger.EINVALID
}

func httpMessage(status int) string {
	switch status {
	case http.StatusNotFound:
		return "There is no page at this address."
	case http.StatusMethodNotAllowed:
		return "This address does not accept that kind of request."
	case http.StatusRequestEntityTooLarge:
		return "The form was too large. A key's value may be at most 8 KiB."
	case http.StatusUnsupportedMediaType:
		return "The request body is not in a format this address accepts."
	}
	if status >= 500 {
		return "Something went wrong on our side. The error was logged."
	}
	return http.StatusText(status) + "."
}
