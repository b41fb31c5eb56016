package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Issue 16, defect 2: a hub error body that echoes the request's
// Authorization header must not reach the log.
func TestLogsAreRedacted(t *testing.T) {
	const tok = "hf_ZyXwVuTsRqPoNmLkJiHgFeDcBa987654"
	for _, format := range []string{FormatConsole, FormatJSON} {
		var out bytes.Buffer
		log, d, err := New(Options{Format: format, Out: &out})
		if err != nil {
			t.Fatal(err)
		}
		log.Error().Err(errors.New(`dataset/download: HTTP 400: {"headers":{"authorization":"Bearer `+tok+`"}}`)).
			Str("url", "https://user:pa55word@hub.example/x").Msg("step finished")
		d.StepStarted("s", "op")
		d.StepProgress("s", 1, 2, "files", "fetching https://user:pa55word@hub.example/y")
		d.LogEvery = 0
		d.tick()
		if s := out.String(); strings.Contains(s, tok) || strings.Contains(s, "pa55word") || !strings.Contains(s, "step finished") || !strings.Contains(s, "fetching https://user:") {
			t.Errorf("%s log output:\n%s", format, s)
		}
	}
}
