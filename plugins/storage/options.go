package storage

import (
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
)

// OptionsEnv carries the bucket options this process registered (see
// UseOptions) to the processes it starts: one URL per line, each a bucket
// root with its query ("s3://runs?endpoint=http%3A%2F%2F127.0.0.1%3A9000").
// Plugins read it when they start, so a prefix's options reach every op.
const OptionsEnv = "MARIN_STORAGE_OPTIONS"

var (
	optionsMu   sync.Mutex
	options     map[string]string // "s3://bucket" → raw query
	optionsInit bool
)

// loadOptionsLocked reads OptionsEnv once; optionsMu is held.
func loadOptionsLocked() {
	if optionsInit {
		return
	}
	optionsInit = true
	options = map[string]string{}
	for _, line := range strings.Split(os.Getenv(OptionsEnv), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		u, err := url.Parse(line)
		if err != nil || u.Host == "" || u.RawQuery == "" {
			continue
		}
		options[u.Scheme+"://"+u.Host] = u.RawQuery
	}
}

// UseOptions makes the query of rawURL — a prefix such as
// s3://bucket/runs?endpoint=http://127.0.0.1:9000&region=us-east-1 — the
// options of its bucket: every later URL of that bucket that has no query of
// its own opens with them, in this process and in the processes it starts
// (through OptionsEnv). It returns rawURL without its query, the form that
// output paths, hashes and records use, so options never move outputs and
// never leak into paths. A URL without a query is returned unchanged.
func UseOptions(rawURL string) (string, error) {
	i := strings.Index(rawURL, "://")
	q := strings.IndexByte(rawURL, '?')
	if i <= 0 || q < 0 {
		return rawURL, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("storage URL %q: %w", rawURL, err)
	}
	if u.Scheme == "file" || u.Host == "" {
		return "", fmt.Errorf("storage URL %q: only bucket URLs (s3://, gs://, …) take query options", rawURL)
	}
	// Parse and re-encode: a malformed query is an error now, not at the
	// first request.
	vals, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", fmt.Errorf("storage URL %q: query: %w", rawURL, err)
	}
	root := u.Scheme + "://" + u.Host
	optionsMu.Lock()
	loadOptionsLocked()
	options[root] = vals.Encode()
	exportOptionsLocked()
	optionsMu.Unlock()
	return rawURL[:q], nil
}

// exportOptionsLocked writes the registry to OptionsEnv for child
// processes; optionsMu is held.
func exportOptionsLocked() {
	lines := make([]string, 0, len(options))
	for root, q := range options {
		lines = append(lines, root+"?"+q)
	}
	sort.Strings(lines)
	_ = os.Setenv(OptionsEnv, strings.Join(lines, "\n"))
}

// bucketOptions returns the registered query of the bucket root
// "scheme://host", or "".
func bucketOptions(root string) string {
	optionsMu.Lock()
	defer optionsMu.Unlock()
	loadOptionsLocked()
	return options[root]
}
