package logging

import (
	"sort"

	"github.com/rs/zerolog"
)

// Forward writes a log event that came from another process (a plugin, or
// a cluster job of a remote runner) at that process's level. Levels above
// error are capped: nothing outside this process can make it exit or panic
// through a log level. An unknown level logs at info.
func Forward(log zerolog.Logger, level, msg string, fields map[string]string) {
	lvl, err := zerolog.ParseLevel(level)
	switch {
	case err != nil || lvl == zerolog.NoLevel:
		lvl = zerolog.InfoLevel
	case lvl > zerolog.ErrorLevel:
		lvl = zerolog.ErrorLevel
	}
	e := log.WithLevel(lvl)
	if !e.Enabled() {
		e.Discard()
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e = e.Str(k, fields[k])
	}
	e.Msg(msg)
}
