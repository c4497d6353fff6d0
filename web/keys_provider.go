package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

// keyProviderRevoke revokes one of the key's provider keys at the
// provider (POST /keys/{id}/provider-revoke: reason, step_up, and
// provider_key, the provider key's row, absent for the one linked to the
// key). Refusals and provider failures come back on the key's page, next
// to the form, in plain words.
func (s *Server) keyProviderRevoke(c echo.Context) error {
	id := c.Param("id")
	form := templates.ProviderRevokeForm{Reason: strings.TrimSpace(c.FormValue("reason"))}
	if v := c.FormValue("provider_key"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return keyledger.Errorf(keyledger.EINVALID, "The provider key to revoke is not a number.")
		}
		form.ProviderKey = n
	}
	if secret := c.FormValue("step_up"); secret != "" {
		fieldErr, err := s.doStepUp(c, secret)
		if err != nil {
			return err
		}
		if fieldErr != "" {
			form.StepUpError = fieldErr
			return s.renderKeyDetailWith(c, id, http.StatusUnauthorized, detailExtras{providerRevoke: s.revokeFormFor(c, id, form)})
		}
	}
	res, err := s.store.RevokeAtProvider(c.Request().Context(), s.actor(c), s.cfg.ProviderAdmin, id, form.ProviderKey, form.Reason)
	if err != nil {
		status, ok := revokeFormError(err, &form)
		if !ok {
			return err
		}
		var ke *keyledger.Error
		if errors.As(err, &ke) && ke.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(ke.RetryAfter.Seconds()+0.5)))
		}
		return s.renderKeyDetailWith(c, id, status, detailExtras{providerRevoke: s.revokeFormFor(c, id, form)})
	}
	mark := "1"
	if res.Already {
		mark = "already"
	}
	return c.Redirect(http.StatusSeeOther, "/keys/"+id+"?provider_revoked="+mark)
}

// revokeFormFor pins the form state to the provider key it was for: the
// linked one when the form named none.
func (s *Server) revokeFormFor(c echo.Context, id string, f templates.ProviderRevokeForm) templates.ProviderRevokeForm {
	if f.ProviderKey != 0 {
		return f
	}
	k, err := s.store.GetKey(c.Request().Context(), s.actor(c), id)
	if err != nil {
		return f
	}
	list, err := s.store.KeysAtProvider(c.Request().Context(), s.actor(c), k)
	if err != nil {
		return f
	}
	for _, kp := range list {
		if kp.Linked {
			f.ProviderKey = kp.ID
			break
		}
	}
	return f
}

// revokeFormError puts a refusal the form can show into f and returns
// the status to answer with; ok is false for errors the error page
// handles (not found, forbidden, not linked, internal).
func revokeFormError(err error, f *templates.ProviderRevokeForm) (status int, ok bool) {
	code := keyledger.ErrorCode(err)
	switch {
	case code == keyledger.EINVALID && keyledger.FieldErrors(err)["reason"] != "":
		f.ReasonError = keyledger.FieldErrors(err)["reason"]
	case code == keyledger.ESTEPUP:
		f.StepUpError, f.StepUpMessage = keyledger.FieldErrors(err)["step_up"], keyledger.ErrorMessage(err)
	case code == keyledger.EUNAVAILABLE || code == keyledger.ETOOMANY:
		// The provider refused or did not answer: the page says so.
		f.Failure = keyledger.ErrorMessage(err)
	default:
		return 0, false
	}
	return statusOf(code), true
}

// offboardingProviderRevoke works a "revoke at the provider" item (POST
// /offboarding/{oid}/items/{item}/provider-revoke: reason, step_up).
func (s *Server) offboardingProviderRevoke(c echo.Context) error {
	id, err := offboardingID(c)
	if err != nil {
		return err
	}
	item, err := strconv.ParseInt(c.Param("item"), 10, 64)
	if err != nil || item <= 0 {
		return keyledger.ErrNotFound("Item")
	}
	form := templates.ItemProviderRevokeForm{Item: item}
	form.Reason = strings.TrimSpace(c.FormValue("reason"))
	if secret := c.FormValue("step_up"); secret != "" {
		fieldErr, err := s.doStepUp(c, secret)
		if err != nil {
			return err
		}
		if fieldErr != "" {
			form.StepUpError = fieldErr
			return s.renderOffboarding(c, http.StatusUnauthorized, offboardingExtras{providerRevoke: form})
		}
	}
	if _, err := s.store.RevokeOffboardingItemAtProvider(c.Request().Context(), s.actor(c), s.cfg.ProviderAdmin, id, item, form.Reason); err != nil {
		status, ok := revokeFormError(err, &form.ProviderRevokeForm)
		if !ok {
			return err
		}
		var ke *keyledger.Error
		if errors.As(err, &ke) && ke.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(ke.RetryAfter.Seconds()+0.5)))
		}
		return s.renderOffboarding(c, status, offboardingExtras{providerRevoke: form})
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/offboarding/%d?provider_revoked=1", id))
}

// rotationView fills the key page's "Rotation at OpenAI" part: read only
// for a key some provider lists (one statement more, on those pages only).
func (s *Server) rotationView(c echo.Context, k *keyledger.Key, v *templates.KeyDetailView, failure string) error {
	v.RotateFailure = failure
	if k.Provider != keyledger.ProviderOpenAI || len(v.AtProvider) == 0 {
		return nil
	}
	if _, err := keyledger.RotatableAtProvider(k, v.AtProvider); err != nil {
		v.RotateRefusal = keyledger.ErrorMessage(err)
	}
	_, creates := s.cfg.ProviderAdmin.(keyledger.ServiceAccountAdmin)
	v.CanRotateAtProvider = creates && keyledger.CanRotateAtProvider(currentUser(c)) == nil && !k.Archived()
	var err error
	v.Rotation, err = s.store.ProviderRotation(c.Request().Context(), s.actor(c), k)
	return err
}

// keyAutoRotate turns automated rotation at the provider on or off
// (POST /keys/{id}/auto-rotate: enabled = on|off). A key keyledger cannot
// rotate there comes back to its page with the reason.
func (s *Server) keyAutoRotate(c echo.Context) error {
	id := c.Param("id")
	var on bool
	switch c.FormValue("enabled") {
	case "on":
		on = true
	case "off":
	default:
		// An unknown key is not found, whatever the form says.
		if _, err := s.store.GetKey(c.Request().Context(), s.actor(c), id); err != nil {
			return err
		}
		return keyledger.Errorf(keyledger.EINVALID, "Say whether to turn automated rotation on or off (enabled = on or off).")
	}
	if err := s.store.SetAutoRotate(c.Request().Context(), s.actor(c), id, on); err != nil {
		if keyledger.ErrorCode(err) == keyledger.ECONFLICT {
			return s.renderKeyDetailWith(c, id, http.StatusConflict, detailExtras{rotateFailure: keyledger.ErrorMessage(err)})
		}
		return err
	}
	state := "off"
	if on {
		state = "on"
	}
	return c.Redirect(http.StatusSeeOther, "/keys/"+id+"?auto_rotate="+state)
}

// keyProviderRotate is "Rotate now at OpenAI" (POST
// /keys/{id}/provider-rotate). A refusal or a provider failure comes back
// on the key's page in plain words; the key is as it was.
func (s *Server) keyProviderRotate(c echo.Context) error {
	id := c.Param("id")
	k, err := s.store.RotateAtProvider(c.Request().Context(), s.actor(c), s.cfg.ProviderAdmin, id)
	if err != nil {
		switch code := keyledger.ErrorCode(err); code {
		case keyledger.ECONFLICT, keyledger.EUNAVAILABLE, keyledger.ETOOMANY:
			var ke *keyledger.Error
			if errors.As(err, &ke) && ke.RetryAfter > 0 {
				c.Response().Header().Set("Retry-After", strconv.Itoa(int(ke.RetryAfter.Seconds()+0.5)))
			}
			return s.renderKeyDetailWith(c, id, statusOf(code), detailExtras{rotateFailure: keyledger.ErrorMessage(err)})
		}
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/keys/"+id+"?provider_rotated="+strconv.Itoa(k.CurrentVersion))
}
