package providertest_test

import (
	"context"
	"fmt"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// A test starts a fake, fills it, points a provideradmin.Client at it and
// checks what the fake saw.
func ExampleNewOpenAI() {
	f := providertest.NewOpenAI()
	defer f.Close()
	f.AddProject(providertest.OpenAIProject{ID: "proj_web", Name: "Web shop"})
	id := f.AddKey(providertest.OpenAIKey{
		Project: "proj_web", Name: "checkout", RedactedValue: providertest.OpenAIRedact("sk-proj-abcdefghijklmnopWXYZ"),
		OwnerType: "user", OwnerEmail: "ann@example.com",
	})

	c := provideradmin.New(provideradmin.Config{OpenAIBaseURL: f.URL()})
	cred := keyledger.ProviderCredential{Provider: keyledger.ProviderOpenAI, AdminKey: providertest.OpenAIAdminKey}
	keys, err := c.Keys(context.Background(), cred)
	if err != nil {
		panic(err)
	}
	fmt.Println(keys[0].ID == id, keys[0].Hint, keys[0].CreatedBy)

	if err := c.Revoke(context.Background(), cred, keyledger.ProviderKeyRef{ID: id, Project: "proj_web"}); err != nil {
		panic(err)
	}
	_, exists := f.Key(id)
	fmt.Println(f.Count("DELETE", "/v1/organization/projects/proj_web/api_keys/"+id), exists)
	// Output:
	// true sk-proj-ab...WXYZ ann@example.com
	// 1 false
}

func ExampleNewAnthropic() {
	f := providertest.NewAnthropic()
	defer f.Close()
	f.AddUser(providertest.AnthropicUser{ID: "user_ann", Email: "ann@example.com"})
	id := f.AddKey(providertest.AnthropicKey{
		Name: "batch jobs", PartialKeyHint: providertest.AnthropicHint("sk-ant-api03-R2Dxxxxxxxxxxxxxxxxxxxxxxxxxx-igAA"),
		CreatedByID: "user_ann",
	})

	c := provideradmin.New(provideradmin.Config{AnthropicBaseURL: f.URL()})
	cred := keyledger.ProviderCredential{Provider: keyledger.ProviderAnthropic, AdminKey: providertest.AnthropicAdminKey}
	if err := c.Revoke(context.Background(), cred, keyledger.ProviderKeyRef{ID: id}); err != nil {
		panic(err)
	}
	k, _ := f.Key(id)
	fmt.Println(k.PartialKeyHint, k.Status)
	// Output:
	// sk-ant-api03-R2D...igAA inactive
}
