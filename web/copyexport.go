package web

import (
	"mime"
	"net/http"
	"strings"

	"github.com/keyledger/keyledger"
	"github.com/labstack/echo/v4"
)

// The key list's quick copy (templates.CopyExportButton with app.js) posts
// the reveal form, POST /keys/{id}/reveal, asking for JSON: the answer is
// the one line that sets the key in the person's shell, for the clipboard.
// It is the same route, CSRF check and audited reveal as the form; only
// keys whose environment asks for no reason and no step-up may be copied
// so (store.RevealForCopy), and the value never reaches a page or a URL.

// copyLine is the quick copy's answer.
type copyLine struct {
	Line     string `json:"line"`
	Shell    string `json:"shell"`
	Label    string `json:"label"`
	Variable string `json:"variable"`
}

// wantsJSON reports whether a browser request asks for a JSON answer
// (app.js's fetch) rather than a page. Its errors are answered in JSON
// too (handleError).
func wantsJSON(c echo.Context) bool {
	accept := c.Request().Header.Get(echo.HeaderAccept)
	first, _, _ := strings.Cut(accept, ",")
	mt, _, err := mime.ParseMediaType(strings.TrimSpace(first))
	return err == nil && mt == echo.MIMEApplicationJSON
}

// keyCopyLine answers the quick copy. Reason and version fields are
// ignored: the quick copy is always the current version, without a
// reason, and a key that needs one is refused.
func (s *Server) keyCopyLine(c echo.Context) error {
	actor := s.actor(c)
	rev, err := s.store.RevealForCopy(c.Request().Context(), actor, c.Param("id"))
	if err != nil {
		return err
	}
	s.metrics.revealed(rev.Key.Environment)
	c.Response().Header().Set("Cache-Control", "no-store")
	shell := actor.User.CopyShell()
	name := keyledger.EnvVarName(rev.Key.Provider, rev.Key.Name, rev.Value)
	line, err := keyledger.FormatAssignment(shell, name, rev.Value)
	if err != nil {
		// The reveal is recorded; the value just cannot be carried in
		// this shell. The message names why, never the value.
		return keyledger.Errorf(keyledger.EINVALID, "This value %s. The reveal was recorded; reveal the key from its page to copy it another way.", err.Error())
	}
	return c.JSON(http.StatusOK, copyLine{Line: line, Shell: string(shell), Label: shell.Label(), Variable: name})
}

// profileShell remembers the person's shell for the quick copy: from the
// profile page's form (post/redirect/get), or from the reveal result,
// where app.js posts the shell of the line just copied (204).
func (s *Server) profileShell(c echo.Context) error {
	if err := s.store.SetShell(c.Request().Context(), s.actor(c), c.FormValue("shell")); err != nil {
		return err
	}
	if wantsJSON(c) {
		return c.NoContent(http.StatusNoContent)
	}
	return c.Redirect(http.StatusSeeOther, "/profile?shell=saved")
}
