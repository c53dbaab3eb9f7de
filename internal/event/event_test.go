package event

import (
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/payloads"
)

func TestParsePayload(t *testing.T) {
	t.Parallel()
	for _, name := range payloads.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := Meta{Event: payloads.Event(name), Delivery: "d"}
			if err := ParsePayload(&m, payloads.Get(name)); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(name, ".") && m.Action == "" {
				t.Errorf("no action parsed from %s", name)
			}
			if m.Sender == "" {
				t.Errorf("no sender parsed from %s", name)
			}
			ten := m.Tenant()
			if m.RepositoryID != 0 && (!ten.IsRepository() || ten.FullName() != m.Repository) {
				t.Errorf("tenant %+v for repository %q", ten, m.Repository)
			}
			if strings.HasPrefix(name, "installation.") && (ten.IsRepository() || ten.InstallationID == 0 || ten.Owner == "") {
				t.Errorf("installation event tenant %+v, want the installation's own tenant", ten)
			}
		})
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{`, `{"installation": 5}`,
		// A negative id would make a subject token that no consumer can parse back.
		`{"installation": {"id": -5}}`, `{"repository": {"id": -1, "full_name": "a/b"}}`} {
		var m Meta
		if err := ParsePayload(&m, []byte(bad)); err == nil {
			t.Errorf("ParsePayload(%q) accepted", bad)
		}
	}
	// An error quotes a bad value clipped, not whole.
	long := `{"installation": {"id": 1` + strings.Repeat("0", 10000) + `}}`
	if err := ParsePayload(&Meta{}, []byte(long)); err == nil || len(err.Error()) > 200 {
		t.Errorf("ParsePayload(an id of 10,001 digits) = %v", err)
	}
}

func TestMetaHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	m := Meta{Event: "issues", Action: "opened", Delivery: "72d3162e-cc78-11e3-81ab-4c9367dc0958", HookID: 9,
		InstallationID: 7, TargetID: 3, TargetType: "integration", RepositoryID: 42, Repository: "acme/api.v2",
		Owner: "acme", Sender: "octocat", SenderType: "User", ReceivedAt: time.Unix(1700000000, 123).UTC(), SecretIndex: 1, Source: SourceWebhook}
	got, err := MetaFromHeader(m.Header())
	if err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	if got.Tenant().Name != "api.v2" || got.Subject() != "hookd.in.7.42.issues.72d3162e-cc78-11e3-81ab-4c9367dc0958" {
		t.Fatalf("tenant %+v subject %s", got.Tenant(), got.Subject())
	}
	if _, err := MetaFromHeader(nil); err == nil {
		t.Fatal("headers without event and delivery accepted")
	}
	h := m.Header()
	h.Set(HeaderInstallationID, "seven")
	if _, err := MetaFromHeader(h); err == nil || !strings.Contains(err.Error(), HeaderInstallationID) {
		t.Fatalf("bad id header: %v", err)
	}
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		subj string
		want StoredSubject
		bad  bool
	}{
		{subj: "hookd.events.3.7.42.issues.d-1", want: StoredSubject{3, 7, 42, "issues", "d-1"}},
		{subj: "hookd.events.0.7._.installation.d-2", want: StoredSubject{0, 7, 0, "installation", "d-2"}},
		{subj: "hookd.events.0._._.ping.d-3", want: StoredSubject{0, 0, 0, "ping", "d-3"}},
		{subj: "hookd.in.7.42.issues.d-1", bad: true},
		{subj: "hookd.events.x.7.42.issues.d", bad: true},
		{subj: "hookd.events.1.-7.42.issues.d", bad: true},
		{subj: "hookd.events.1.7.42.issues", bad: true},
	} {
		got, err := ParseStoredSubject(tc.subj)
		if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
			t.Errorf("ParseStoredSubject(%q) = %+v, %v", tc.subj, got, err)
		}
	}
	src, dest := PartitionTransform(16)
	if src != "hookd.in.*.*.*.*" || !strings.Contains(dest, "partition(16,1,2)") {
		t.Fatalf("transform %s → %s", src, dest)
	}
	for id, ok := range map[string]bool{"72d3162e-cc78-11e3-81ab-4c9367dc0958": true, "a.b": false, "": false, "x y": false, "*": false, strings.Repeat("a", 129): false} {
		if ValidDeliveryID(id) != ok {
			t.Errorf("ValidDeliveryID(%q) = %v", id, !ok)
		}
	}
	for name, ok := range map[string]bool{"issues": true, "pull_request_review": true, "Issues": false, "a.b": false, "": false} {
		if ValidEventName(name) != ok {
			t.Errorf("ValidEventName(%q) = %v", name, !ok)
		}
	}
}

// FuzzParsePayload: any body either parses or errors; never panics; a parsed tenant's key is
// always a valid pair of subject tokens.
func FuzzParsePayload(f *testing.F) {
	for _, n := range []string{"issues.opened", "push", "installation.created", "ping-2"} {
		f.Add(payloads.Get(n))
	}
	f.Add([]byte(`{"installation":{"id":-1},"repository":{"id":0}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var m Meta
		if ParsePayload(&m, body) != nil {
			return
		}
		key := m.Tenant().Key()
		if strings.Count(key, ".") != 1 || strings.ContainsAny(key, " *>") {
			t.Fatalf("tenant key %q is not two subject tokens", key)
		}
	})
}

// FuzzParseStoredSubject: never panics; what parses formats back to the same subject.
func FuzzParseStoredSubject(f *testing.F) {
	f.Add("hookd.events.3.7.42.issues.d-1")
	f.Add("hookd.events.0._._.ping.x")
	f.Fuzz(func(t *testing.T, subj string) {
		s, err := ParseStoredSubject(subj)
		if err != nil {
			return
		}
		if s.InstallationID < 0 || s.RepositoryID < 0 {
			t.Fatalf("negative id from %q: %+v", subj, s)
		}
	})
}

// TestHeaderKeysCanonical: Header fills the map directly, so its keys must already be in the
// canonical form nats.Header.Get looks up.
func TestHeaderKeysCanonical(t *testing.T) {
	t.Parallel()
	m := Meta{Event: "e", Action: "a", Delivery: "d", HookID: 1, InstallationID: 2, TargetID: 3, TargetType: "t",
		RepositoryID: 4, Repository: "o/r", Owner: "o", Sender: "s", SenderType: "User", ReceivedAt: time.Now(), Source: "webhook"}
	h := m.Header()
	for k, v := range h {
		if textproto.CanonicalMIMEHeaderKey(k) != k {
			t.Errorf("header key %q is not canonical", k)
		}
		if len(v) != 1 || h.Get(k) != v[0] {
			t.Errorf("header %s = %v", k, v)
		}
	}
	if len(h) != 15 {
		t.Errorf("%d headers, want 15", len(h))
	}
}
