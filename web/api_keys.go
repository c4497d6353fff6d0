package web

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
	"github.com/labstack/echo/v4"
)

func toAPIKey(k *keyledger.Key, now time.Time) wire.Key {
	out := wire.Key{
		ID: k.ID, Name: k.Name, Provider: string(k.Provider), Project: k.Project, Environment: k.Environment,
		Owner:       wire.Owner{Email: k.OwnerEmail, Name: k.OwnerName, Active: k.OwnerActive},
		Description: k.Description, Scope: k.Scope, MaskedHint: k.MaskedHint, CurrentVersion: k.CurrentVersion,
		EffectiveRotationDays: k.EffectiveDays,
		RotateBy:              apiTime(k.RotateBy),
		RotationStatus:        string(keyledger.RotationStatusAt(now, k.RotateBy)),
		LastRotatedAt:         apiTime(k.LastRotatedAt),
		LastVerifiedAt:        apiTimePtr(k.LastVerifiedAt),
		CreatedAt:             apiTime(k.CreatedAt),
		UpdatedAt:             apiTime(k.UpdatedAt),
		ArchivedAt:            apiTimePtr(k.ArchivedAt),
	}
	if k.RotationDays > 0 {
		days := k.RotationDays
		out.RotationDays = &days
	}
	if k.LastVerifiedAt != nil {
		out.VerifyResult = strPtr(k.VerifyResult)
		msg := k.VerifyMessage
		out.VerifyMessage = &msg
	}
	return out
}

// apiKeyStatuses are the status filters of GET /keys, as on the page.
var apiKeyStatuses = []string{"overdue", "due_soon", "ok", "failing", "never_verified", "orphaned", "stale", "archived"}

// apiKeyList is GET /api/v1/keys: the page's filters, in name order, in
// pages joined by an opaque cursor (keyset on lower(name), id, so keys
// added or removed meanwhile never make a page repeat or skip one).
func (s *Server) apiKeyList(c echo.Context) error {
	q := c.QueryParams()
	var v keyledger.Validation
	limit := queryLimit(c, &v, 50, 200)
	// The page's filters; the order is always by name (the cursor is a
	// keyset on it).
	f := keyFilterFrom(c)
	f.Sort, f.Desc, f.PerPage = "name", false, limit
	if f.Status != "" && !slices.Contains(apiKeyStatuses, f.Status) {
		v.Add("status", "status is one of "+strings.Join(apiKeyStatuses, ", ")+".")
	}
	if raw := q.Get("cursor"); raw != "" {
		cur, err := decodeCursor(raw, "keys")
		if err != nil {
			return err
		}
		f.AfterName, f.AfterID = cur.Name, cur.ID
		if f.AfterID == "" {
			// An empty id would mean "from the start": refuse instead.
			return &keyledger.Error{Code: keyledger.EINVALID, Message: "The cursor is not valid.",
				Fields: map[string]string{"cursor": "Use the next_cursor of a previous answer of this listing, unchanged."}}
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	page, err := s.store.ListKeys(c.Request().Context(), s.actor(c), f)
	if err != nil {
		return err
	}
	now := s.store.Now()
	out := wire.KeyList{Keys: make([]wire.Key, 0, len(page.Keys))}
	for i := range page.Keys {
		out.Keys = append(out.Keys, toAPIKey(&page.Keys[i], now))
	}
	if n := len(page.Keys); n > 0 && page.Total > n {
		last := page.Keys[n-1]
		next := encodeCursor(apiCursor{Kind: "keys", Name: last.Name, ID: last.ID})
		out.NextCursor = &next
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) apiKeyGet(c echo.Context) error {
	ctx := c.Request().Context()
	actor := s.actor(c)
	k, err := s.store.GetKey(ctx, actor, c.Param("id"))
	if err != nil {
		return err
	}
	versions, err := s.store.KeyVersions(ctx, actor, k.ID)
	if err != nil {
		return err
	}
	out := wire.KeyDetail{Key: toAPIKey(k, s.store.Now()), Versions: make([]wire.KeyVersion, 0, len(versions))}
	for i := range versions {
		v := &versions[i]
		out.Versions = append(out.Versions, wire.KeyVersion{Version: v.Version, CreatedAt: apiTime(v.CreatedAt), CreatedBy: strPtr(v.CreatedBy),
			SupersededAt: apiTimePtr(v.SupersededAt), DestroyAfter: apiTimePtr(v.DestroyAfter), DestroyedAt: apiTimePtr(v.DestroyedAt),
			MaskedHint: v.MaskedHint, Current: v.Current()})
	}
	if out.AtProvider, err = s.apiKeyAtProvider(c, k); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) apiKeyCreate(c echo.Context) error {
	var req wire.KeyCreateRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in := keyledger.KeyInput{Name: req.Name, Provider: req.Provider, Project: req.Project, Environment: req.Environment,
		OwnerEmail: req.Owner, Value: req.Value, Scope: req.Scope, Description: req.Description,
		// A program sends the value it means: stored as given.
		KeepWhitespace: true}
	if req.RotationDays != nil {
		in.RotationDays = strconv.Itoa(*req.RotationDays)
	}
	res, err := s.store.CreateKey(c.Request().Context(), s.actor(c), in)
	if err != nil {
		return err
	}
	warnings := res.Warnings
	if warnings == nil {
		warnings = []string{}
	}
	return c.JSON(http.StatusCreated, wire.KeyCreated{Key: toAPIKey(res.Key, s.store.Now()), Warnings: warnings})
}

// apiKeyReveal is POST /api/v1/keys/{id}/reveal. The store checks the
// token's reveal scope, the environment's policy and reason, and whether
// the environment lets tokens reveal at all (a token cannot step up).
func (s *Server) apiKeyReveal(c echo.Context) error {
	var req wire.RevealRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	version := 0
	if req.Version != nil {
		if *req.Version < 1 {
			return &keyledger.Error{Code: keyledger.EINVALID, Message: "Please correct the highlighted fields.",
				Fields: map[string]string{"version": "version is a version number (1 or more), or leave it out for the current one."}}
		}
		version = *req.Version
	}
	rev, err := s.store.RevealVersion(c.Request().Context(), s.actor(c), c.Param("id"), version, req.Reason)
	if err != nil {
		return err
	}
	s.metrics.revealed(rev.Key.Environment)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, wire.Revealed{KeyID: rev.Key.ID, Name: rev.Key.Name, Environment: rev.Key.Environment,
		Version: rev.Version, Value: rev.Value, EnvVar: keyledger.EnvVarName(rev.Key.Provider, rev.Key.Name, rev.Value)})
}

func (s *Server) apiKeyRotate(c echo.Context) error {
	var req wire.RotateRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in := keyledger.RotateInput{Value: req.Value, KeepWhitespace: true}
	if req.GraceDays != nil {
		in.GraceDays = strconv.Itoa(*req.GraceDays)
	}
	if req.ExpectedVersion != nil {
		if *req.ExpectedVersion < 1 {
			return &keyledger.Error{Code: keyledger.EINVALID, Message: "Please correct the highlighted fields.",
				Fields: map[string]string{"expected_version": "expected_version is the key's current_version as you last read it (1 or more), or leave it out."}}
		}
		in.ExpectedVersion = strconv.Itoa(*req.ExpectedVersion)
	}
	k, err := s.store.RotateKey(c.Request().Context(), s.actor(c), c.Param("id"), in)
	if err != nil {
		return renameField(err, "version", "expected_version")
	}
	return c.JSON(http.StatusOK, toAPIKey(k, s.store.Now()))
}

// renameField returns err with its field error from (a form field name)
// under to (the API's name for it).
func renameField(err error, from, to string) error {
	fields := keyledger.FieldErrors(err)
	msg, ok := fields[from]
	if !ok {
		return err
	}
	renamed := make(map[string]string, len(fields))
	for k, v := range fields {
		if k != from {
			renamed[k] = v
		}
	}
	renamed[to] = msg
	return &keyledger.Error{Code: keyledger.ErrorCode(err), Message: keyledger.ErrorMessage(err), Fields: renamed}
}

// apiKeyVerify is POST /api/v1/keys/{id}/verify: the server uses the key
// against its provider and shows the result, never the value.
func (s *Server) apiKeyVerify(c echo.Context) error {
	var req struct{}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	res, err := s.store.VerifyKey(ctx, s.actor(c), c.Param("id"), s.cfg.Verifier)
	if err != nil {
		return err
	}
	k, err := s.store.GetKey(ctx, s.actor(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, wire.VerifyResult{Result: res.Result, Message: res.Message, Key: toAPIKey(k, s.store.Now())})
}
