// Package config owns hookd's one top-level configuration: the YAML file (--config or
// HOOKD_CONFIG), the environment variables that override every key of it (HOOKD_ + the key's
// path, upper-cased: github.app_id is HOOKD_GITHUB_APP_ID), the defaults, and the validation that
// runs before anything starts. cmd/hookd decodes it once and hands each part its own section;
// no other package reads files or the environment for settings.
package config
