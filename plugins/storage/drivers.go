package storage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddle "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	"github.com/googleapis/gax-go/v2"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"

	gcaws "gocloud.dev/aws"
)

// The object-store drivers. marin opens s3:// and gs:// buckets itself
// (rather than through gocloud's default openers) to configure three
// things the defaults leave out: retries with backoff that log every failed
// attempt with its number, S3-compatible endpoints that work without
// further options, and a clear error when there are no credentials.
//
// s3://bucket/key?query — the query takes gocloud's parameters (region,
// endpoint, profile, anonymous, use_path_style, disable_https,
// request_checksum_calculation, …; see gocloud.dev/aws and s3blob), and
// the AWS SDK's environment works as usual: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN), AWS_PROFILE, AWS_REGION,
// AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3). With a custom endpoint, from
// either, requests use path-style addressing, region us-east-1 and
// checksums only where required unless the query says otherwise: what
// S3-compatible servers (MinIO, SeaweedFS, Ceph) expect.
//
// gs://bucket/key?query — Application Default Credentials
// (GOOGLE_APPLICATION_CREDENTIALS, gcloud's login, the metadata server);
// STORAGE_EMULATOR_HOST points at an emulator (no credentials then);
// ?anonymous=true reads public buckets.

// Retry bounds. Both SDKs back off exponentially with jitter between
// attempts; the attempt count and the error of every failed attempt are
// logged (see logS3Attempts and gcsTransport).
const (
	maxAttempts = 6
	maxBackoff  = 20 * time.Second
)

// openObjectStore opens the bucket of an s3:// or gs:// URL (root with
// its query), or returns ok false for other schemes.
func openObjectStore(ctx context.Context, root string) (b *blob.Bucket, ok bool, err error) {
	u, err := url.Parse(root)
	if err != nil {
		return nil, true, err
	}
	switch u.Scheme {
	case "s3":
		b, err = openS3(ctx, u)
	case "gs":
		b, err = openGCS(ctx, u)
	default:
		return nil, false, nil
	}
	return b, true, err
}

// customEndpoint reports whether S3 requests go somewhere other than AWS.
func customEndpoint(q url.Values, cfg aws.Config) bool {
	return q.Get("endpoint") != "" || cfg.BaseEndpoint != nil
}

func openS3(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	var pathStyle, disableHTTPS *bool
	for _, k := range []string{"use_path_style", "s3ForcePathStyle", "disable_https"} {
		v := q.Get(k)
		if v == "" {
			continue
		}
		q.Del(k)
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("query parameter %s=%q: %w", k, v, err)
		}
		if k == "disable_https" {
			disableHTTPS = &b
		} else {
			pathStyle = &b
		}
	}
	var opts s3blob.Options
	if v := q.Get("ssetype"); v != "" {
		q.Del("ssetype")
		opts.EncryptionType = s3types.ServerSideEncryption(v)
	}
	if v := q.Get("kmskeyid"); v != "" {
		q.Del("kmskeyid")
		opts.KMSEncryptionID = v
	}
	checksum := q.Get("request_checksum_calculation")
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, err
	}
	custom := customEndpoint(q, cfg)
	if cfg.Region == "" {
		if !custom {
			return nil, fmt.Errorf("%w: no AWS region for bucket %s: set AWS_REGION or add ?region=… to the URL", ErrCredentials, u.Host)
		}
		cfg.Region = "us-east-1"
	}
	if custom && checksum == "" {
		cfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	}
	if custom && q.Get("response_checksum_validation") == "" {
		cfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}
	// The SDK's own notices go to marin's log, not to stderr.
	cfg.Logger = sdkLogger{}
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = maxAttempts
			o.MaxBackoff = maxBackoff
			// No client-side retry quota: a burst of throttling must
			// back off, not fail once the quota is spent.
			o.RateLimiter = ratelimit.None
		})
	}
	anonymous, _ := strconv.ParseBool(q.Get("anonymous"))
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil && !anonymous {
		return nil, fmt.Errorf("%w for bucket %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or add ?anonymous=true for a public bucket: %v", ErrCredentials, u.Host, err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = custom
		if pathStyle != nil {
			o.UsePathStyle = *pathStyle
		}
		if disableHTTPS != nil {
			o.EndpointOptions.DisableHTTPS = *disableHTTPS
		}
		o.APIOptions = append(o.APIOptions, logS3Attempts)
	})
	opts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	return s3blob.OpenBucket(ctx, client, u.Host, &opts)
}

// sdkLogger passes the AWS SDK's log lines to the default storage logger
// at debug level.
type sdkLogger struct{}

func (sdkLogger) Logf(_ logging.Classification, format string, v ...any) {
	logf(context.Background(), "debug", "aws sdk: "+fmt.Sprintf(format, v...))
}

// attemptKey holds the attempt counter of one S3 operation.
type attemptKey struct{}

type s3Call struct {
	attempts int
	target   string // s3://bucket/key of the operation, when it has one
}

// logS3Attempts adds two middlewares to every S3 operation: one that
// starts an attempt counter, and one inside the SDK's retry loop that
// counts attempts and logs each failed one with its number.
func logS3Attempts(stack *middleware.Stack) error {
	start := middleware.InitializeMiddlewareFunc("MarinAttemptCounter", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		return next.HandleInitialize(context.WithValue(ctx, attemptKey{}, &s3Call{target: s3Target(in.Parameters)}), in)
	})
	if err := stack.Initialize.Add(start, middleware.Before); err != nil {
		return err
	}
	std := retry.NewStandard()
	each := middleware.FinalizeMiddlewareFunc("MarinAttemptLog", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		out, md, err := next.HandleFinalize(ctx, in)
		call, _ := ctx.Value(attemptKey{}).(*s3Call)
		if call == nil {
			return out, md, err
		}
		call.attempts++
		op := "S3 " + awsmiddle.GetOperationName(ctx)
		switch {
		case err != nil && std.IsErrorRetryable(err) && ctx.Err() == nil:
			verb := "retrying with backoff"
			if call.attempts >= maxAttempts {
				verb = "giving up"
			}
			logf(ctx, "warn", fmt.Sprintf("%s %s: attempt %d of %d failed; %s", op, call.target, call.attempts, maxAttempts, verb),
				"attempt", strconv.Itoa(call.attempts), "error", err.Error())
		case err == nil && call.attempts > 1:
			logf(ctx, "info", fmt.Sprintf("%s %s: succeeded on attempt %d", op, call.target, call.attempts),
				"attempt", strconv.Itoa(call.attempts))
		}
		return out, md, err
	})
	return stack.Finalize.Insert(each, "Retry", middleware.After)
}

// s3Target names the object (or bucket) an S3 operation input addresses.
func s3Target(params any) string {
	v := reflect.ValueOf(params)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return ""
	}
	str := func(name string) string {
		f := v.Elem().FieldByName(name)
		if f.IsValid() && f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.String {
			return f.Elem().String()
		}
		return ""
	}
	b, k := str("Bucket"), str("Key")
	if b == "" {
		return ""
	}
	return "s3://" + b + "/" + k
}

// gcsRetryable are the HTTP statuses Google's client retries.
func gcsRetryable(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
}

func openGCS(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	anonymous := false
	for k, v := range q {
		switch k {
		case "anonymous":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return nil, fmt.Errorf("query parameter anonymous=%q: %w", v[0], err)
			}
			anonymous = b
		default:
			return nil, fmt.Errorf("unknown query parameter %q for gs:// (known: anonymous)", k)
		}
	}
	base := &gcsTransport{base: http.DefaultTransport}
	opts := []option.ClientOption{}
	switch {
	case os.Getenv("STORAGE_EMULATOR_HOST") != "":
		// The client points itself at the emulator and drops auth.
		opts = append(opts, option.WithHTTPClient(&http.Client{Transport: base}))
	case anonymous:
		opts = append(opts, option.WithoutAuthentication(), option.WithHTTPClient(&http.Client{Transport: base}))
	default:
		creds, err := google.FindDefaultCredentials(ctx, storage.ScopeFullControl)
		if err != nil {
			return nil, fmt.Errorf("%w for bucket %s: set GOOGLE_APPLICATION_CREDENTIALS to a service account key file or run `gcloud auth application-default login` (or add ?anonymous=true for a public bucket; STORAGE_EMULATOR_HOST for an emulator): %v", ErrCredentials, u.Host, err)
		}
		opts = append(opts, option.WithHTTPClient(&http.Client{Transport: &oauth2.Transport{Source: creds.TokenSource, Base: base}}))
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, err
	}
	// Retry every operation, writes included: marin's writes replace a
	// whole object (idempotent), and its conditional ones read back what
	// a retried request might have already done (see CreateIfNotExist).
	client.SetRetry(
		storage.WithPolicy(storage.RetryAlways),
		storage.WithMaxAttempts(maxAttempts),
		storage.WithBackoff(gax.Backoff{Initial: 200 * time.Millisecond, Max: maxBackoff, Multiplier: 2}),
	)
	return gcsblob.OpenBucket(ctx, nil, u.Host, &gcsblob.Options{Client: client})
}

// gcsTransport logs every failed attempt of a GCS request with its number,
// which Google's client sends in x-goog-api-client
// ("gccl-attempt-count/N").
type gcsTransport struct{ base http.RoundTripper }

func (t *gcsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	attempt := gcsAttempt(req.Header.Get("X-Goog-Api-Client"))
	resp, err := t.base.RoundTrip(req)
	ctx := req.Context()
	what := "GCS " + req.Method + " " + gcsObject(req.URL)
	switch {
	case err != nil && ctx.Err() == nil && transient(err):
		logf(ctx, "warn", fmt.Sprintf("%s: attempt %d of %d failed; retrying with backoff", what, attempt, maxAttempts),
			"attempt", strconv.Itoa(attempt), "error", err.Error())
	case err == nil && gcsRetryable(resp.StatusCode):
		verb := "retrying with backoff"
		if attempt >= maxAttempts {
			verb = "giving up"
		}
		logf(ctx, "warn", fmt.Sprintf("%s: attempt %d of %d failed with HTTP %d; %s", what, attempt, maxAttempts, resp.StatusCode, verb),
			"attempt", strconv.Itoa(attempt), "status", strconv.Itoa(resp.StatusCode))
	case err == nil && attempt > 1 && resp.StatusCode < 300:
		logf(ctx, "info", fmt.Sprintf("%s: succeeded on attempt %d", what, attempt), "attempt", strconv.Itoa(attempt))
	}
	return resp, err
}

// transient reports whether a transport error is worth retrying.
func transient(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "connection reset")
}

func gcsAttempt(h string) int {
	for _, f := range strings.Fields(h) {
		if v, ok := strings.CutPrefix(f, "gccl-attempt-count/"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return 1
}

// gcsObject turns a JSON API request URL into gs://bucket/object where it
// can ("/storage/v1/b/B/o/O", "/upload/storage/v1/b/B/o?name=O",
// "/download/storage/v1/b/B/o/O", "/B/O" on the XML host).
func gcsObject(u *url.URL) string {
	p := u.EscapedPath()
	for _, pre := range []string{"/upload/storage/v1/b/", "/download/storage/v1/b/", "/storage/v1/b/"} {
		if i := strings.Index(p, pre); i >= 0 {
			rest := p[i+len(pre):]
			b, o, _ := strings.Cut(rest, "/o")
			o = strings.TrimPrefix(o, "/")
			if o == "" {
				o = u.Query().Get("name")
			} else if d, err := url.PathUnescape(o); err == nil {
				o = d
			}
			return "gs://" + b + "/" + o
		}
	}
	return u.Host + p
}
