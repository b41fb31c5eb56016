package redact

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

const hfTok = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123"

func TestString(t *testing.T) {
	cases := []struct {
		in      string
		secrets []string // must be gone
		keep    []string // must stay
	}{
		{"GET /api/models: HTTP 401: request headers: Authorization: Bearer " + hfTok + "; User-Agent: marin",
			[]string{hfTok}, []string{"Authorization: Bearer " + Mask, "User-Agent: marin", "HTTP 401"}},
		{`{"error":"bad","headers":{"Authorization":"Bearer abc.def-ghi_jkl"}}`,
			[]string{"abc.def-ghi_jkl"}, []string{`"Authorization":"Bearer [REDACTED]"`}},
		{`msg="{\"authorization\": \"Basic dXNlcjpwYXNz\"}"`, []string{"dXNlcjpwYXNz"}, []string{"authorization"}},
		{"token " + hfTok + " rejected", []string{hfTok}, []string{"rejected"}},
		{"fetch https://alice:s3cr3tPass@example.com/x.jsonl: 403", []string{"s3cr3tPass"}, []string{"https://alice:[REDACTED]@example.com/x.jsonl", "403"}},
		{"aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
			[]string{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}, []string{"aws_secret_access_key = " + Mask}},
		{"AWS_SESSION_TOKEN=FwoGZXIvYXdzEJr//////////wEaDHVeryLongToken123", []string{"FwoGZXIvYXdzEJr"}, []string{"AWS_SESSION_TOKEN="}},
		{"GET https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20130524&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
			[]string{"aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", "AKIDEXAMPLE"}, []string{"X-Amz-Algorithm=AWS4-HMAC-SHA256", "b.s3.amazonaws.com/k"}},
		{`{"type": "service_account", "private_key_id": "1a2b3c4d5e6f", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n", "client_email": "x@p.iam.gserviceaccount.com"}`,
			[]string{"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "1a2b3c4d5e6f"}, []string{"client_email", "x@p.iam.gserviceaccount.com", "service_account"}},
		{"Authorization: Bearer ya29.a0AfH6SMBx-very-long-oauth-token", []string{"ya29.a0AfH6SMBx"}, nil},
		{"oauth2: token expired: ya29.c.Kp8B-abcdefghijklmnop", []string{"ya29.c.Kp8B-abcdefghijklmnop"}, []string{"token expired"}},
		{"https://storage.googleapis.com/b/o?X-Goog-Signature=0123abcd&X-Goog-Credential=svc%40p", []string{"0123abcd", "svc%40p"}, []string{"storage.googleapis.com/b/o"}},
		{"-----BEGIN RSA PRIVATE KEY-----\nMIIEow cut off here", []string{"MIIEow"}, nil},
		{`password: "hunter2hunter2"`, []string{"hunter2hunter2"}, []string{"password"}},
		// Ordinary text is left alone.
		{"tokens=1234 max_tokens: 16 http://host:8080/a@b s3://bucket/key read 5 tokens", nil,
			[]string{"tokens=1234 max_tokens: 16 http://host:8080/a@b s3://bucket/key read 5 tokens"}},
	}
	for _, c := range cases {
		got := String(c.in)
		for _, s := range c.secrets {
			if strings.Contains(got, s) {
				t.Errorf("String(%q) = %q still holds %q", c.in, got, s)
			}
		}
		for _, k := range c.keep {
			if !strings.Contains(got, k) {
				t.Errorf("String(%q) = %q lost %q", c.in, got, k)
			}
		}
	}
}

func TestEnvAndRegisteredSecrets(t *testing.T) {
	t.Setenv("HF_TOKEN", "my-own-token-format-1234")
	mu.Lock()
	envLoaded = false
	mu.Unlock()
	if got := String("body echoed my-own-token-format-1234!"); strings.Contains(got, "my-own-token") {
		t.Errorf("env secret kept: %q", got)
	}
	Register("short")
	Register("a-password-from-a-file")
	if got := String("short a-password-from-a-file"); got != "short "+Mask {
		t.Errorf("got %q", got)
	}
}

func TestErrorKeepsIdentity(t *testing.T) {
	base := fmt.Errorf("open hf://x: Authorization: Bearer %s: %w", hfTok, fs.ErrPermission)
	err := Error(base)
	if strings.Contains(err.Error(), hfTok) {
		t.Fatalf("%v", err)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("redacted error lost its identity")
	}
	if Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
	plain := errors.New("nothing secret")
	if Error(plain) != plain {
		t.Error("an error without secrets was wrapped")
	}
	if Error(err) != err {
		t.Error("a redacted error was wrapped again")
	}
}

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	w := Writer(&b)
	line := `{"level":"error","error":"HTTP 401: Authorization: Bearer ` + hfTok + `"}` + "\n"
	n, err := w.Write([]byte(line))
	if err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if strings.Contains(b.String(), hfTok) || !strings.HasSuffix(b.String(), "\"}\n") {
		t.Errorf("wrote %q", b.String())
	}
}

func BenchmarkStringLogLine(b *testing.B) {
	line := `{"level":"info","step":"tokenized/tulu3-1a2b3c","op":"tokenize","path":"file:///data/marin-output/tokenized/tulu3-1a2b3c","message":"shard 17 of 64: 123456 documents, 98765432 tokens"}`
	b.SetBytes(int64(len(line)))
	for i := 0; i < b.N; i++ {
		String(line)
	}
}
