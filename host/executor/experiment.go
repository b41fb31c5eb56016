package executor

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/storage"
)

// ExperimentRecord is the content of {prefix}/experiments/{script}-{hash6}.json:
// who ran which steps from which script at which commit.
type ExperimentRecord struct {
	Script       string           `json:"script"`
	GitCommit    string           `json:"git_commit"`
	User         string           `json:"user"`
	Hostname     string           `json:"hostname"`
	Date         time.Time        `json:"date"`
	MarinVersion string           `json:"marin_version"`
	Prefix       string           `json:"prefix"`
	Holder       string           `json:"holder"`
	Steps        []ExperimentStep `json:"steps"`
}

// ExperimentStep is one step in an ExperimentRecord.
type ExperimentStep struct {
	Name       string         `json:"name"`
	Op         string         `json:"op"`
	OutputPath string         `json:"output_path"`
	Version    map[string]any `json:"version"`
	// Status is the step's state: as planned when the run starts
	// (SUCCESS for skipped steps, PENDING for the rest), then its outcome.
	Status Status `json:"status"`
}

// statusPending marks, in the experiment record, a step not yet finished.
const statusPending Status = "PENDING"

type experiment struct {
	url       string
	rec       ExperimentRecord
	decisions []Decision
}

// ExperimentURL returns where a run of these steps records itself: the
// script's stem plus a hash of the steps' sorted relative output paths, so
// rerunning the same experiment overwrites its record.
func ExperimentURL(prefix, script string, relPaths []string) string {
	sorted := append([]string(nil), relPaths...)
	sort.Strings(sorted)
	js, _ := graph.CanonicalJSON(sorted)
	sum := md5.Sum(js)
	stem := strings.TrimSuffix(filepath.Base(script), filepath.Ext(script))
	if script == "" || stem == "" || stem == "." || stem == "/" {
		stem = "experiment"
	}
	return storage.Join(prefix, "experiments", stem+"-"+hex.EncodeToString(sum[:])[:6]+".json")
}

func (e *executor) newExperiment(ctx context.Context, decisions []Decision) *experiment {
	rel := make([]string, len(e.steps))
	for i, st := range e.steps {
		rel[i] = st.RelPath
	}
	host, _ := os.Hostname()
	x := &experiment{
		url:       ExperimentURL(e.plan.Prefix, e.opts.ScriptName, rel),
		decisions: decisions,
		rec: ExperimentRecord{
			Script:       e.opts.ScriptName,
			GitCommit:    gitCommit(ctx, e.opts.ScriptName),
			User:         currentUser(),
			Hostname:     host,
			Date:         e.now().UTC(),
			MarinVersion: e.opts.MarinVersion,
			Prefix:       e.plan.Prefix,
			Holder:       e.holder,
		},
	}
	for _, st := range e.steps {
		x.rec.Steps = append(x.rec.Steps, ExperimentStep{
			Name: st.Step.Name, Op: st.Step.Op, OutputPath: st.OutputPath, Version: st.Version,
		})
	}
	return x
}

// write stores the record with the planned statuses (res nil) or the
// run's outcomes.
func (x *experiment) write(ctx context.Context, res []outcome) error {
	for i, d := range x.decisions {
		s := statusPending
		switch {
		case res != nil && res[i].status != "":
			s = res[i].status
		case d.Decision == DecisionSkip:
			s = StatusSuccess
		case d.Decision == DecisionBlocked:
			s = StatusBlocked
		}
		x.rec.Steps[i].Status = s
	}
	data, err := json.MarshalIndent(x.rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode experiment record %s: %w", x.url, err)
	}
	wctx, cancel := detached(ctx)
	defer cancel()
	if err := storage.WriteAtomic(wctx, x.url, append(data, '\n')); err != nil {
		return fmt.Errorf("write experiment record: %w", err)
	}
	return nil
}

// gitCommit returns HEAD of the git checkout holding script, or "".
func gitCommit(ctx context.Context, script string) string {
	if script == "" {
		return ""
	}
	dir := filepath.Dir(script)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}
