// Package storetest gives tests real object stores: the S3 server and the
// GCS emulator that scripts/test builds and starts on loopback ports (see
// its "object stores" section), found through the environment:
//
//	MARIN_TEST_S3_ENDPOINT    http://127.0.0.1:PORT of the S3 server
//	MARIN_TEST_S3_ACCESS_KEY, MARIN_TEST_S3_SECRET_KEY   its credentials
//	MARIN_TEST_GCS_ENDPOINT   127.0.0.1:PORT of fake-gcs-server (STORAGE_EMULATOR_HOST)
//	MARIN_REQUIRE_OBJECT_STORES=1   set by scripts/test when it started them:
//	                          a missing store then fails the test instead of skipping it
//
// Each call makes a fresh bucket, so tests never see each other's objects.
// It configures the current process through the providers' standard
// environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, …; STORAGE_EMULATOR_HOST)
// with t.Setenv, and returns that environment for child processes too.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Environment variables scripts/test sets.
const (
	S3EndpointEnv  = "MARIN_TEST_S3_ENDPOINT"
	S3AccessKeyEnv = "MARIN_TEST_S3_ACCESS_KEY"
	S3SecretKeyEnv = "MARIN_TEST_S3_SECRET_KEY"
	GCSEndpointEnv = "MARIN_TEST_GCS_ENDPOINT"
	RequireEnv     = "MARIN_REQUIRE_OBJECT_STORES"
)

// Store is a fresh bucket on a test object store.
type Store struct {
	Scheme string // "s3" or "gs"
	Bucket string
	// URL is the bucket's root, "s3://NAME" or "gs://NAME".
	URL string
	// Env is what a child process needs to reach the bucket (endpoint and
	// credentials), as KEY=VALUE.
	Env []string
	// Endpoint is the server's address: http://HOST:PORT for S3,
	// HOST:PORT for the GCS emulator.
	Endpoint string
}

// missing skips the test, or fails it when scripts/test said the stores
// run.
func missing(t testing.TB, what, env string) {
	t.Helper()
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s is not running ($%s is empty) but %s is set: scripts/test should have started it", what, env, RequireEnv)
	}
	t.Skipf("no %s: $%s is empty (scripts/test builds and starts one)", what, env)
}

// Name is a bucket name unique to this test run.
func Name(t testing.TB) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	n := strings.ToLower(t.Name())
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, n)
	if len(n) > 40 {
		n = n[:40]
	}
	return strings.Trim("t-"+n, "-") + "-" + hex.EncodeToString(b)
}

// S3 returns a fresh bucket on the test S3 server.
func S3(t testing.TB) *Store {
	t.Helper()
	ep := os.Getenv(S3EndpointEnv)
	if ep == "" {
		missing(t, "S3 server", S3EndpointEnv)
	}
	env := []string{
		"AWS_ENDPOINT_URL=" + ep,
		"AWS_ACCESS_KEY_ID=" + os.Getenv(S3AccessKeyEnv),
		"AWS_SECRET_ACCESS_KEY=" + os.Getenv(S3SecretKeyEnv),
		"AWS_REGION=us-east-1",
		// Nothing else may supply credentials or config.
		"AWS_PROFILE=", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
	}
	setenv(t, env)
	name := Name(t)
	if err := CreateS3Bucket(context.Background(), ep, name); err != nil {
		t.Fatalf("create S3 bucket %s at %s: %v", name, ep, err)
	}
	return &Store{Scheme: "s3", Bucket: name, URL: "s3://" + name, Env: env, Endpoint: ep}
}

// CreateS3Bucket makes a bucket on the S3 server at endpoint with the test
// credentials.
func CreateS3Bucket(ctx context.Context, endpoint, name string) error {
	c := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(os.Getenv(S3AccessKeyEnv), os.Getenv(S3SecretKeyEnv), ""),
	})
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	return err
}

// GCS returns a fresh bucket on the test GCS emulator.
func GCS(t testing.TB) *Store {
	t.Helper()
	ep := os.Getenv(GCSEndpointEnv)
	if ep == "" {
		missing(t, "GCS emulator", GCSEndpointEnv)
	}
	env := []string{"STORAGE_EMULATOR_HOST=" + ep}
	setenv(t, env)
	name := Name(t)
	if err := CreateGCSBucket(context.Background(), ep, name); err != nil {
		t.Fatalf("create GCS bucket %s at %s: %v", name, ep, err)
	}
	return &Store{Scheme: "gs", Bucket: name, URL: "gs://" + name, Env: env, Endpoint: ep}
}

// CreateGCSBucket makes a bucket on the emulator at host:port.
func CreateGCSBucket(ctx context.Context, hostPort, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	body := fmt.Sprintf(`{"name": %q}`, name)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+hostPort+"/storage/v1/b?project=marin-test", bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

// All returns a fresh bucket on every test store, skipping (or failing,
// see RequireEnv) for the ones that do not run.
func All(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Run("s3", func(t *testing.T) { fn(t, S3(t)) })
	t.Run("gs", func(t *testing.T) { fn(t, GCS(t)) })
}

func setenv(t testing.TB, env []string) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Proxy starts an HTTP reverse proxy to the store's server on a loopback
// port and returns its address as HOST:PORT (point AWS_ENDPOINT_URL or
// STORAGE_EMULATOR_HOST at it). fault, when not nil, sees every request
// first: a status it returns (non-zero) is answered instead of forwarding,
// to inject throttling, server errors and denials.
func (s *Store) Proxy(t testing.TB, fault func(r *http.Request) int) string {
	t.Helper()
	target := s.Endpoint
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	if s.Scheme == "gs" {
		// The emulator routes by Host (another host reads as a bucket
		// name); S3 requests keep theirs, which their signature covers.
		director := rp.Director
		rp.Director = func(r *http.Request) {
			director(r)
			r.Host = u.Host
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fault != nil {
			if code := fault(r); code != 0 {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(code)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the test proxy</Message></Error>`, faultCode(code))
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func faultCode(code int) string {
	switch code {
	case http.StatusServiceUnavailable:
		return "SlowDown"
	case http.StatusInternalServerError:
		return "InternalError"
	case http.StatusForbidden:
		return "AccessDenied"
	}
	return "Error"
}
