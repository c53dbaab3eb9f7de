package prom

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers cs on reg for the part named part (e.g. "ingest.Server"): all of them or,
// on error, none (those registered before the failing one are unregistered). A nil reg
// registers nothing. When a collector is already registered the error says to build one part per
// registry; it wraps the Prometheus error either way.
func Register(reg prometheus.Registerer, part string, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
				return fmt.Errorf("%s metrics are already registered on this Registerer (build one %s per registry): %w", part, part, err)
			}
			return fmt.Errorf("register %s metrics: %w", part, err)
		}
	}
	return nil
}
