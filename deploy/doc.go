// Package deploy holds the container image, compose file and Helm chart; its tests check them
// statically.
//
// It has no Go API. The files it owns:
//
//	Dockerfile                       the production image (distroless, non-root); --target alpine for a shell and a HEALTHCHECK
//	Dockerfile.agents                hookd plus sh, curl, git, jq and examples/agents, for rules that run commands
//	*.dockerignore                   BuildKit's per-Dockerfile ignore files (the build context is the repository root)
//	compose/                         Docker Compose: one hookd on embedded JetStream, or (profile cluster) 3 NATS + 2 hookd + Caddy
//	helm/hookd/                      the Helm chart: split or combined Deployments, Ingress, PDBs, ServiceMonitor, NetworkPolicy, NATS dependency
//
// The tests need neither docker nor helm. They parse the files and hold them to hookd's fixed
// interface: every HOOKD_* variable the files (and docs/DEPLOY.md) use is one hookd's config
// loader reads, and the defaults docs/DEPLOY.md quotes are the loader's; the image builds
// ./cmd/hookd with the version stamp and runs as a non-root user; every file the build needs
// survives the .dockerignore; the compose cluster's URLs, replicas, routes and upstreams agree
// with its services; the chart's templates parse, every .Values path they read exists in
// values.yaml, and every template they include is defined; the chart renders (Go's
// text/template with Go versions of the Helm functions it calls, helmrender_test.go) for its
// defaults and the variants docs/DEPLOY.md documents into objects whose selectors, ports,
// volumes, probes, secrets and grace periods fit each other and hookd; the configuration files
// shipped with compose and the chart load with hookd's own config loader; and nats-server,
// started as compose's command lines and the chart's NATS values configure it (nats_test.go),
// takes hookd's streams and buckets and a delivery of GitHub's largest size. How to deploy is
// docs/DEPLOY.md.
package deploy
