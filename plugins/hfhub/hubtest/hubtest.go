// Package hubtest is an in-process fake of the Hugging Face hub's HTTP API
// for tests: revision lookup, the paginated tree listing, and resolve
// downloads redirected to a separate "CDN" server that honours Range
// requests. Faults are injected per path: a 429 before success, a connection
// dropped mid-body, corrupted bytes, 5xx.
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Repo is a fake repository at one commit.
type Repo struct {
	Type   string            // "dataset" or "model"
	ID     string            // owner/name
	Commit string            // full 40-hex commit id
	Date   time.Time         // the commit date (lastModified)
	Files  map[string][]byte // path → content
	// LFS marks paths served as LFS files (listed with lfs.oid = sha256);
	// other files are listed with their git blob id only.
	LFS map[string]bool
	// Branches maps branch names to this commit (e.g. "main").
	Branches []string
	// Gated makes every request without the right token answer 401/403
	// with X-Error-Code GatedRepo.
	Gated bool
	// Private makes requests without the token answer 401.
	Private bool
}

// Request is one request the fake saw.
type Request struct {
	Method, Path, Range string
	Authorized          bool // carried "Authorization: Bearer <Token>"
	AnyAuth             bool // carried any Authorization header
	CDN                 bool // was sent to the CDN server
}

// Server is the fake hub.
type Server struct {
	Hub *httptest.Server // the hub API and resolve endpoint
	CDN *httptest.Server // where resolve redirects to

	// Token is the valid access token; requests to gated or private repos
	// must carry it.
	Token string
	// PageSize is how many tree entries one page holds (Link pagination).
	PageSize int

	mu       sync.Mutex
	repos    []*Repo
	requests []Request
	faults   map[string][]Fault // resolve path (repo-relative) → queued faults
	apiFault []Fault            // queued faults for API (tree/revision) calls
}

// Fault is what the fake does instead of answering normally, once.
type Fault struct {
	Status     int    // answer with this status (e.g. 429, 503)
	RetryAfter string // Retry-After header value with Status
	DropAfter  int    // serve this many bytes of the body, then cut the connection
	Corrupt    bool   // serve the body with one byte flipped
	// EchoRequest (with Status) answers with a body that echoes the
	// request line and headers, Authorization included, as some proxies
	// and debugging endpoints do.
	EchoRequest bool
}

// echo renders a request as an error body that echoes it.
func echo(r *http.Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "bad request %s %s; headers:", r.Method, r.URL)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s: %s;", k, strings.Join(r.Header[k], ", "))
	}
	return b.String()
}

// New starts a fake hub serving repos.
func New(repos ...*Repo) *Server {
	s := &Server{PageSize: 1000, faults: map[string][]Fault{}}
	for _, r := range repos {
		s.Add(r)
	}
	s.CDN = httptest.NewServer(http.HandlerFunc(s.serveCDN))
	s.Hub = httptest.NewServer(http.HandlerFunc(s.serveHub))
	return s
}

// Close stops both servers.
func (s *Server) Close() {
	s.Hub.Close()
	s.CDN.Close()
}

// URL is the hub endpoint (for HF_ENDPOINT).
func (s *Server) URL() string { return s.Hub.URL }

// Add adds a repo (a second commit of the same id is another Repo).
func (s *Server) Add(r *Repo) {
	if r.Type == "" {
		r.Type = "model"
	}
	if r.LFS == nil {
		r.LFS = map[string]bool{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos = append(s.repos, r)
}

// FailNext queues faults for the next downloads of path (repo-relative,
// e.g. "data/train-00000-of-00001.parquet"), one fault per request.
func (s *Server) FailNext(path string, f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[path] = append(s.faults[path], f...)
}

// FailNextAPI queues faults for the next API (revision, tree) requests.
func (s *Server) FailNextAPI(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiFault = append(s.apiFault, f...)
}

// Requests returns the requests seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the requests seen so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// SHA256 is the hex sha256 of b.
func SHA256(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// GitOID is the git blob id of b.
func GitOID(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) record(r *http.Request, cdn bool) {
	auth := r.Header.Get("Authorization")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"),
		Authorized: s.Token != "" && auth == "Bearer "+s.Token, AnyAuth: auth != "", CDN: cdn,
	})
}

func (s *Server) popFault(path string, api bool) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[path]
	if api {
		q = s.apiFault
	}
	if len(q) == 0 {
		return Fault{}, false
	}
	f := q[0]
	if api {
		s.apiFault = q[1:]
	} else {
		s.faults[path] = q[1:]
	}
	return f, true
}

// find returns the repo of type/id at rev (a branch, a full or 7+ char
// prefix of the commit).
// When rev is not found, the first repo with that id is returned (for
// access checks) with found false; a nil repo means no such id.
func (s *Server) find(typ, id, rev string) (repo *Repo, found bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.repos {
		if r.Type != typ || r.ID != id {
			continue
		}
		if repo == nil {
			repo = r
		}
		if rev == r.Commit || (len(rev) >= 7 && strings.HasPrefix(r.Commit, rev)) {
			return r, true
		}
		for _, b := range r.Branches {
			if b == rev {
				return r, true
			}
		}
	}
	return repo, false
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// access answers 401/403 for gated or private repos without the token.
func (s *Server) access(w http.ResponseWriter, r *http.Request, repo *Repo) bool {
	auth := r.Header.Get("Authorization")
	switch {
	case auth != "" && auth != "Bearer "+s.Token:
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
		return false
	case repo.Gated && auth == "":
		hubError(w, http.StatusUnauthorized, "GatedRepo", "Access to dataset "+repo.ID+" is restricted. You must have access to it and be authenticated to access it. Please log in.")
		return false
	case repo.Private && auth == "":
		hubError(w, http.StatusUnauthorized, "RepoNotFound", "Repository Not Found for url: "+r.URL.String()+". Please make sure you specified the correct `repo_id` and `repo_type`. If you are trying to access a private or gated repo, make sure you are authenticated.")
		return false
	}
	return true
}

// splitRepo splits "owner/name/rest..." after the repo id.
func splitRepo(p string) (id, rest string, ok bool) {
	parts := strings.SplitN(p, "/", 3)
	if len(parts) < 2 {
		return "", "", false
	}
	id = parts[0] + "/" + parts[1]
	if len(parts) == 3 {
		rest = parts[2]
	}
	return id, rest, true
}

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	s.record(r, false)
	p := r.URL.EscapedPath()
	if strings.HasPrefix(p, "/api/") {
		if f, ok := s.popFault("", true); ok && f.Status != 0 {
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			msg := "injected fault"
			if f.EchoRequest {
				msg = echo(r)
			}
			hubError(w, f.Status, "", msg)
			return
		}
		s.serveAPI(w, r, strings.TrimPrefix(p, "/api/"))
		return
	}
	typ := "model"
	rest := strings.TrimPrefix(p, "/")
	for _, t := range []string{"datasets", "spaces"} {
		if strings.HasPrefix(rest, t+"/") {
			typ, rest = strings.TrimSuffix(t, "s"), strings.TrimPrefix(rest, t+"/")
		}
	}
	id, rest, ok := splitRepo(rest)
	if !ok || !strings.HasPrefix(rest, "resolve/") {
		hubError(w, http.StatusNotFound, "", "Not Found")
		return
	}
	rest = strings.TrimPrefix(rest, "resolve/")
	revEsc, filePath, _ := strings.Cut(rest, "/")
	rev, _ := url.PathUnescape(revEsc)
	filePath, _ = url.PathUnescape(filePath)
	repo, found := s.find(typ, id, rev)
	if repo == nil {
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository Not Found for url: "+r.URL.String()+".")
		return
	}
	if !s.access(w, r, repo) {
		return
	}
	if !found {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	content, ok := repo.Files[filePath]
	if !ok {
		hubError(w, http.StatusNotFound, "EntryNotFound", filePath+" does not exist on \""+rev+"\"")
		return
	}
	w.Header().Set("X-Repo-Commit", repo.Commit)
	if repo.LFS[filePath] {
		w.Header().Set("X-Linked-Etag", `"`+SHA256(content)+`"`)
	}
	w.Header().Set("X-Linked-Size", strconv.Itoa(len(content)))
	// Like the hub: files are served by a CDN on another host. The
	// redirect target is signed, so the CDN needs no Authorization.
	q := url.Values{"type": {typ}, "id": {id}, "commit": {repo.Commit}, "path": {filePath}}
	target := s.CDN.URL + "/blobs?" + q.Encode()
	http.Redirect(w, r, target, http.StatusFound)
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, p string) {
	// {models|datasets}/{owner}/{name}/{revision|tree}/{rev}[/path]
	typPlural, rest, _ := strings.Cut(p, "/")
	typ := strings.TrimSuffix(typPlural, "s")
	id, rest, ok := splitRepo(rest)
	if !ok {
		hubError(w, http.StatusNotFound, "", "Not Found")
		return
	}
	kind, rest, _ := strings.Cut(rest, "/")
	revEsc, dir, _ := strings.Cut(rest, "/")
	rev, _ := url.PathUnescape(revEsc)
	dir, _ = url.PathUnescape(dir)
	repo, found := s.find(typ, id, rev)
	if repo == nil {
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository not found")
		return
	}
	if !s.access(w, r, repo) {
		return
	}
	if !found {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	switch kind {
	case "revision":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": repo.ID, "sha": repo.Commit, "lastModified": repo.Date.UTC().Format("2006-01-02T15:04:05.000Z"),
		})
	case "tree":
		s.serveTree(w, r, repo, rev, dir)
	default:
		hubError(w, http.StatusNotFound, "", "Not Found")
	}
}

func (s *Server) serveTree(w http.ResponseWriter, r *http.Request, repo *Repo, rev, dir string) {
	var paths []string
	for p := range repo.Files {
		if dir == "" || strings.HasPrefix(p, dir+"/") {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	type lfs struct {
		OID         string `json:"oid"`
		Size        int    `json:"size"`
		PointerSize int    `json:"pointerSize"`
	}
	type entry struct {
		Type string `json:"type"`
		OID  string `json:"oid"`
		Size int    `json:"size"`
		Path string `json:"path"`
		LFS  *lfs   `json:"lfs,omitempty"`
	}
	var all []entry
	seenDir := map[string]bool{}
	for _, p := range paths {
		// Directories are listed too, as the hub does.
		for d := p; strings.Contains(d, "/"); {
			d = d[:strings.LastIndex(d, "/")]
			if d != dir && !seenDir[d] && (dir == "" || strings.HasPrefix(d, dir+"/")) {
				seenDir[d] = true
				all = append(all, entry{Type: "directory", OID: GitOID([]byte(d)), Path: d})
			}
		}
		c := repo.Files[p]
		e := entry{Type: "file", OID: GitOID(c), Size: len(c), Path: p}
		if repo.LFS[p] {
			pointer := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", SHA256(c), len(c))
			e.OID = GitOID([]byte(pointer))
			e.Size = len(c)
			e.LFS = &lfs{OID: SHA256(c), Size: len(c), PointerSize: len(pointer)}
		}
		all = append(all, e)
	}
	start := 0
	if cur := r.URL.Query().Get("cursor"); cur != "" {
		start, _ = strconv.Atoi(cur)
	}
	end := min(start+s.PageSize, len(all))
	if start > len(all) {
		start = len(all)
	}
	if end < len(all) {
		q := r.URL.Query()
		q.Set("cursor", strconv.Itoa(end))
		next := *r.URL
		next.RawQuery = q.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, s.Hub.URL, next.RequestURI()))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(all[start:end])
}

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	s.record(r, true)
	// /blobs?type=&id=&commit=&path=
	q := r.URL.Query()
	filePath := q.Get("path")
	repo, found := s.find(q.Get("type"), q.Get("id"), q.Get("commit"))
	if !found {
		http.NotFound(w, r)
		return
	}
	content, ok := repo.Files[filePath]
	if !ok {
		http.NotFound(w, r)
		return
	}
	fault, faulted := s.popFault(filePath, false)
	if faulted && fault.Status != 0 {
		if fault.RetryAfter != "" {
			w.Header().Set("Retry-After", fault.RetryAfter)
		}
		http.Error(w, "injected fault", fault.Status)
		return
	}
	body := content
	if faulted && fault.Corrupt && len(body) > 0 {
		body = append([]byte(nil), content...)
		body[len(body)/2] ^= 0xff
	}
	start := 0
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" {
		spec, ok := strings.CutPrefix(rg, "bytes=")
		a, _, _ := strings.Cut(spec, "-")
		n, err := strconv.Atoi(a)
		if !ok || err != nil {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		if n >= len(body) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(body)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start, status = n, http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(body)-1, len(body)))
	}
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)-start))
	w.Header().Set("ETag", `"`+SHA256(content)+`"`)
	w.WriteHeader(status)
	out := body[start:]
	if faulted && fault.DropAfter > 0 && fault.DropAfter < len(out) {
		_, _ = w.Write(out[:fault.DropAfter])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		// Cut the connection mid-body, as a network failure would.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
		return
	}
	_, _ = w.Write(out)
}
