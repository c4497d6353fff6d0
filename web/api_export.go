package web

import (
	"net/http"
	"strings"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
	"github.com/labstack/echo/v4"
)

// apiExport is POST /api/v1/export: every live key of an environment
// (optionally one project) the token's user may reveal, rendered as a file
// in content, each audited as an export by the store; the keys policy
// leaves out, whose value is damaged, or whose value the format cannot
// carry are listed in left_out with the reason. A sensitive environment exports
// with a token only where an admin allowed token reveals.
func (s *Server) apiExport(c echo.Context) error {
	var req wire.ExportRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var v keyledger.Validation
	if strings.TrimSpace(req.Environment) == "" {
		v.Add("environment", "Choose an environment.")
	}
	if req.Format == "" {
		req.Format = string(keyledger.FormatJSON)
	}
	format, ok := keyledger.ParseExportFormat(req.Format)
	if !ok {
		v.Add("format", "format is "+exportFormatList()+".")
	}
	if err := v.Err(); err != nil {
		return err
	}
	res, err := s.store.ExportKeys(c.Request().Context(), s.actor(c), req.Environment, req.Project, req.Reason, format)
	if err != nil {
		return err
	}
	s.metrics.exported(res.Environment.Name, len(res.Entries))
	out := wire.Export{Environment: res.Environment.Name, Format: string(format), Content: string(res.File),
		Variables: make([]wire.ExportVariable, 0, len(res.Entries)), LeftOut: make([]wire.ExportLeftOut, 0, len(res.Refused))}
	for _, e := range res.Entries {
		out.Variables = append(out.Variables, wire.ExportVariable{Name: e.VarName, KeyID: e.KeyID, KeyName: e.KeyName, Project: e.Project})
	}
	for _, r := range res.Refused {
		out.LeftOut = append(out.LeftOut, wire.ExportLeftOut{KeyID: r.Key.ID, Name: r.Key.Name, Project: r.Key.Project, Reason: r.Reason})
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}
