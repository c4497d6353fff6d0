package web

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/labstack/echo/v4"
)

// apiKey is a key's metadata as the API shows it. It has no field for a
// value: only reveal and export answers carry one.
type apiKey struct {
	ID                    string   `json:"id"`
	Name                  string   `json:"name"`
	Provider              string   `json:"provider"`
	Project               string   `json:"project"`
	Environment           string   `json:"environment"`
	Owner                 apiOwner `json:"owner"`
	Description           string   `json:"description"`
	Scope                 string   `json:"scope"`
	MaskedHint            string   `json:"masked_hint"`
	CurrentVersion        int      `json:"current_version"`
	RotationDays          *int     `json:"rotation_days"`
	EffectiveRotationDays int      `json:"effective_rotation_days"`
	RotateBy              string   `json:"rotate_by"`
	RotationStatus        string   `json:"rotation_status"`
	LastRotatedAt         string   `json:"last_rotated_at"`
	LastVerifiedAt        *string  `json:"last_verified_at"`
	VerifyResult          *string  `json:"verify_result"`
	VerifyMessage         *string  `json:"verify_message"`
	CreatedAt             string   `json:"created_at"`
	UpdatedAt             string   `json:"updated_at"`
	ArchivedAt            *string  `json:"archived_at"`
}

type apiOwner struct {
	Email  string `json:"email"`
	Name   string `json:"name"`
	Active bool   `json:"active"`
}

func toAPIKey(k *keyledger.Key, now time.Time) apiKey {
	out := apiKey{
		ID: k.ID, Name: k.Name, Provider: string(k.Provider), Project: k.Project, Environment: k.Environment,
		Owner:       apiOwner{Email: k.OwnerEmail, Name: k.OwnerName, Active: k.OwnerActive},
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

type apiKeyVersion struct {
	Version      int     `json:"version"`
	CreatedAt    string  `json:"created_at"`
	CreatedBy    *string `json:"created_by"`
	SupersededAt *string `json:"superseded_at"`
	DestroyAfter *string `json:"destroy_after"`
	DestroyedAt  *string `json:"destroyed_at"`
	MaskedHint   string  `json:"masked_hint"`
	Current      bool    `json:"current"`
}

type apiKeyDetail struct {
	apiKey
	Versions []apiKeyVersion `json:"versions"`
}

type apiKeyListResponse struct {
	Keys       []apiKey `json:"keys"`
	NextCursor *string  `json:"next_cursor"`
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
	now := time.Now()
	out := apiKeyListResponse{Keys: make([]apiKey, 0, len(page.Keys))}
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
	out := apiKeyDetail{apiKey: toAPIKey(k, time.Now()), Versions: make([]apiKeyVersion, 0, len(versions))}
	for i := range versions {
		v := &versions[i]
		out.Versions = append(out.Versions, apiKeyVersion{Version: v.Version, CreatedAt: apiTime(v.CreatedAt), CreatedBy: strPtr(v.CreatedBy),
			SupersededAt: apiTimePtr(v.SupersededAt), DestroyAfter: apiTimePtr(v.DestroyAfter), DestroyedAt: apiTimePtr(v.DestroyedAt),
			MaskedHint: v.MaskedHint, Current: v.Current()})
	}
	return c.JSON(http.StatusOK, out)
}

// apiKeyCreateRequest is POST /api/v1/keys, named like the register form.
type apiKeyCreateRequest struct {
	Name         string `json:"name"`
	Provider     string `json:"provider"`
	Project      string `json:"project"`
	Environment  string `json:"environment"`
	Owner        string `json:"owner"`
	Value        string `json:"value"`
	Scope        string `json:"scope"`
	RotationDays *int   `json:"rotation_days"`
	Description  string `json:"description"`
}

type apiKeyCreateResponse struct {
	Key      apiKey   `json:"key"`
	Warnings []string `json:"warnings"`
}

func (s *Server) apiKeyCreate(c echo.Context) error {
	var req apiKeyCreateRequest
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
	return c.JSON(http.StatusCreated, apiKeyCreateResponse{Key: toAPIKey(res.Key, time.Now()), Warnings: warnings})
}

type apiRevealRequest struct {
	Reason  string `json:"reason"`
	Version *int   `json:"version"`
}

type apiRevealResponse struct {
	KeyID       string `json:"key_id"`
	Name        string `json:"name"`
	Environment string `json:"environment"`
	Version     int    `json:"version"`
	Value       string `json:"value"`
	EnvVar      string `json:"env_var"`
}

// apiKeyReveal is POST /api/v1/keys/{id}/reveal. The store checks the
// token's reveal scope, the environment's policy and reason, and whether
// the environment lets tokens reveal at all (a token cannot step up).
func (s *Server) apiKeyReveal(c echo.Context) error {
	var req apiRevealRequest
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
	return c.JSON(http.StatusOK, apiRevealResponse{KeyID: rev.Key.ID, Name: rev.Key.Name, Environment: rev.Key.Environment,
		Version: rev.Version, Value: rev.Value, EnvVar: keyledger.EnvVarName(rev.Key.Provider, rev.Key.Name, rev.Value)})
}

type apiRotateRequest struct {
	Value           string `json:"value"`
	GraceDays       *int   `json:"grace_days"`
	ExpectedVersion *int   `json:"expected_version"`
}

func (s *Server) apiKeyRotate(c echo.Context) error {
	var req apiRotateRequest
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
	return c.JSON(http.StatusOK, toAPIKey(k, time.Now()))
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

type apiVerifyResponse struct {
	Result  string `json:"result"`
	Message string `json:"message"`
	Key     apiKey `json:"key"`
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
	return c.JSON(http.StatusOK, apiVerifyResponse{Result: res.Result, Message: res.Message, Key: toAPIKey(k, time.Now())})
}
