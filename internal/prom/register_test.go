package prom

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegister(t *testing.T) {
	c := func() prometheus.Collector {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "hookd_test_total", Help: "test"})
	}
	if err := Register(nil, "x.Part", c()); err != nil {
		t.Fatalf("nil registry: %v", err)
	}
	reg := prometheus.NewRegistry()
	if err := Register(reg, "x.Part", c()); err != nil {
		t.Fatal(err)
	}
	err := Register(reg, "x.Part", c())
	if err == nil || !strings.Contains(err.Error(), "build one x.Part per registry") {
		t.Fatalf("second registration: %v", err)
	}
	bad := prometheus.NewCounter(prometheus.CounterOpts{Name: "hookd_test_total", Help: "other help"})
	if err := Register(reg, "x.Part", bad); err == nil || strings.Contains(err.Error(), "per registry") {
		t.Fatalf("conflicting descriptor: %v", err)
	}

	// All or nothing: a part whose second collector fails leaves no first one behind, so that
	// building it again (on a fixed registry) does not fail with "already registered".
	other := func() prometheus.Collector {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookd_test_other", Help: "test"})
	}
	if err := Register(reg, "y.Part", other(), c()); err == nil {
		t.Fatal("registering a collector that is already registered: no error")
	}
	if err := Register(reg, "y.Part", other()); err != nil {
		t.Fatalf("after a failed registration: %v", err)
	}
}
