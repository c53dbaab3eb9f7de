package githubfake_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/hookd/hookd/internal/githubfake"
)

// A fake GitHub delivering to a webhook endpoint: user actions become signed deliveries, and the
// delivery log records each attempt.
func Example() {
	hookd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("received", r.Header.Get("X-GitHub-Event"))
	}))
	defer hookd.Close()

	fake, err := githubfake.New(githubfake.Options{WebhookURL: hookd.URL, WebhookSecret: "s3cret"})
	if err != nil {
		panic(err)
	}
	fake.Start() // fake.URL() is now the API base URL for go-github / ghapp
	defer fake.Close()

	if _, err := fake.AddInstallation("acme", "widgets"); err != nil {
		panic(err)
	}
	iss, _ := fake.OpenIssue("acme/widgets", "alice", "It broke", "steps to reproduce")
	_ = fake.LabelIssue("acme/widgets", iss.Number, "bob", "bug")

	for _, d := range fake.Deliveries() {
		fmt.Println(d.Event, d.Action, d.Status)
	}
	// Output:
	// received installation
	// received issues
	// received issues
	// installation created OK
	// issues opened OK
	// issues labeled OK
}
