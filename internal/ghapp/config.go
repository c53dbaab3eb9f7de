package ghapp

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultAPIURL is GitHub.com's REST API.
const DefaultAPIURL = "https://api.github.com/"

// Config is the `github` section: the GitHub App hookd runs as.
type Config struct {
	// AppID is the App ID from the GitHub App's settings page. No default; env HOOKD_GITHUB_APP_ID.
	AppID int64 `yaml:"app_id"`
	// PrivateKeyFile is the path of the app's private key (.pem, from "Generate a private key").
	// No default; env HOOKD_GITHUB_PRIVATE_KEY_FILE. Set this or PrivateKey, not both.
	PrivateKeyFile string `yaml:"private_key_file"`
	// PrivateKey is the PEM of the app's private key inline, an alternative to PrivateKeyFile
	// for secret stores that expose values rather than files. A PEM on one line with its
	// newlines written as \n (env files, single-line secret fields) is accepted too, in either
	// setting. PKCS#1 ("RSA PRIVATE KEY", GitHub's download) or PKCS#8 ("PRIVATE KEY"), LF or
	// CRLF line endings; not encrypted. No default; env HOOKD_GITHUB_PRIVATE_KEY.
	PrivateKey string `yaml:"private_key"`
	// WebhookSecrets verify deliveries' X-Hub-Signature-256. Several are accepted at once so a
	// secret can be rotated: add the new one, change it on GitHub, then remove the old one.
	// Surrounding white space is trimmed. No default; env HOOKD_GITHUB_WEBHOOK_SECRET
	// (comma-separated for several, so a secret with a comma must be set in the file).
	WebhookSecrets []string `yaml:"webhook_secrets"`
	// APIURL is the REST API base URL, used verbatim: "https://api.github.com/" (default), or
	// "https://HOST/api/v3/" for GitHub Enterprise Server. A trailing slash is added if missing.
	APIURL string `yaml:"api_url"`
	// PublicURL is the URL GitHub should POST webhooks to (hookd's public address plus the
	// webhook path). Optional; when set, a preflight compares it with the app's hook config.
	PublicURL string `yaml:"public_url"`
}

// Defaults fills unset fields with their documented defaults, and trims the webhook secrets of
// surrounding white space as their environment variable is: a YAML block scalar or a secret
// file keeps a trailing newline that GitHub's secret does not have, and every delivery would
// fail its signature check.
func (c *Config) Defaults() {
	for i, s := range c.WebhookSecrets {
		c.WebhookSecrets[i] = strings.TrimSpace(s)
	}
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if !strings.HasSuffix(c.APIURL, "/") {
		c.APIURL += "/"
	}
}

// Validate reports every malformed setting at once, each naming the setting. Absent
// credentials are not errors here (hookd can start without them): see Missing.
func (c Config) Validate() error {
	var errs []error
	if c.AppID < 0 {
		errs = append(errs, fmt.Errorf("github.app_id: %d is not an App ID; copy the App ID from the GitHub App's settings page", c.AppID))
	}
	if c.PrivateKeyFile != "" && c.PrivateKey != "" {
		errs = append(errs, errors.New("github.private_key_file and github.private_key are both set; keep one (HOOKD_GITHUB_PRIVATE_KEY_FILE or HOOKD_GITHUB_PRIVATE_KEY)"))
	}
	if c.PrivateKey != "" && !strings.Contains(c.PrivateKey, "-----BEGIN") {
		errs = append(errs, errors.New("github.private_key: not a PEM block (it should start with -----BEGIN RSA PRIVATE KEY-----); to give a path use github.private_key_file"))
	}
	for i, s := range c.WebhookSecrets {
		if s == "" {
			errs = append(errs, fmt.Errorf("github.webhook_secrets[%d]: empty secret; remove it or set the secret configured on the GitHub App", i))
		}
	}
	if err := checkURL(c.APIURL, "github.api_url", "such as https://api.github.com/ or https://HOST/api/v3/"); err != nil {
		errs = append(errs, err)
	}
	if c.PublicURL != "" {
		if err := checkURL(c.PublicURL, "github.public_url", "such as https://hookd.example.com/webhook"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func checkURL(s, setting, example string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http(s) URL; use an absolute URL %s", setting, s, example)
	}
	return nil
}

// Missing lists the absent credentials, as settings with their environment variables (e.g.
// "github.app_id (HOOKD_GITHUB_APP_ID)"); empty when hookd can both call the API and verify
// deliveries.
func (c Config) Missing() []string {
	out := c.missingAPI()
	if len(c.WebhookSecrets) == 0 {
		out = append(out, "github.webhook_secrets (HOOKD_GITHUB_WEBHOOK_SECRET)")
	}
	return out
}

// missingAPI lists the absent credentials New needs.
func (c Config) missingAPI() []string {
	var out []string
	if c.AppID == 0 {
		out = append(out, "github.app_id (HOOKD_GITHUB_APP_ID)")
	}
	if c.PrivateKeyFile == "" && c.PrivateKey == "" {
		out = append(out, "github.private_key_file (HOOKD_GITHUB_PRIVATE_KEY_FILE)")
	}
	return out
}

// CanCallAPI reports whether the app id and a private key are configured, so New can work.
func (c Config) CanCallAPI() bool { return len(c.missingAPI()) == 0 }

// MissingHint is the one log line hookd prints when credentials are absent, or "" when none are:
// what is missing and how to set it.
func (c Config) MissingHint() string {
	m := c.Missing()
	if len(m) == 0 {
		return ""
	}
	return "GitHub App credentials missing: " + strings.Join(m, ", ") +
		"; set them in the config file's github section or in the environment (values from the GitHub App's settings page)"
}
