package web

import (
	"net/http"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
	"github.com/labstack/echo/v4"
)

// A key at its provider over the API: what GET /keys/{id} adds from the
// key page's "At OpenAI" section, and the page's rotation at OpenAI
// (POST /keys/{id}/auto-rotate, /keys/{id}/provider-rotate) through the
// same store calls, which decide who may.

// apiKeyAtProvider reads what the connected providers say about k with
// the key page's own read (one statement; a second, the rotation state,
// only for an OpenAI key some provider links to it). Nil when no
// connected provider lists a key linked to k.
func (s *Server) apiKeyAtProvider(c echo.Context, k *keyledger.Key) (*wire.KeyAtProvider, error) {
	ctx := c.Request().Context()
	list, err := s.store.KeysAtProvider(ctx, s.actor(c), k)
	if err != nil {
		return nil, err
	}
	out := &wire.KeyAtProvider{Provider: string(k.Provider), Keys: []wire.LinkedKey{}}
	for _, kp := range list {
		if kp.Linked {
			out.Keys = append(out.Keys, toAPILinkedKey(kp))
		}
	}
	if len(out.Keys) == 0 {
		return nil, nil
	}
	if k.Provider == keyledger.ProviderOpenAI {
		rot, err := s.apiRotation(c, k, list)
		if err != nil {
			return nil, err
		}
		out.Rotation = &rot
	}
	return out, nil
}

// apiRotation is k's rotation at its provider, with why keyledger cannot
// rotate it there (judged on list, KeysAtProvider's answer for k).
func (s *Server) apiRotation(c echo.Context, k *keyledger.Key, list []keyledger.KeyAtProvider) (wire.RotationStatus, error) {
	r, err := s.store.ProviderRotation(c.Request().Context(), s.actor(c), k)
	if err != nil {
		return wire.RotationStatus{}, err
	}
	rot := toAPIRotation(k.ID, r)
	if _, err := keyledger.RotatableAtProvider(k, list); err != nil {
		rot.Refusal = keyledger.ErrorMessage(err)
	}
	return rot, nil
}

func toAPILinkedKey(kp keyledger.KeyAtProvider) wire.LinkedKey {
	out := wire.LinkedKey{ID: kp.ID, ProviderKeyID: kp.ProviderKeyID, Connection: kp.ConnectionName, ConnectionID: kp.ConnectionID,
		ProjectID: kp.ProjectID, ProjectName: kp.ProjectName, Status: kp.Status, CreatedBy: kp.CreatedBy,
		CreatedAt: apiTimePtr(kp.CreatedAt), LastUsedAt: apiTimePtr(kp.LastUsedAt), LastSeenAt: apiTime(kp.LastSeenAt),
		DeletedAt: apiTimePtr(kp.DeletedAt), RevokedAt: apiTimePtr(kp.RevokedAt), Usage: make([]wire.UsageDay, 0, len(kp.Usage))}
	if kp.RevokedAt != nil && kp.RevokedBy != "" {
		out.RevokedBy = strPtr(kp.RevokedBy)
	}
	for _, u := range kp.Usage {
		out.Usage = append(out.Usage, wire.UsageDay{Day: u.Day.UTC().Format(time.DateOnly), Requests: u.Requests,
			InputTokens: u.InputTokens, OutputTokens: u.OutputTokens})
	}
	return out
}

func toAPIRotation(keyID string, r keyledger.ProviderRotation) wire.RotationStatus {
	out := wire.RotationStatus{KeyID: keyID, Enabled: r.Enabled, ChangedAt: apiTimePtr(r.ChangedAt),
		LastAttemptAt: apiTimePtr(r.LastAttemptAt), LastError: r.LastError, LastRotatedAt: apiTimePtr(r.LastRotatedAt)}
	if r.ChangedBy != "" {
		out.ChangedBy = strPtr(r.ChangedBy)
	}
	return out
}

// apiKeyAutoRotate is POST /api/v1/keys/{id}/auto-rotate: the page's
// switch. A key keyledger cannot rotate at its provider is a 409 with
// the reason (turning it off always works).
func (s *Server) apiKeyAutoRotate(c echo.Context) error {
	var req wire.AutoRotateRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id := c.Param("id")
	if req.Enabled == nil {
		// An unknown key is not found, whatever the body says.
		if _, err := s.store.GetKey(ctx, s.actor(c), id); err != nil {
			return err
		}
		return &keyledger.Error{Code: keyledger.EINVALID, Message: "Please correct the highlighted fields.",
			Fields: map[string]string{"enabled": "Say whether to turn automated rotation on (true) or off (false)."}}
	}
	if err := s.store.SetAutoRotate(ctx, s.actor(c), id, *req.Enabled); err != nil {
		return err
	}
	k, err := s.store.GetKey(ctx, s.actor(c), id)
	if err != nil {
		return err
	}
	list, err := s.store.KeysAtProvider(ctx, s.actor(c), k)
	if err != nil {
		return err
	}
	rot, err := s.apiRotation(c, k, list)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rot)
}

// apiKeyProviderRotate is POST /api/v1/keys/{id}/provider-rotate, "Rotate
// now at OpenAI": the key with its new version. A key that does not
// qualify is a 409; a provider that refuses is a 503 (429 with
// Retry-After, which handleError sends) in plain words, the key as it was.
func (s *Server) apiKeyProviderRotate(c echo.Context) error {
	var req struct{}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	k, err := s.store.RotateAtProvider(c.Request().Context(), s.actor(c), s.cfg.ProviderAdmin, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAPIKey(k, s.store.Now()))
}
