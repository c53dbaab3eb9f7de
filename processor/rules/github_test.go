package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-github/v60/github"
)

func TestGitHubClient(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var calls []string
	mux := http.NewServeMux()
	record := func(r *http.Request) string {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, r.Method+" "+r.URL.Path+" "+string(b))
		return string(b)
	}
	mux.HandleFunc("GET /repos/o/r/issues/7/comments", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		page := r.URL.Query().Get("page")
		if page == "" {
			w.Header().Set("Link", fmt.Sprintf(`<%s?page=2>; rel="next"`, "http://"+r.Host+r.URL.Path))
			fmt.Fprint(w, `[{"id":1,"body":"first","user":{"login":"alice"}}]`)
			return
		}
		fmt.Fprint(w, `[{"id":2,"body":"second","user":{"login":"hookd[bot]"}}]`)
	})
	mux.HandleFunc("POST /repos/o/r/issues/7/comments", func(w http.ResponseWriter, r *http.Request) {
		var c struct{ Body string }
		_ = json.Unmarshal([]byte(record(r)), &c)
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"id":3,"body":%q,"user":{"login":"hookd[bot]"}}`, c.Body)
	})
	mux.HandleFunc("PATCH /repos/o/r/issues/comments/3", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		fmt.Fprint(w, `{"id":3}`)
	})
	mux.HandleFunc("POST /repos/o/r/issues/7/labels", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		fmt.Fprint(w, `[]`)
	})
	mux.HandleFunc("DELETE /repos/o/r/issues/7/labels/{name}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		if r.PathValue("name") == "absent" {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"message":"Label does not exist"}`)
			return
		}
		fmt.Fprint(w, `[]`)
	})
	mux.HandleFunc("DELETE /repos/o/r/issues/8/labels/{name}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(403)
		fmt.Fprint(w, `{"message":"forbidden"}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := github.NewClient(srv.Client())
	c.BaseURL, _ = url.Parse(srv.URL + "/")
	g := GitHubClient{Client: c}
	ctx := context.Background()

	cs, err := g.ListComments(ctx, "o", "r", 7)
	if err != nil || !slices.Equal(cs, []Comment{{1, "first", "alice"}, {2, "second", "hookd[bot]"}}) {
		t.Fatalf("list: %v %+v", err, cs)
	}
	nc, err := g.CreateComment(ctx, "o", "r", 7, "hello")
	if err != nil || nc != (Comment{3, "hello", "hookd[bot]"}) {
		t.Fatalf("create: %v %+v", err, nc)
	}
	if err := g.EditComment(ctx, "o", "r", 3, "edited"); err != nil {
		t.Fatal(err)
	}
	if err := g.AddLabels(ctx, "o", "r", 7, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := g.RemoveLabel(ctx, "o", "r", 7, "present"); err != nil {
		t.Fatal(err)
	}
	if err := g.RemoveLabel(ctx, "o", "r", 7, "absent"); err != nil {
		t.Fatalf("removing an absent label: %v", err)
	}
	if err := g.RemoveLabel(ctx, "o", "r", 7, "kind/bug"); err != nil { // one path segment, escaped
		t.Fatalf("removing a label with a slash: %v", err)
	}
	if err := g.RemoveLabel(ctx, "o", "r", 8, "x"); err == nil {
		t.Fatal("403 swallowed")
	}
	want := []string{
		"GET /repos/o/r/issues/7/comments ", "GET /repos/o/r/issues/7/comments ",
		"POST /repos/o/r/issues/7/comments {\"body\":\"hello\"}\n",
		"PATCH /repos/o/r/issues/comments/3 {\"body\":\"edited\"}\n",
		"POST /repos/o/r/issues/7/labels [\"a\",\"b\"]\n",
		"DELETE /repos/o/r/issues/7/labels/present ", "DELETE /repos/o/r/issues/7/labels/absent ",
		"DELETE /repos/o/r/issues/7/labels/kind/bug ",
	}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls:\n%q\nwant\n%q", calls, want)
	}
}
