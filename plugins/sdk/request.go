package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/marin-go/marin/plugins/schema"
)

// Request is one step the host asks an op to run.
type Request struct {
	Op       string // the op being run
	StepName string // the step's name, e.g. "tokenized/tulu"

	// Config is the step's resolved config, decoded from JSON. Numbers are
	// json.Number, not float64, so integers such as seeds and token counts
	// arrive exact; the Int and Float helpers convert them. Objects are
	// map[string]any and arrays []any.
	Config map[string]any
	// ConfigJSON is the config as the host sent it; see Decode.
	ConfigJSON []byte

	OutputPath string // absolute storage URL the op writes into
	Prefix     string // the run's prefix URL
	Attempt    int    // 1 for the first attempt at this output, +1 per rerun
	LogLevel   string // the host's log level: trace, debug, info, warn, error

	// Plugins are the format plugins the host knows, for ops that render
	// through one (see Plugin and StartFormat).
	Plugins []PluginEndpoint

	// schema is the op's declared config schema, for Decode.
	schema *schema.Field
}

// decodeConfig parses a config JSON object; empty input is an empty config.
func decodeConfig(raw []byte) (map[string]any, error) {
	cfg := map[string]any{}
	if len(bytes.TrimSpace(raw)) == 0 {
		return cfg, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode config JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode config JSON: trailing data after the object")
	}
	switch v := v.(type) {
	case nil:
		return cfg, nil
	case map[string]any:
		return v, nil
	default:
		return nil, fmt.Errorf("decode config JSON: want an object, got %s", typeName(v))
	}
}

// Has reports whether the config sets key (to anything, null included).
func (r *Request) Has(key string) bool {
	_, ok := r.Config[key]
	return ok
}

// String returns the string config value key. A missing key or another type
// is an error naming the key.
func (r *Request) String(key string) (string, error) {
	v, err := r.get(key)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", wrongType(key, "a string", v)
	}
	return s, nil
}

// Strings returns key as a list of strings; a single string is a list of one,
// so a config may say either "a.txt" or ["a.txt", "b.txt"].
func (r *Request) Strings(key string) ([]string, error) {
	v, err := r.get(key)
	if err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, wrongType(fmt.Sprintf("%s[%d]", key, i), "a string", e)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, wrongType(key, "a string or a list of strings", v)
}

// Int returns the integer config value key; a number with a fraction or
// outside int64 is an error.
func (r *Request) Int(key string) (int64, error) {
	v, err := r.get(key)
	if err != nil {
		return 0, err
	}
	switch n := v.(type) {
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i, nil
		}
		// 1e3 is an integer written as a float; accept it when exact.
		if f, err := n.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), nil
		}
		return 0, &Diagnostic{Summary: fmt.Sprintf("config %q: want an integer, got %s", key, n), Attribute: key}
	case float64: // a Request built in Go rather than decoded
		if n == math.Trunc(n) && math.Abs(n) < 1<<63 {
			return int64(n), nil
		}
		return 0, &Diagnostic{Summary: fmt.Sprintf("config %q: want an integer, got %v", key, n), Attribute: key}
	case int:
		return int64(n), nil
	case int64:
		return n, nil
	}
	return 0, wrongType(key, "an integer", v)
}

// Float returns the numeric config value key.
func (r *Request) Float(key string) (float64, error) {
	v, err := r.get(key)
	if err != nil {
		return 0, err
	}
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		if err != nil {
			return 0, &Diagnostic{Summary: fmt.Sprintf("config %q: want a number, got %s", key, n), Attribute: key}
		}
		return f, nil
	case float64:
		return n, nil
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	}
	return 0, wrongType(key, "a number", v)
}

// Bool returns the boolean config value key.
func (r *Request) Bool(key string) (bool, error) {
	v, err := r.get(key)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, wrongType(key, "true or false", v)
	}
	return b, nil
}

// Decode unmarshals the whole config into v (usually a pointer to a struct
// with json tags), for ops with many settings. When the op declares a schema,
// decoding is strict — a key v does not have is an error — and the schema's
// defaults fill absent keys.
func (r *Request) Decode(v any) error {
	if r.schema != nil {
		if err := schema.Decode(r.schema, r.Config, v); err != nil {
			d := &Diagnostic{Summary: fmt.Sprintf("decode config of step %q: %v", r.StepName, err)}
			var se *schema.Error
			if errors.As(err, &se) && len(se.Issues) > 0 {
				d.Attribute = se.Issues[0].Path
			}
			return d
		}
		return nil
	}
	raw := r.ConfigJSON
	if len(bytes.TrimSpace(raw)) == 0 {
		var err error
		if raw, err = json.Marshal(r.Config); err != nil {
			return fmt.Errorf("encode config of step %q: %w", r.StepName, err)
		}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return &Diagnostic{Summary: fmt.Sprintf("decode config of step %q: %v", r.StepName, err)}
	}
	return nil
}

func (r *Request) get(key string) (any, error) {
	v, ok := r.Config[key]
	if !ok {
		return nil, &Diagnostic{Summary: fmt.Sprintf("config %q: missing", key), Attribute: key}
	}
	return v, nil
}

func wrongType(key, want string, got any) error {
	return &Diagnostic{Summary: fmt.Sprintf("config %q: want %s, got %s", key, want, typeName(got)), Attribute: key}
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64, int, int64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// LocalPath turns a file:// URL or a plain path into a local filesystem path.
// Any other URL scheme (gs://, s3://, …) is an error: ops that need remote
// storage should use a storage client instead.
func LocalPath(location string) (string, error) {
	if location == "" {
		return "", fmt.Errorf("empty path")
	}
	if !strings.Contains(location, "://") {
		return filepath.Clean(location), nil
	}
	u, err := url.Parse(location)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", location, err)
	}
	if u.Scheme != "file" {
		return "", fmt.Errorf("%q is not a local path (scheme %q)", location, u.Scheme)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("%q names host %q; only local file:// URLs are supported", location, u.Host)
	}
	if u.Path == "" {
		return "", fmt.Errorf("%q has no path", location)
	}
	return filepath.FromSlash(u.Path), nil
}
