package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/host/validate"
)

func newExplainCmd(stdout, stderr io.Writer) *cobra.Command {
	var prefix, logFormat, logLevel string
	cmd := &cobra.Command{
		Use:   "explain SCRIPT.star STEP",
		Short: "Show everything about one step: path, decision and why, version, config, history",
		Long: `Show one step of a script: its output path, what a run would do with it and
why (for a step that reruns, the config values that differ from its most recent
earlier output), its version JSON (what the path hashes), the config its plugin
receives, its dependencies and its status history on disk.

STEP is a step name ("tokenized/tulu"), an output path relative to the prefix,
or a regular expression matching exactly one of those.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, _, err := newLogger(logFormat, logLevel, stderr)
			if err != nil {
				return err
			}
			m, err := newManager(log)
			if err != nil {
				return withCode(exitNoPlugin, err)
			}
			_, plan, _, err := loadPlan(cmd.Context(), args[0], prefix, m, validate.Options{LogLevel: logLevel})
			if err != nil {
				return err
			}
			n, err := findStep(plan, args[1])
			if err != nil {
				return withCode(exitUsage, err)
			}
			ds, err := executor.Plan(cmd.Context(), plan, executor.Options{Prefix: plan.Prefix})
			if err != nil {
				return withCode(exitFailed, err)
			}
			var d executor.Decision
			for _, x := range ds {
				if x.OutputPath == n.OutputPath {
					d = x
				}
			}
			return printExplain(cmd, stdout, n, d)
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "where outputs live (default $MARIN_PREFIX, else ./marin-output)")
	bindLogFlags(cmd, &logFormat, &logLevel)
	return cmd
}

func findStep(plan *graph.Plan, q string) (*graph.Planned, error) {
	for _, s := range plan.Steps {
		if s.Step.Name == q || s.RelPath == q || s.OutputPath == q {
			return s, nil
		}
	}
	re, err := regexp.Compile(q)
	if err != nil {
		return nil, fmt.Errorf("no step named %q (and it is not a valid regular expression: %v)", q, err)
	}
	var matches []*graph.Planned
	for _, s := range plan.Steps {
		if re.MatchString(s.Step.Name) || re.MatchString(s.RelPath) {
			matches = append(matches, s)
		}
	}
	names := func(ss []*graph.Planned) string {
		var n []string
		for _, s := range ss {
			n = append(n, s.Step.Name)
		}
		sort.Strings(n)
		return strings.Join(n, ", ")
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return nil, fmt.Errorf("no step matches %q; steps: %s", q, names(plan.Steps))
	}
	return nil, fmt.Errorf("%q matches %d steps: %s", q, len(matches), names(matches))
}

func printExplain(cmd *cobra.Command, w io.Writer, n *graph.Planned, d executor.Decision) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "step:\t%s\n", n.Step.Name)
	fmt.Fprintf(tw, "op:\t%s\n", n.Step.Op)
	if n.Step.Pos != "" {
		fmt.Fprintf(tw, "defined at:\t%s\n", n.Step.Pos)
	}
	if n.Step.Description != "" {
		fmt.Fprintf(tw, "description:\t%s\n", n.Step.Description)
	}
	fmt.Fprintf(tw, "output:\t%s\n", n.OutputPath)
	fmt.Fprintf(tw, "decision:\t%s: %s\n", d.Decision, d.Reason)
	tw.Flush()
	if len(d.Diff) > 0 {
		fmt.Fprintf(w, "\nchanged since %s:\n", d.Previous)
		for _, c := range d.Diff {
			fmt.Fprintf(w, "  %s\n", c.String())
		}
	}
	if len(n.Deps) > 0 {
		fmt.Fprintln(w, "\ndepends on:")
		for _, dep := range n.Deps {
			fmt.Fprintf(w, "  %s\n", dep.OutputPath)
		}
	}
	if len(n.Unversioned) > 0 {
		fmt.Fprintf(w, "\nnot hashed (unversioned or non-semantic): %s\n", strings.Join(n.Unversioned, ", "))
	}
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, n.VersionJSON, "  ", "  ")
	fmt.Fprintf(w, "\nversion (hash %s):\n  %s\n", n.Hash, pretty.String())
	cfg, _ := graph.CanonicalJSON(n.Config)
	pretty.Reset()
	_ = json.Indent(&pretty, cfg, "  ", "  ")
	fmt.Fprintf(w, "\nconfig sent to the plugin:\n  %s\n", pretty.String())

	hist, err := executor.ReadStatus(cmd.Context(), n.OutputPath)
	if err == nil && len(hist) > 0 {
		fmt.Fprintln(w, "\nstatus history:")
		for _, h := range hist {
			line := fmt.Sprintf("  %s  %-10s %s", h.Time.Format(time.RFC3339), h.Status, h.Holder)
			if h.Message != "" {
				line += "  " + firstLine(h.Message)
			}
			fmt.Fprintln(w, line)
		}
	}
	if info, err := executor.ReadInfo(cmd.Context(), n.OutputPath); err == nil && info.Plugin.Name != "" {
		fmt.Fprintf(w, "\nlast run by plugin %s %s (%s)\n", info.Plugin.Name, info.Plugin.Version, info.Plugin.Path)
	}
	return nil
}
