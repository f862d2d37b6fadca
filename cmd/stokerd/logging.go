package main

import (
	"fmt"
	"io"
	"log/slog"
)

// newLogger makes the server's logger: format "text" (key=value lines)
// or "json" (one JSON object a line, for log shippers), at level.
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
