package templates

import (
	"strconv"

	"github.com/keyledger/keyledger"
)

// linkedAtProvider is the provider keys linked to the key itself.
func (v KeyDetailView) linkedAtProvider() []keyledger.KeyAtProvider {
	var out []keyledger.KeyAtProvider
	for _, k := range v.AtProvider {
		if k.Linked {
			out = append(out, k)
		}
	}
	return out
}

// olderAtProvider is the provider keys that carry a superseded version
// and still work there: the ones to revoke when a rotation's grace
// period ends.
func (v KeyDetailView) olderAtProvider() []keyledger.KeyAtProvider {
	var out []keyledger.KeyAtProvider
	for _, k := range v.AtProvider {
		if !k.Linked && k.Version > 0 && k.Version != v.Key.CurrentVersion {
			out = append(out, k)
		}
	}
	return out
}

// versionAtProvider is the provider key of an old version, if one still
// works at the provider.
func (v KeyDetailView) versionAtProvider(version int) (keyledger.KeyAtProvider, bool) {
	for _, k := range v.olderAtProvider() {
		if k.Version == version && k.Revocable() {
			return k, true
		}
	}
	return keyledger.KeyAtProvider{}, false
}

// revokeForm is the posted form's state when it was for provider key id.
func (v KeyDetailView) revokeForm(id int64) ProviderRevokeForm {
	if v.ProviderRevoke.ProviderKey == id {
		return v.ProviderRevoke
	}
	return ProviderRevokeForm{}
}

func (f ProviderRevokeForm) errors() map[string]string {
	return nonEmpty(map[string]string{"reason": f.ReasonError, "step_up": f.StepUpError})
}

func providerKeyDOM(prefix string, id int64) string { return prefix + "-" + strconv.FormatInt(id, 10) }

// providerStatusBadge is the badge class for the provider's status word.
func providerStatusBadge(k keyledger.KeyAtProvider) string {
	switch {
	case k.RevokedAt != nil || k.DeletedAt != nil:
		return "badge bad"
	case k.Status == "" || k.Status == keyledger.ProviderKeyActive:
		return "badge good"
	}
	return "badge warn"
}

func providerStatusLabel(k keyledger.KeyAtProvider) string {
	switch {
	case k.RevokedAt != nil && k.Provider == keyledger.ProviderOpenAI:
		return "deleted by keyledger"
	case k.RevokedAt != nil:
		return k.Status + " (revoked by keyledger)"
	case k.DeletedAt != nil:
		return "deleted at the provider"
	case k.Status == "":
		return keyledger.ProviderKeyActive
	}
	return k.Status
}

// providerRevokeFor is the refused form's state when it was for item id.
func (v OffboardingView) providerRevokeFor(id int64) ItemProviderRevokeForm {
	if v.ProviderRevoke.Item == id {
		return v.ProviderRevoke
	}
	return ItemProviderRevokeForm{}
}

// showRotation: the key page has a "Rotation at OpenAI" part when
// keyledger can rotate the key there, or rotation was turned on or tried.
func (v KeyDetailView) showRotation() bool {
	if v.Key.Provider != keyledger.ProviderOpenAI || v.Key.Archived() {
		return false
	}
	r := v.Rotation
	return v.RotateRefusal == "" || r.Enabled || r.LastError != "" || r.LastRotatedAt != nil || v.RotateFailure != ""
}
