package storage

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cloud.google.com/go/storage"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"gocloud.dev/gcerrors"
	"google.golang.org/api/googleapi"
)

// Errors an operation on an object store may match (errors.Is), besides
// ErrNotExist. Their messages say what to fix; the error wrapping them
// names the URL.
var (
	// ErrBucketNotFound: the URL's bucket does not exist.
	ErrBucketNotFound = errors.New("the bucket does not exist (create it, or check the bucket name in the URL)")
	// ErrPermission: the credentials in use may not do this.
	ErrPermission = errors.New("permission denied (the credentials in use may not do this)")
	// ErrCredentials: there are no credentials, or the store refused them.
	ErrCredentials = errors.New("no usable credentials")
)

// s3 error codes by what they mean.
var (
	s3BucketCodes     = map[string]bool{"NoSuchBucket": true}
	s3PermissionCodes = map[string]bool{"AccessDenied": true, "Forbidden": true, "AllAccessDisabled": true, "AccountProblem": true}
	s3CredentialCodes = map[string]bool{
		"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "ExpiredToken": true, "InvalidToken": true,
		"TokenRefreshRequired": true, "MissingSecurityHeader": true, "AuthorizationHeaderMalformed": true,
		"InvalidSecurity": true, "NotSignedUp": true,
	}
)

// classify returns the sentinel an object-store error means, or nil.
func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range []error{ErrBucketNotFound, ErrPermission, ErrCredentials} {
		if errors.Is(err, s) {
			return nil // already classified
		}
	}
	if errors.Is(err, storage.ErrBucketNotExist) {
		return ErrBucketNotFound
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch c := ae.ErrorCode(); {
		case s3BucketCodes[c]:
			return ErrBucketNotFound
		case s3PermissionCodes[c]:
			return ErrPermission
		case s3CredentialCodes[c]:
			return ErrCredentials
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusUnauthorized:
			return ErrCredentials
		case http.StatusForbidden:
			return ErrPermission
		}
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		switch ge.Code {
		case http.StatusUnauthorized:
			return ErrCredentials
		case http.StatusForbidden:
			return ErrPermission
		case http.StatusNotFound:
			if strings.Contains(strings.ToLower(ge.Message), "bucket") {
				return ErrBucketNotFound
			}
		}
	}
	return nil
}

// opError wraps err from operation op on rawURL, naming the URL and, for
// a missing bucket, a permission denial or a credentials problem, what it
// means.
func opError(op, rawURL string, err error) error {
	c := classify(err)
	if c == nil && (op == "write" || op == "commit") && gcerrors.Code(err) == gcerrors.NotFound {
		// An upload is never "not found" for its object: the bucket is
		// missing (GCS emulators say no more than 404).
		c = ErrBucketNotFound
	}
	if c != nil {
		return fmt.Errorf("%s %s: %w: %w", op, rawURL, c, err)
	}
	return fmt.Errorf("%s %s: %w", op, rawURL, err)
}
