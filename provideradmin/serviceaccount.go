package provideradmin

import (
	"context"
	"net/http"
	"strings"

	"github.com/keyledger/keyledger"
)

// ServiceAccountKey is the root package's: the one definition of what
// CreateServiceAccount returns, for the store and for callers here.
type ServiceAccountKey = keyledger.ServiceAccountKey

// CreateServiceAccount creates a service account named name in an OpenAI
// project (POST /v1/organization/projects/{project}/service_accounts) and
// returns its new API key. It is the first step of an automated rotation;
// the old key is revoked separately.
func (c *Client) CreateServiceAccount(ctx context.Context, cred keyledger.ProviderCredential, project, name string) (ServiceAccountKey, error) {
	if cred.Provider != keyledger.ProviderOpenAI {
		return ServiceAccountKey{}, &keyledger.ProviderAdminError{Kind: keyledger.ProviderRejected,
			Message: "only OpenAI creates service accounts with a key"}
	}
	a, err := c.api(cred)
	if err != nil {
		return ServiceAccountKey{}, err
	}
	name = strings.TrimSpace(name)
	if !validID(project) || name == "" {
		return ServiceAccountKey{}, &keyledger.ProviderAdminError{Kind: keyledger.ProviderRejected,
			Message: "a service account needs a project id and a name; nothing was sent"}
	}
	o := a.(*openAI)
	var out struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		APIKey struct {
			ID    string `json:"id"`
			Value string `json:"value"`
		} `json:"api_key"`
	}
	path := "/v1/organization/projects/" + project + "/service_accounts"
	if err := c.do(ctx, o.call(http.MethodPost, path, nil, map[string]string{"name": name}), &out); err != nil {
		return ServiceAccountKey{}, err
	}
	if out.APIKey.ID == "" || out.APIKey.Value == "" {
		return ServiceAccountKey{}, &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnavailable, Status: http.StatusOK,
			Message: "the provider created a service account but returned no API key"}
	}
	return ServiceAccountKey{ServiceAccountID: out.ID, Name: out.Name, KeyID: out.APIKey.ID, Value: out.APIKey.Value}, nil
}
