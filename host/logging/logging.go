// Package logging sets up marin's zerolog output and the live progress
// display: one line per running step with its rate and ETA, redrawn in place
// on a terminal and emitted as periodic log records everywhere else.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/marin-go/marin/plugins/redact"
)

// Formats accepted by --log-format.
const (
	FormatConsole = "console"
	FormatJSON    = "json"
)

// Options configure New.
type Options struct {
	Format string // console | json
	Level  string // trace | debug | info | warn | error
	Out    io.Writer
	// NoColor disables ANSI colours in console output.
	NoColor bool
}

// ParseLevel accepts zerolog's level names.
func ParseLevel(s string) (zerolog.Level, error) {
	if s == "" {
		return zerolog.InfoLevel, nil
	}
	lvl, err := zerolog.ParseLevel(strings.ToLower(s))
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.NoLevel, fmt.Errorf("unknown log level %q (want trace, debug, info, warn or error)", s)
	}
	return lvl, nil
}

// New returns the process logger and the Display that shares its output.
func New(o Options) (zerolog.Logger, *Display, error) {
	if o.Out == nil {
		o.Out = os.Stderr
	}
	lvl, err := ParseLevel(o.Level)
	if err != nil {
		return zerolog.Nop(), nil, err
	}
	tty := false
	if f, ok := o.Out.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	// Everything written passes through redact: plugin errors, log lines
	// and progress messages may carry a request or response with
	// credentials in it.
	out := redact.Writer(o.Out)
	var w io.Writer
	var d *Display
	switch o.Format {
	case "", FormatConsole:
		d = NewDisplay(out, tty)
		w = zerolog.ConsoleWriter{Out: d, NoColor: o.NoColor || !tty, TimeFormat: time.TimeOnly}
	case FormatJSON:
		// Machines read every line: no in-place redraws, progress as records.
		d = NewDisplay(out, false)
		w = d
	default:
		return zerolog.Nop(), nil, fmt.Errorf("unknown log format %q (want console or json)", o.Format)
	}
	log := zerolog.New(w).Level(lvl).With().Timestamp().Logger()
	d.log = log
	return log, d, nil
}
