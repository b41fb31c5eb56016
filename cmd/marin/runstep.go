package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/marin-go/marin/host/executor"
)

// newRunStepCmd is `marin run-step`, what the jobs of the slurm and
// kubernetes runners execute on their nodes.
func newRunStepCmd(stdout, stderr io.Writer) *cobra.Command {
	var jobURL, logFormat, logLevel string
	cmd := &cobra.Command{
		Use:   "run-step --job URL",
		Short: "Run one step from a job file (what slurm and kubernetes jobs execute)",
		Long: `run-step runs the step described by a job file that a marin using
--runner slurm or kubernetes wrote under the step's output
({output}/.executor_jobs/attempt-N/job.json). It takes over the lease that
marin handed over, runs the op in this machine's plugins, reports progress
and logs back through the prefix, records SUCCESS or FAILED and releases the
lease. On a multi-node job only rank 0 (MARIN_NODE_RANK) does the
bookkeeping; the other ranks run the op.

Exit codes: 0 success, 1 the step failed, 5 the lease is no longer this
job's (another marin took the step over; nothing ran), 130 stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStep(cmd.Context(), jobURL, logFormat, logLevel, stderr)
		},
	}
	cmd.Flags().StringVar(&jobURL, "job", "", "storage URL of the job file")
	_ = cmd.MarkFlagRequired("job")
	level := os.Getenv("MARIN_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	cmd.Flags().StringVar(&logFormat, "log-format", "console", "log output: console or json")
	cmd.Flags().StringVar(&logLevel, "log-level", level, "trace, debug, info, warn or error (default $MARIN_LOG_LEVEL, else info)")
	return cmd
}

func runStep(ctx context.Context, jobURL, logFormat, logLevel string, stderr io.Writer) error {
	log, _, err := newLogger(logFormat, logLevel, stderr)
	if err != nil {
		return err
	}
	rank := 0
	if s := os.Getenv("MARIN_NODE_RANK"); s != "" {
		if rank, err = strconv.Atoi(s); err != nil || rank < 0 {
			return withCode(exitUsage, fmt.Errorf("MARIN_NODE_RANK=%q: want a node rank (0, 1, …)", s))
		}
	}
	m, err := newManager(log)
	if err != nil {
		return withCode(exitNoPlugin, err)
	}
	err = executor.RunJob(ctx, jobURL, executor.JobOptions{Runner: m, Logger: log, Where: jobWhere(), Rank: rank})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, executor.ErrNotHolder):
		return withCode(exitElsewhere, err)
	case ctx.Err() != nil:
		return withCode(exitInterrupted, err)
	default:
		return withCode(exitFailed, err)
	}
}

// jobWhere names the job and node this process runs in, from the
// scheduler's environment.
func jobWhere() string {
	host, _ := os.Hostname()
	var parts []string
	switch {
	case os.Getenv("SLURM_JOB_ID") != "":
		parts = append(parts, "slurm job "+os.Getenv("SLURM_JOB_ID"))
	case os.Getenv("MARIN_POD_NAME") != "":
		parts = append(parts, "pod "+os.Getenv("MARIN_POD_NAME"))
		if n := os.Getenv("MARIN_K8S_NODE"); n != "" {
			host = n
		}
	}
	if host != "" {
		parts = append(parts, "on "+host)
	}
	return strings.Join(parts, " ")
}
