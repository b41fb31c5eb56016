package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/marin-go/marin/backends/eval"
	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/host/validate"
	"github.com/marin-go/marin/plugins/storage"
)

// resultRow is one (task, metric) of the results table.
type resultRow struct {
	Task           string                 `json:"task"`
	Metric         string                 `json:"metric"`
	Filter         string                 `json:"filter"`
	HigherIsBetter *bool                  `json:"higher_is_better,omitempty"`
	Values         map[string]resultValue `json:"values"`
}

type resultValue struct {
	Value  float64  `json:"value"`
	Stderr *float64 `json:"stderr,omitempty"`
	Step   string   `json:"step"`
}

type resultsTable struct {
	Models  []string    `json:"models"`
	Results []resultRow `json:"results"`
	// Missing lists eval steps without results yet (not run or failed).
	Missing []string `json:"missing,omitempty"`
}

func newResultsCmd(stdout, stderr io.Writer) *cobra.Command {
	var prefix, logFormat, logLevel string
	var asJSON, all bool
	cmd := &cobra.Command{
		Use:   "results SCRIPT.star",
		Short: "Table every evaluation step's metrics, models side by side",
		Long: `Read the results.json of every evaluation step (evaluate, default_sft_eval)
of a script and print each task's metrics with one column per model, so a
before/after comparison is one command. Values are followed by their standard
error; steps that have not run show "-".

  marin results experiments/quickstart.star
  marin results exp.star --json     one JSON object: models, rows, missing steps
  marin results exp.star --all      subtasks and subgroups too (mmlu's subjects)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, _, err := newLogger(logFormat, logLevel, stderr)
			if err != nil {
				return err
			}
			m, err := newManager(log)
			if err != nil {
				return withCode(exitNoPlugin, err)
			}
			// The plan as a run makes it (pins included), so the paths are
			// the ones the steps wrote.
			_, plan, _, err := loadPlan(cmd.Context(), args[0], prefix, m, validate.Options{LogLevel: logLevel})
			if err != nil {
				return err
			}
			tbl, err := collectResults(cmd, plan, all)
			if err != nil {
				return withCode(exitFailed, err)
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				return enc.Encode(tbl)
			}
			if len(tbl.Results) > 0 {
				printResults(stdout, tbl)
			}
			for _, m := range tbl.Missing {
				fmt.Fprintf(stderr, "no results yet: %s\n", m)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "where outputs live (default $MARIN_PREFIX, else ./marin-output)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&all, "all", false, "include every subtask and subgroup")
	bindLogFlags(cmd, &logFormat, &logLevel)
	return cmd
}

func collectResults(cmd *cobra.Command, plan *graph.Plan, all bool) (*resultsTable, error) {
	tbl := &resultsTable{}
	rows := map[string]*resultRow{}
	var order []string
	seenModel := map[string]bool{}
	evalSteps := 0
	for _, n := range plan.Steps {
		if n.Step.Op != eval.OpName {
			continue
		}
		evalSteps++
		model, _ := n.Config["model_name"].(string)
		if model == "" {
			model = fmt.Sprint(n.Config["model"])
		}
		if !seenModel[model] {
			seenModel[model] = true
			tbl.Models = append(tbl.Models, model)
		}
		res, err := eval.ReadResults(cmd.Context(), n.OutputPath)
		if err != nil {
			if errors.Is(err, storage.ErrNotExist) {
				tbl.Missing = append(tbl.Missing, n.RelPath)
				continue
			}
			return nil, fmt.Errorf("%s: %w", n.RelPath, err)
		}
		suite, _ := n.Config["suite"].(map[string]any)
		root, _ := suite["name"].(string)
		names := []string{root}
		if all {
			names = entryOrder(res, root)
		}
		for _, task := range names {
			tm, ok := res.Results[task]
			if !ok {
				continue
			}
			for _, k := range eval.MetricKeys(tm) {
				v, ok := tm[k].(float64)
				if !ok {
					continue
				}
				metric, filter, _ := strings.Cut(k, ",")
				key := task + "\x00" + k
				r := rows[key]
				if r == nil {
					r = &resultRow{Task: task, Metric: metric, Filter: filter, Values: map[string]resultValue{}}
					base := strings.TrimSuffix(metric, "_macro")
					if h, ok := res.HigherIsBetter[task][base].(bool); ok {
						r.HigherIsBetter = &h
					}
					rows[key] = r
					order = append(order, key)
				}
				rv := resultValue{Value: v, Step: n.RelPath}
				if se, ok := tm[metric+"_stderr,"+filter].(float64); ok {
					rv.Stderr = &se
				}
				r.Values[model] = rv
			}
		}
	}
	if evalSteps == 0 {
		return nil, fmt.Errorf("the script has no evaluation steps (evaluate or default_sft_eval)")
	}
	for _, k := range order {
		tbl.Results = append(tbl.Results, *rows[k])
	}
	return tbl, nil
}

// entryOrder is root, then its members depth first.
func entryOrder(res *eval.Results, root string) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(n string, depth int)
	walk = func(n string, depth int) {
		if seen[n] || depth > 16 {
			return
		}
		seen[n] = true
		out = append(out, n)
		subs := res.GroupSubtasks[n]
		for _, s := range subs {
			walk(s, depth+1)
		}
	}
	walk(root, 0)
	// Entries not reachable from the root (older layouts) follow, sorted.
	var rest []string
	for n := range res.Results {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func printResults(w io.Writer, tbl *resultsTable) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "TASK\tMETRIC")
	for _, m := range tbl.Models {
		fmt.Fprintf(tw, "\t%s", m)
	}
	fmt.Fprintln(tw)
	for _, r := range tbl.Results {
		metric := r.Metric
		if r.Filter != "none" {
			metric += " (" + r.Filter + ")"
		}
		if r.HigherIsBetter != nil {
			if *r.HigherIsBetter {
				metric += " ↑"
			} else {
				metric += " ↓"
			}
		}
		fmt.Fprintf(tw, "%s\t%s", r.Task, metric)
		for _, m := range tbl.Models {
			v, ok := r.Values[m]
			if !ok {
				fmt.Fprint(tw, "\t-")
				continue
			}
			fmt.Fprintf(tw, "\t%s", formatMetric(v))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func formatMetric(v resultValue) string {
	f := func(x float64) string {
		switch {
		case math.IsInf(x, 0) || math.IsNaN(x):
			return fmt.Sprint(x)
		case math.Abs(x) >= 1e5:
			return fmt.Sprintf("%.4g", x)
		}
		return fmt.Sprintf("%.4f", x)
	}
	s := f(v.Value)
	if v.Stderr != nil {
		s += " ± " + f(*v.Stderr)
	}
	return s
}
