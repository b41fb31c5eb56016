package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/marin-go/marin/host/runner"
	"github.com/marin-go/marin/host/runner/slurm"
)

// runnerOptions are the flags that say where steps run.
type runnerOptions struct {
	name      string
	shared    bool
	resources []string
	poll      time.Duration

	slurmBinary string
	slurmLogDir string

	k8s k8sOptions
}

func (o *runnerOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.name, "runner", "", "where steps run: local (this machine's plugins), slurm or kubernetes (default $MARIN_RUNNER, else local)")
	f.BoolVar(&o.shared, "shared-prefix", false, "the file:// prefix is on a file system every node of the runner mounts at the same path")
	f.StringArrayVar(&o.resources, "resource", nil, "FIELD=VALUE: override a ResourceConfig field of every step for slurm/kubernetes, e.g. partition=gpu, time_limit=4h (repeatable)")
	f.DurationVar(&o.poll, "poll", 0, "how often steps running elsewhere or as jobs are checked (default 5s)")
	f.StringVar(&o.slurmBinary, "slurm-binary", "", "slurm: the marin executable the jobs run, at the same path on every node (default: this one)")
	f.StringVar(&o.slurmLogDir, "slurm-log-dir", "", "slurm: directory for the jobs' stdout/stderr when the prefix is not a shared file:// directory (default ./marin-slurm-logs)")
	o.k8s.bind(cmd)
}

// runnerName is --runner, else $MARIN_RUNNER, else local.
func (o *runnerOptions) runnerName() (string, error) {
	n := o.name
	if n == "" {
		n = os.Getenv("MARIN_RUNNER")
	}
	switch n {
	case "", runner.Local:
		return runner.Local, nil
	case runner.Slurm, runner.Kubernetes:
		return n, nil
	}
	return "", withCode(exitUsage, fmt.Errorf("--runner %q: want local, slurm or kubernetes", n))
}

// overrides parses --resource FIELD=VALUE pairs.
func (o *runnerOptions) overrides() (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range o.resources {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, withCode(exitUsage, fmt.Errorf("--resource %q: want FIELD=VALUE", kv))
		}
		m[k] = v
	}
	// Unknown fields and unreadable values are usage errors even when no
	// step is left to run. (Whether the fields suit each step is checked
	// at plan time, with the step's own resources.)
	if _, err := runner.ParseResources(nil, m); err != nil && strings.HasPrefix(err.Error(), "--resource") {
		return nil, withCode(exitUsage, err)
	}
	return m, nil
}

// remote builds the remote runner for a run under prefix, or returns nil
// for the local one.
func (o *runnerOptions) remote(prefix string) (runner.Runner, error) {
	name, err := o.runnerName()
	if err != nil {
		return nil, err
	}
	switch name {
	case runner.Slurm:
		r, err := slurm.New(slurm.Config{Binary: o.slurmBinary, LogDir: o.slurmLogDir})
		if err != nil {
			return nil, withCode(exitUsage, err)
		}
		return r, nil
	case runner.Kubernetes:
		return o.k8s.runner(prefix)
	}
	if o.shared || len(o.resources) > 0 {
		return nil, withCode(exitUsage, errors.New("--shared-prefix and --resource go with --runner slurm or kubernetes"))
	}
	return nil, nil
}
