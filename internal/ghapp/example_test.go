package ghapp_test

import (
	"context"
	"fmt"

	"github.com/hookd/hookd/internal/ghapp"
	"github.com/hookd/hookd/internal/githubfake"
)

// Building hookd's clients from the github configuration section, here against the fake.
func Example() {
	fake, err := githubfake.New(githubfake.Options{})
	if err != nil {
		panic(err)
	}
	fake.Start()
	defer fake.Close()
	inst, _ := fake.AddInstallation("acme", "widgets")

	app, err := ghapp.New(ghapp.Config{
		AppID:      fake.App().ID,
		PrivateKey: string(fake.App().PrivateKeyPEM), // or PrivateKeyFile
		APIURL:     fake.URL(),                       // used verbatim
	}, ghapp.Options{})
	if err != nil {
		panic(err)
	}
	gh, err := app.Installation(inst.ID) // cached: every caller shares it and its token
	if err != nil {
		panic(err)
	}
	repo, _, err := gh.Repositories.Get(context.Background(), "acme", "widgets")
	if err != nil {
		panic(err)
	}
	fmt.Println(repo.GetFullName())
	// Output: acme/widgets
}
