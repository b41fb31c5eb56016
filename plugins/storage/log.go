package storage

import (
	"context"
	"sync"

	"github.com/marin-go/marin/plugins/redact"
)

// Logger receives what storage has to say about an operation (a retried
// request, a slow transfer): a level ("debug", "info", "warn", "error"), a
// message and key/value pairs. It has the shape of the plugin SDK's
// Reporter.Log, so a plugin passes its reporter's method.
type Logger func(level, msg string, kv ...string)

type loggerKey struct{}

// WithLogger returns ctx carrying l: storage operations under ctx log
// through it.
func WithLogger(ctx context.Context, l Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

var (
	defaultLogMu sync.RWMutex
	defaultLog   Logger
)

// SetDefaultLogger sets the logger of operations whose context carries
// none (the host sets its zerolog logger here).
func SetDefaultLogger(l Logger) {
	defaultLogMu.Lock()
	defaultLog = l
	defaultLogMu.Unlock()
}

// logf logs through ctx's logger, else the default one. Messages and
// values are redacted: they may quote a request.
func logf(ctx context.Context, level, msg string, kv ...string) {
	var l Logger
	if ctx != nil {
		l, _ = ctx.Value(loggerKey{}).(Logger)
	}
	if l == nil {
		defaultLogMu.RLock()
		l = defaultLog
		defaultLogMu.RUnlock()
	}
	if l == nil {
		return
	}
	for i := range kv {
		kv[i] = redact.String(kv[i])
	}
	l(level, redact.String(msg), kv...)
}
