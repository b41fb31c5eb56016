// Package hfhub is a client for the Hugging Face hub's HTTP API, as much of it
// as marin needs to fetch datasets and models reproducibly:
//
//   - Resolve a revision (branch, tag, full or abbreviated commit) to the
//     commit it names, so every later request is pinned to that commit.
//   - List a repo's files at a commit (the tree API, following its Link
//     pagination), with sizes, the git blob id and, for LFS files, sha256.
//   - Download a file through the resolve endpoint (following redirects to
//     the CDN), resuming with Range requests after an interruption, both
//     within one call and across runs (a partial file is kept as
//     NAME.incomplete), and verifying the size and the sha256 (LFS) or git
//     blob id (small files) the listing gave.
//   - Fetch some top-level files of a repo at a revision into the shared
//     cache ($MARIN_CACHE_DIR/hub/models--org--name/COMMIT), where every
//     model and tokenizer download of marin lands and is found again.
//
// Requests are retried with exponential backoff on 429 (honouring
// Retry-After), 5xx and broken connections. 401, 403 (gated repos) and 404
// come back as *Error values matching ErrUnauthorized, ErrGated and
// ErrNotFound, with a sentence a person can act on.
//
// The endpoint comes from HF_ENDPOINT and the token from HF_TOKEN (or the
// older HUGGING_FACE_HUB_TOKEN). The token
// is sent only as an Authorization header to the hub itself (Go's client
// drops it on redirects to another host such as the CDN) and never appears
// in errors, logs or String(): error bodies that echo the request are
// passed through plugins/redact, which masks the token itself (registered
// by New) and any other credential.
//
// Model and dataset repos use the same calls: pass a Repo with the Type.
//
// Why not github.com/gomlx/go-huggingface (v0.3.1, its only release): it
// lists files only by name (no sizes or hashes, no tree API), downloads only
// into its own HF-cache layout of symlinks, refuses redirected files, has no
// Range resume, no retries or backoff, no checksum verification, reports
// status errors as "bad status code 401", prints progress to stdout and
// cannot be cancelled (it uses context.Background()).
package hfhub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/marin-go/marin/plugins/redact"
)

// DefaultEndpoint is the public hub, used when HF_ENDPOINT is unset.
const DefaultEndpoint = "https://huggingface.co"

// Environment variables the client reads.
const (
	EndpointEnv = "HF_ENDPOINT"
	TokenEnv    = "HF_TOKEN"
	// LegacyTokenEnv is read when HF_TOKEN is unset, as huggingface_hub does.
	LegacyTokenEnv = "HUGGING_FACE_HUB_TOKEN"
)

// RepoType is the kind of a hub repository.
type RepoType string

// Repo kinds. Their values are the singular names the hub uses in repo_type.
const (
	Model   RepoType = "model"
	Dataset RepoType = "dataset"
	Space   RepoType = "space"
)

// Repo names a hub repository, e.g. {Dataset, "allenai/tulu-3-sft-mixture"}.
type Repo struct {
	Type RepoType
	ID   string
}

func (r Repo) String() string {
	if r.Type == Model || r.Type == "" {
		return r.ID
	}
	return string(r.Type) + "s/" + r.ID
}

// apiPrefix is the path segment of r in /api/… URLs ("models", "datasets").
func (r Repo) apiPrefix() string {
	if r.Type == "" {
		return "models"
	}
	return string(r.Type) + "s"
}

// filePrefix is the path of r in resolve URLs: models have none.
func (r Repo) filePrefix() string {
	if r.Type == Model || r.Type == "" {
		return "/" + r.ID
	}
	return "/" + string(r.Type) + "s/" + r.ID
}

func (r Repo) check() error {
	switch r.Type {
	case Model, Dataset, Space, "":
	default:
		return fmt.Errorf("hub repo %q: unknown repo type %q (want model, dataset or space)", r.ID, r.Type)
	}
	if r.ID == "" || strings.HasPrefix(r.ID, "/") || strings.HasSuffix(r.ID, "/") || strings.Contains(r.ID, "..") || strings.Count(r.ID, "/") > 1 {
		return fmt.Errorf("hub repo id %q: want NAME or OWNER/NAME", r.ID)
	}
	return nil
}

// Client talks to one hub endpoint. The zero value is not usable; call New.
type Client struct {
	endpoint string
	token    string
	// HTTP is the underlying client. New gives one without a global
	// timeout (downloads are long); requests are bounded by their context.
	HTTP *http.Client
	// MaxRetries is how many times a request is retried after a 429, a 5xx
	// or a broken connection. Default 6.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// retries (jittered). Defaults 1s and 60s. A Retry-After header wins
	// over the backoff, up to MaxRetryAfter.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps how long a Retry-After header can make us wait.
	// Default 5 minutes.
	MaxRetryAfter time.Duration
	// UserAgent is sent with every request.
	UserAgent string

	// sleep waits between retries; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// Option configures New.
type Option func(*Client)

// WithEndpoint sets the hub URL, overriding HF_ENDPOINT.
func WithEndpoint(endpoint string) Option { return func(c *Client) { c.endpoint = endpoint } }

// WithToken sets the access token, overriding HF_TOKEN. An empty token
// sends no Authorization header.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient sets the HTTP client.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.HTTP = h } }

// New returns a client for HF_ENDPOINT (default DefaultEndpoint) that
// authenticates with HF_TOKEN when it is set.
func New(opts ...Option) (*Client, error) {
	c := &Client{
		endpoint:      os.Getenv(EndpointEnv),
		token:         envToken(),
		HTTP:          &http.Client{},
		MaxRetries:    6,
		MinBackoff:    time.Second,
		MaxBackoff:    60 * time.Second,
		MaxRetryAfter: 5 * time.Minute,
		UserAgent:     "marin-hfhub/1",
		sleep:         sleepCtx,
	}
	for _, o := range opts {
		o(c)
	}
	if c.endpoint == "" {
		c.endpoint = DefaultEndpoint
	}
	u, err := url.Parse(c.endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hub endpoint %q (%s): want an http(s) URL", redactURL(c.endpoint), EndpointEnv)
	}
	c.endpoint = strings.TrimRight(c.endpoint, "/")
	c.HTTP = stripAuthOnRedirect(c.HTTP, u.Host)
	// Whatever format the token has, a reply that echoes it is masked.
	redact.Register(c.token)
	return c, nil
}

// stripAuthOnRedirect returns a copy of h that never sends the
// Authorization header to a host other than the hub's (host and port) on a
// redirect. Go's own rule compares host names only, so a CDN on the same
// name but another port would get the token.
func stripAuthOnRedirect(h *http.Client, hubHost string) *http.Client {
	cp := *h
	next := h.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != hubHost {
			req.Header.Del("Authorization")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cp
}

// Endpoint returns the hub URL, without any credentials it may contain.
func (c *Client) Endpoint() string { return redactURL(c.endpoint) }

// HasToken reports whether requests carry a token.
func (c *Client) HasToken() bool { return c.token != "" }

// String describes the client without its token.
func (c *Client) String() string {
	auth := "anonymous"
	if c.token != "" {
		auth = "with token"
	}
	return fmt.Sprintf("hub %s (%s)", c.Endpoint(), auth)
}

func envToken() string {
	if t := strings.TrimSpace(os.Getenv(TokenEnv)); t != "" {
		return t
	}
	return strings.TrimSpace(os.Getenv(LegacyTokenEnv))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// redactURL drops userinfo from a URL so it can be shown.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

// Sentinel errors matched by errors.Is on an *Error.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrGated        = errors.New("gated repository")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
)

// Error is a failed hub request that is not worth retrying, or one that
// stayed failed after the retries.
type Error struct {
	Op         string // what was being done: "list files", "download data/x.parquet"
	URL        string // the request URL (never carries the token)
	StatusCode int
	Code       string // the hub's X-Error-Code, e.g. GatedRepo, RepoNotFound
	Message    string // the hub's X-Error-Message or a short body excerpt
	Hint       string // what a person can do about it
}

// Error returns the message with secrets masked (plugins/redact): Message
// is the hub's, or a proxy's, and may echo the request's Authorization.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: HTTP %d", e.Op, e.URL, e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Hint != "" {
		b.WriteString(" (" + e.Hint + ")")
	}
	return redact.String(b.String())
}

// Is matches the sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized && e.Code != "GatedRepo"
	case ErrGated:
		return e.Code == "GatedRepo" || (e.StatusCode == http.StatusForbidden && strings.Contains(strings.ToLower(e.Message), "gated"))
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	}
	return false
}

// statusError builds the *Error of a non-2xx response and consumes its body.
func (c *Client) statusError(op string, repo Repo, resp *http.Response) *Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	e := &Error{
		Op:         op,
		URL:        redactURL(resp.Request.URL.String()),
		StatusCode: resp.StatusCode,
		Code:       resp.Header.Get("X-Error-Code"),
		Message:    resp.Header.Get("X-Error-Message"),
	}
	if e.Message == "" {
		e.Message = bodyMessage(body)
	}
	// A reply may echo the request, token included; Message is kept for
	// callers, so it must be clean too.
	e.Message = redact.String(e.Message)
	page := c.endpoint + repo.filePrefix()
	switch {
	case e.Code == "GatedRepo" || (resp.StatusCode == http.StatusForbidden && strings.Contains(strings.ToLower(e.Message), "gated")):
		if c.token == "" {
			e.Hint = fmt.Sprintf("%s is gated: accept its conditions at %s and set %s", repo, page, TokenEnv)
		} else {
			e.Hint = fmt.Sprintf("%s is gated and the account of %s has not been granted access: accept its conditions at %s", repo, TokenEnv, page)
		}
	case resp.StatusCode == http.StatusUnauthorized:
		if c.token == "" {
			e.Hint = fmt.Sprintf("the hub wants a token: set %s, or check that %s exists and is public", TokenEnv, repo)
		} else {
			e.Hint = fmt.Sprintf("%s was rejected; check it is valid and allowed to read %s", TokenEnv, repo)
		}
	case resp.StatusCode == http.StatusForbidden:
		e.Hint = fmt.Sprintf("the token of %s may not read %s", TokenEnv, repo)
	case resp.StatusCode == http.StatusNotFound:
		switch e.Code {
		case "RevisionNotFound":
			e.Hint = "no such revision in " + repo.String()
		case "EntryNotFound":
			e.Hint = "no such file at this revision of " + repo.String()
		default:
			e.Hint = fmt.Sprintf("no such repo, revision or file; check the id %q and the revision (private repos also answer 404 without %s)", repo.ID, TokenEnv)
		}
	}
	return e
}

// bodyMessage pulls {"error": "..."} out of a hub error body, or returns a
// short excerpt of a text body.
func bodyMessage(body []byte) string {
	var v struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &v) == nil && v.Error != "" {
		return v.Error
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 || strings.HasPrefix(s, "<") {
		return ""
	}
	return s
}

// retryable reports whether a response status is worth another try.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout ||
		status == http.StatusInternalServerError || status == http.StatusBadGateway ||
		status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// backoff returns the wait before retry number attempt (1-based).
func (c *Client) backoff(attempt int) time.Duration {
	d := c.MinBackoff << (attempt - 1)
	if d <= 0 || d > c.MaxBackoff {
		d = c.MaxBackoff
	}
	// Full jitter in [d/2, d]: many clients backing off together spread out.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func (c *Client) retryAfter(h string) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.Atoi(h); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = time.Until(t)
	} else {
		return 0, false
	}
	if d < 0 {
		d = 0
	}
	if d > c.MaxRetryAfter {
		d = c.MaxRetryAfter
	}
	return d, true
}

// do sends a GET built by newReq, retrying 429, 5xx and transport errors.
// It returns a 2xx (or 206/416, left to the caller) response; any other
// status becomes an *Error.
func (c *Client) do(ctx context.Context, op string, repo Repo, newReq func() (*http.Request, error)) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := newReq()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		req = req.WithContext(ctx)
		if c.UserAgent != "" {
			req.Header.Set("User-Agent", c.UserAgent)
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := c.HTTP.Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: %s: %w", op, redactURL(req.URL.String()), ctx.Err())
			}
			if attempt >= c.MaxRetries {
				return nil, redact.Error(fmt.Errorf("%s: %s: giving up after %d attempts: %w", op, redactURL(req.URL.String()), attempt+1, err))
			}
			wait = c.backoff(attempt + 1)
		case resp.StatusCode >= 200 && resp.StatusCode < 300, resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			return resp, nil
		case retryable(resp.StatusCode) && attempt < c.MaxRetries:
			if d, ok := c.retryAfter(resp.Header.Get("Retry-After")); ok {
				wait = d
			} else {
				wait = c.backoff(attempt + 1)
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		default:
			return nil, c.statusError(op, repo, resp)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
}

// getJSON fetches rawURL and decodes a JSON body into v, returning the
// response headers (for pagination).
func (c *Client) getJSON(ctx context.Context, op string, repo Repo, rawURL string, v any) (http.Header, error) {
	resp, err := c.do(ctx, op, repo, func() (*http.Request, error) {
		r, err := http.NewRequest(http.MethodGet, rawURL, nil)
		if err == nil {
			r.Header.Set("Accept", "application/json")
		}
		return r, err
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.statusError(op, repo, resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return nil, fmt.Errorf("%s: decode %s: %w", op, redactURL(rawURL), err)
	}
	return resp.Header, nil
}

// Commit is a resolved revision.
type Commit struct {
	SHA          string    // full 40-character commit id
	LastModified time.Time // the commit's date as the hub reports it (zero if not given)
}

// hexRev matches a revision written as an (abbreviated) commit id.
var hexRev = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// ResolveRevision returns the commit that rev names in repo. An
// abbreviated commit id must resolve to a commit starting with it, so a
// branch that happens to look like hex cannot silently stand in for it.
func (c *Client) ResolveRevision(ctx context.Context, repo Repo, rev string) (Commit, error) {
	if err := repo.check(); err != nil {
		return Commit{}, err
	}
	if rev == "" {
		rev = "main"
	}
	u := fmt.Sprintf("%s/api/%s/%s/revision/%s", c.endpoint, repo.apiPrefix(), repo.ID, url.PathEscape(rev))
	var info struct {
		SHA          string `json:"sha"`
		LastModified string `json:"lastModified"`
	}
	op := fmt.Sprintf("resolve revision %q of %s", rev, repo)
	if _, err := c.getJSON(ctx, op, repo, u, &info); err != nil {
		return Commit{}, err
	}
	if len(info.SHA) != 40 {
		return Commit{}, fmt.Errorf("%s: the hub answered commit %q, not a 40-character id", op, info.SHA)
	}
	if hexRev.MatchString(rev) && !strings.HasPrefix(info.SHA, rev) {
		return Commit{}, fmt.Errorf("%s: it resolved to commit %s, which does not start with %q", op, info.SHA, rev)
	}
	cm := Commit{SHA: info.SHA}
	if info.LastModified != "" {
		if t, err := time.Parse(time.RFC3339Nano, info.LastModified); err == nil {
			cm.LastModified = t.UTC()
		}
	}
	return cm, nil
}

// File is one file of a repo at a commit, as the tree API lists it.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	GitOID string `json:"git_oid,omitempty"` // git blob id (sha1 of "blob SIZE\0" + content)
	SHA256 string `json:"sha256,omitempty"`  // content sha256, given for LFS files
}

// treeEntry is one element of the tree API's answer.
type treeEntry struct {
	Type string `json:"type"` // file | directory
	Path string `json:"path"`
	Size int64  `json:"size"`
	OID  string `json:"oid"`
	LFS  *struct {
		OID  string `json:"oid"`
		Size int64  `json:"size"`
	} `json:"lfs"`
}

// ListFiles lists the files under dir (the whole repo when dir is "") at
// rev, recursively, following the tree API's Link pagination. rev should be
// a full commit id (see ResolveRevision) for a reproducible answer.
func (c *Client) ListFiles(ctx context.Context, repo Repo, rev, dir string) ([]File, error) {
	if err := repo.check(); err != nil {
		return nil, err
	}
	u := fmt.Sprintf("%s/api/%s/%s/tree/%s", c.endpoint, repo.apiPrefix(), repo.ID, url.PathEscape(rev))
	if dir = strings.Trim(dir, "/"); dir != "" {
		u += "/" + escapePath(dir)
	}
	u += "?recursive=true&expand=false"
	op := fmt.Sprintf("list files of %s at %s", repo, rev)
	var out []File
	for page := 0; u != ""; page++ {
		if page > 100000 {
			return nil, fmt.Errorf("%s: more than 100000 pages; is the Link header looping?", op)
		}
		var entries []treeEntry
		h, err := c.getJSON(ctx, op, repo, u, &entries)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type != "file" {
				continue
			}
			f := File{Path: e.Path, Size: e.Size, GitOID: e.OID}
			if e.LFS != nil {
				f.SHA256 = e.LFS.OID
				f.Size = e.LFS.Size
				// The blob id of an LFS file is that of its pointer file,
				// not of the content.
				f.GitOID = ""
			}
			out = append(out, f)
		}
		next, err := nextLink(h.Get("Link"), u)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		u = next
	}
	return out, nil
}

// nextLink finds rel="next" in a Link header, resolved against base.
func nextLink(header, base string) (string, error) {
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		if !strings.HasPrefix(part, "<") {
			continue
		}
		end := strings.Index(part, ">")
		if end < 0 {
			continue
		}
		target, params := part[1:end], part[end+1:]
		isNext := false
		for _, p := range strings.Split(params, ";") {
			p = strings.TrimSpace(p)
			if p == `rel="next"` || p == "rel=next" {
				isNext = true
			}
		}
		if !isNext {
			continue
		}
		b, err := url.Parse(base)
		if err != nil {
			return "", err
		}
		t, err := b.Parse(target)
		if err != nil {
			return "", fmt.Errorf("bad Link target %q: %w", target, err)
		}
		return t.String(), nil
	}
	return "", nil
}

// escapePath escapes each segment of a slash-separated repo path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// FileURL is the resolve URL of path at rev.
func (c *Client) FileURL(repo Repo, rev, path string) string {
	return fmt.Sprintf("%s%s/resolve/%s/%s", c.endpoint, repo.filePrefix(), url.PathEscape(rev), escapePath(path))
}
