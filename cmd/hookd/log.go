package main

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/config"
)

// newLogger builds the process logger from the log section. Nothing in hookd uses a global logger.
func newLogger(c config.Log, w io.Writer) zerolog.Logger {
	if w == nil {
		w = os.Stderr
	}
	if c.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	lvl, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}
