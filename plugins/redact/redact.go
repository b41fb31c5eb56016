// Package redact removes secrets from text before it reaches an error, a log
// line or a status file: anything that may carry a request or a response
// (a hub error body that echoes the request's headers, a URL with a
// password, an object store's signed URL or credentials file).
//
// String masks, with Mask:
//
//   - the secret values of the environment variables in SecretEnv (HF_TOKEN,
//     AWS_SECRET_ACCESS_KEY, …) and any value given to Register, wherever
//     they appear;
//   - Hugging Face tokens (hf_…), AWS access key ids (AKIA…, ASIA…), Google
//     OAuth access tokens (ya29.…) and PEM private keys;
//   - the credentials of Authorization headers ("Bearer …", "Basic …") and
//     of fields whose names end like a secret's (token, password, secret,
//     api_key, private_key, …: AWS_SESSION_TOKEN, client_secret,
//     db_password) written as `name: value`, `name=value` or JSON
//     `"name": "value"`;
//   - signatures and credentials in signed-URL queries (X-Amz-Signature,
//     X-Goog-Credential, …);
//   - the password of URLs written user:password@host.
//
// The user of a URL, file paths, hosts and the rest of the text are kept,
// so a redacted message still says what failed where.
package redact

import (
	"errors"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Mask replaces every secret.
const Mask = "[REDACTED]"

// SecretEnv are the environment variables whose values are secrets; their
// values (when at least MinSecretLen bytes long) are masked wherever they
// appear.
var SecretEnv = []string{
	"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN",
	"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
	"GOOGLE_OAUTH_ACCESS_TOKEN", "GCS_OAUTH_TOKEN", "STORAGE_EMULATOR_TOKEN",
}

// MinSecretLen is the shortest literal Register accepts: shorter ones would
// mask ordinary words.
const MinSecretLen = 8

var (
	mu        sync.RWMutex
	literals  = map[string]bool{}
	replacer  *strings.Replacer
	envLoaded bool
)

// Register adds a literal secret (a token read from a file, a password) to
// mask wherever it appears. Values shorter than MinSecretLen are ignored.
func Register(secret string) {
	secret = strings.TrimSpace(secret)
	if len(secret) < MinSecretLen {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if literals[secret] {
		return
	}
	literals[secret] = true
	rebuildLocked()
}

func rebuildLocked() {
	// Longest first, so a secret containing another is masked whole.
	keys := make([]string, 0, len(literals))
	for k := range literals {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	pairs := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		pairs = append(pairs, k, Mask)
	}
	replacer = strings.NewReplacer(pairs...)
}

// loadEnv registers the SecretEnv values once; later changes to the
// environment are picked up by calling Register.
func loadEnv() {
	mu.RLock()
	done := envLoaded
	mu.RUnlock()
	if done {
		return
	}
	mu.Lock()
	if !envLoaded {
		envLoaded = true
		for _, k := range SecretEnv {
			if v := strings.TrimSpace(os.Getenv(k)); len(v) >= MinSecretLen {
				literals[v] = true
			}
		}
		rebuildLocked()
	}
	mu.Unlock()
}

// rule is one pattern and how to mask its match.
type rule struct {
	re   *regexp.Regexp
	repl string
	// hint is a lower-case substring every match contains (a cheap
	// pre-check); "" runs the pattern always.
	hint string
}

var rules = []rule{
	// PEM private keys, whole, or up to a quote (the end of a JSON string)
	// when cut off.
	{regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----(?:(?s:.*?)-----END [A-Z ]*PRIVATE KEY-----|[^"']*)`), Mask, "private key-----"},
	// Bare credentials after an auth scheme.
	{regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}`), "${1} " + Mask, "b"},
	// Signed-URL queries.
	{regexp.MustCompile(`(?i)([?&](?:x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|signature|sig|awsaccesskeyid|googleaccessid)=)[^&\s"'\\]+`), "${1}" + Mask, "="},
	// Token formats.
	{regexp.MustCompile(`\bhf_[A-Za-z0-9]{16,}`), Mask, "hf_"},
	{regexp.MustCompile(`\b(?:AKIA|ASIA|AROA|AIDA|ANPA|AGPA)[A-Z0-9]{16}\b`), Mask, ""},
	{regexp.MustCompile(`\bya29\.[A-Za-z0-9_.\-]{10,}`), Mask, "ya29."},
	// scheme://user:password@host
	{regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@"'\\]*):[^/\s@"'\\]+@`), "${1}:" + Mask + "@", "@"},
}

// String returns s with every secret masked (see the package doc).
func String(s string) string {
	if s == "" {
		return s
	}
	loadEnv()
	mu.RLock()
	r := replacer
	mu.RUnlock()
	if r != nil {
		s = r.Replace(s)
	}
	var lower string
	for i, ru := range rules {
		if i == 1 {
			// After the PEM keys (whose first line looks like a value).
			s, lower = maskFields(s), ""
		}
		if ru.hint != "" {
			if lower == "" {
				lower = strings.ToLower(s)
			}
			if !strings.Contains(lower, ru.hint) {
				continue
			}
		}
		s = ru.re.ReplaceAllString(s, ru.repl)
	}
	return s
}

// Error returns err with its message redacted. The result still matches
// what err matched (errors.Is, errors.As); nil stays nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	var r *redacted
	if errors.As(err, &r) && r.msg == err.Error() {
		return err
	}
	msg := String(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redacted{msg: msg, err: err}
}

// redacted is an error whose message was redacted. Unwrap reaches the
// original for errors.Is and errors.As; print the redacted error itself.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// Writer returns a writer that redacts each Write before passing it to w.
// Give it whole lines (zerolog writes one event per Write); a secret split
// across two writes is not recognised.
func Writer(w io.Writer) io.Writer { return &writer{w: w} }

type writer struct{ w io.Writer }

func (w *writer) Write(p []byte) (int, error) {
	out := String(string(p))
	if _, err := io.WriteString(w.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// secretSuffixes end the (lower-cased, '_' and '-' removed) names of fields
// whose values are secrets.
var secretSuffixes = []string{
	"authorization", "token", "secret", "secretkey", "apikey", "accesskey",
	"privatekey", "privatekeyid", "password", "passwd",
}

// authSchemes may start an Authorization value; the scheme is kept.
var authSchemes = []string{"bearer", "basic", "token", "digest", "aws4-hmac-sha256"}

// maskFields masks the values of `name: value`, `name=value` and JSON
// `"name": "value"` (quotes possibly escaped) where name ends like a
// secret's. It scans once, so it stays cheap on every log line.
func maskFields(s string) string {
	var b strings.Builder
	copied := 0
	for i := 0; i < len(s); i++ {
		if s[i] != ':' && s[i] != '=' {
			continue
		}
		// The name: back over spaces and (escaped) quotes, then word chars.
		j := i
		for j > 0 && (s[j-1] == ' ' || s[j-1] == '\t') {
			j--
		}
		for j > 0 && (s[j-1] == '"' || s[j-1] == '\'' || s[j-1] == '\\') {
			j--
		}
		end := j
		for j > 0 && isNameByte(s[j-1]) {
			j--
		}
		if j == end || !secretName(s[j:end]) {
			continue
		}
		// The value: forward over spaces and (escaped) quotes, an optional
		// auth scheme word, then value chars.
		k := i + 1
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		for k < len(s) && (s[k] == '"' || s[k] == '\'' || s[k] == '\\') {
			k++
		}
		for _, sch := range authSchemes {
			if n := len(sch); k+n < len(s) && strings.EqualFold(s[k:k+n], sch) && (s[k+n] == ' ' || s[k+n] == '\t') {
				k += n
				for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
					k++
				}
				break
			}
		}
		v := k
		for v < len(s) && !isValueEnd(s[v]) {
			v++
		}
		if v == k || s[k:v] == Mask {
			continue
		}
		b.WriteString(s[copied:k])
		b.WriteString(Mask)
		copied = v
		i = v - 1
	}
	if copied == 0 {
		return s
	}
	b.WriteString(s[copied:])
	return b.String()
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func isValueEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '\\', ',', ';', '&', '}', ']':
		return true
	}
	return false
}

func secretName(name string) bool {
	if len(name) < 3 || len(name) > 64 {
		return false
	}
	var buf [64]byte
	n := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '_' || c == '-' {
			continue
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[n] = c
		n++
	}
	norm := string(buf[:n])
	for _, suf := range secretSuffixes {
		if strings.HasSuffix(norm, suf) {
			return true
		}
	}
	return false
}
