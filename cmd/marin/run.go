package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/host/logging"
	"github.com/marin-go/marin/host/pluginhost"
	"github.com/marin-go/marin/host/runner"
	"github.com/marin-go/marin/host/validate"
	"github.com/marin-go/marin/plugins/storage"
	"github.com/marin-go/marin/starlib"
)

// runOptions are the flags of `marin SCRIPT.star`.
type runOptions struct {
	prefix         string
	dryRun         bool
	json           bool
	runOnly        []string
	forceRunFailed bool
	maxConcurrent  int
	backend        string
	logFormat      string
	logLevel       string
	runner         runnerOptions
}

func (o *runOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.prefix, "prefix", "", "where outputs live: a directory or storage URL (default $MARIN_PREFIX, else ./marin-output)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print each step's decision (skip, run, running-elsewhere, blocked), path and reason; run nothing")
	f.BoolVar(&o.json, "json", false, "with --dry-run: one JSON object per step")
	f.StringArrayVar(&o.runOnly, "run-only", nil, "run only steps whose name or path matches REGEX, plus what they need (repeatable)")
	f.BoolVar(&o.forceRunFailed, "force-run-failed", true, "rerun steps whose last attempt failed (false: they and their dependents are blocked)")
	f.IntVar(&o.maxConcurrent, "max-concurrent", executor.DefaultMaxConcurrent, "steps run at once by this process")
	f.StringVar(&o.backend, "backend", "", "compute backend for training steps, overriding the script's resources: a plugin of kind backend, as marin plugins lists them (never changes output paths)")
	bindLogFlags(cmd, &o.logFormat, &o.logLevel)
	o.runner.bind(cmd)
}

func bindLogFlags(cmd *cobra.Command, format, level *string) {
	cmd.Flags().StringVar(format, "log-format", logging.FormatConsole, "log output: console or json")
	cmd.Flags().StringVar(level, "log-level", "info", "trace, debug, info, warn or error")
}

// defaultPrefix is --prefix, else $MARIN_PREFIX, else ./marin-output.
func defaultPrefix(flag string) (string, error) {
	p := flag
	if p == "" {
		p = os.Getenv("MARIN_PREFIX")
	}
	if p == "" {
		p = "marin-output"
	}
	// A bucket URL's query (endpoint, region, …) configures its bucket for
	// this process and the plugins it starts; paths and hashes use the URL
	// without it.
	p, err := storage.UseOptions(p)
	if err != nil {
		return "", withCode(exitUsage, fmt.Errorf("--prefix: %w", err))
	}
	u, err := storage.NormalizeURL(p)
	if err != nil {
		return "", withCode(exitUsage, fmt.Errorf("--prefix %q: %w", p, err))
	}
	return u, nil
}

// loadPlan evaluates the script, plans its steps under the prefix and checks
// them against what the plugins declare (validate.Check): each step's config
// against its op's schema, and the ops' own plan checks, whose pins (a
// tokenizer's digest, a hub revision) are added to the configs before the
// final hashes. Every problem is reported at once, with its script position;
// exit 3 (4 when the only problem is ops no plugin serves). A signal (ctx
// cancelled) stops the evaluation with exit 130; a script over its limits
// ($MARIN_SCRIPT_MAX_STEPS, $MARIN_SCRIPT_MAX_MEMORY) is a script error.
func loadPlan(ctx context.Context, script, prefixFlag string, cat validate.Catalog, vo validate.Options) (*starlib.Result, *graph.Plan, *validate.Result, error) {
	prefix, err := defaultPrefix(prefixFlag)
	if err != nil {
		return nil, nil, nil, err
	}
	lim, err := starlib.LimitsFromEnv()
	if err != nil {
		return nil, nil, nil, withCode(exitUsage, err)
	}
	res, err := starlib.ExecFileContext(ctx, script, nil, lim)
	if err != nil && ctx.Err() != nil {
		return nil, nil, nil, withCode(exitInterrupted, fmt.Errorf("evaluating %s: %w", script, err))
	}
	if err != nil {
		var se *starlib.Error
		if errors.As(err, &se) && se.Backtrace != se.Msg {
			return nil, nil, nil, withCode(exitScript, fmt.Errorf("%s\n%s", se.Msg, se.Backtrace))
		}
		return nil, nil, nil, withCode(exitScript, err)
	}
	plan, err := graph.Build(prefix, res.Roots)
	if err != nil {
		return nil, nil, nil, withCode(exitScript, fmt.Errorf("plan %s: %w", script, err))
	}
	if vo.DefaultBackend == "" {
		vo.DefaultBackend = defaultBackend
	}
	checked := validate.Check(ctx, plan, cat, vo)
	if err := checked.Err(); err != nil {
		var ve *validate.Error
		if errors.As(err, &ve) && ve.OnlyUnserved() {
			return nil, nil, nil, withCode(exitNoPlugin, fmt.Errorf("%s: nothing ran: %w", script, err))
		}
		return nil, nil, nil, withCode(exitScript, fmt.Errorf("%s: %w", script, err))
	}
	if validate.ApplyPins(checked.Pins) {
		if plan, err = graph.Build(prefix, res.Roots); err != nil {
			return nil, nil, nil, withCode(exitScript, fmt.Errorf("plan %s: %w", script, err))
		}
	}
	return res, plan, checked, nil
}

// defaultBackend serves bare op names ("train" is the cpu backend's).
const defaultBackend = "cpu"

func compileRunOnly(exprs []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("--run-only %q: %w", e, err))
		}
		out = append(out, re)
	}
	return out, nil
}

func newLogger(format, level string, stderr io.Writer) (zerolog.Logger, *logging.Display, error) {
	log, d, err := logging.New(logging.Options{Format: format, Level: level, Out: stderr})
	if err != nil {
		return log, nil, withCode(exitUsage, err)
	}
	// Plugins inherit the host's level.
	os.Setenv("MARIN_LOG_LEVEL", level)
	storage.SetDefaultLogger(storageLogger(log))
	return log, d, nil
}

// storageLogger logs what plugins/storage reports (retried requests,
// transfer progress) through the host's logger.
func storageLogger(log zerolog.Logger) storage.Logger {
	return func(level, msg string, kv ...string) {
		lv, err := zerolog.ParseLevel(level)
		if err != nil {
			lv = zerolog.InfoLevel
		}
		ev := log.WithLevel(lv).Str("component", "storage")
		for i := 0; i+1 < len(kv); i += 2 {
			ev = ev.Str(kv[i], kv[i+1])
		}
		ev.Msg(msg)
	}
}

func newManager(log zerolog.Logger) (*pluginhost.Manager, error) {
	m, err := pluginhost.New(pluginhost.Config{Builtins: builtinPlugins(), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	return m, nil
}

func runScript(ctx context.Context, script string, o *runOptions, stdout, stderr io.Writer) error {
	if o.json && !o.dryRun {
		return withCode(exitUsage, errors.New("--json goes with --dry-run"))
	}
	log, display, err := newLogger(o.logFormat, o.logLevel, stderr)
	if err != nil {
		return err
	}
	runOnly, err := compileRunOnly(o.runOnly)
	if err != nil {
		return err
	}
	overrides, err := o.runner.overrides()
	if err != nil {
		return err
	}
	prefix, err := defaultPrefix(o.prefix)
	if err != nil {
		return err
	}
	remote, err := o.runner.remote(prefix)
	if err != nil {
		return err
	}
	m, err := newManager(log)
	if err != nil {
		return withCode(exitNoPlugin, err)
	}
	if o.backend != "" {
		if bs := m.Backends(); !slices.Contains(bs, o.backend) {
			return withCode(exitUsage, fmt.Errorf("--backend %q: not a backend plugin; backends: %s", o.backend, strings.Join(bs, ", ")))
		}
	}
	res, plan, checked, err := loadPlan(ctx, script, o.prefix, m, validate.Options{Backend: o.backend, LogLevel: o.logLevel})
	if err != nil {
		return err
	}
	opts := executor.Options{
		Remote:         remote,
		SharedPrefix:   o.runner.shared,
		Resources:      overrides,
		Poll:           o.runner.poll,
		Prefix:         plan.Prefix,
		DryRun:         o.dryRun,
		RunOnly:        runOnly,
		ForceRunFailed: executor.Bool(o.forceRunFailed),
		MaxConcurrent:  o.maxConcurrent,
		Backend:        o.backend,
		DefaultBackend: defaultBackend,
		Logger:         log,
		ScriptName:     res.Script,
		MarinVersion:   version,
	}
	if remote != nil {
		if err := runner.CheckPrefix(remote.Name(), plan.Prefix, o.runner.shared); err != nil {
			return withCode(exitUsage, err)
		}
	}
	var placement *executor.PlacementError
	if o.dryRun {
		decisions, err := executor.Plan(ctx, plan, opts)
		if errors.As(err, &placement) {
			return withCode(exitScript, err)
		}
		if err != nil {
			return withCode(exitFailed, err)
		}
		if o.json {
			return printDecisionsJSON(stdout, decisions, checked)
		}
		printDecisions(stdout, script, plan.Prefix, decisions, checked)
		return nil
	}

	opts.Runner = m
	ops := map[string]string{}
	for _, s := range plan.Steps {
		ops[s.Step.Name] = s.Step.Op
	}
	opts.Progress = &progressSink{d: display, ops: ops}
	stop := make(chan struct{})
	display.Start(500*time.Millisecond, stop)
	start := time.Now()
	report, err := executor.Run(ctx, plan, opts)
	close(stop)
	if report != nil {
		printSummary(stdout, report, time.Since(start))
	}
	var unserved *executor.UnservedOpsError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unserved):
		return withCode(exitNoPlugin, fmt.Errorf("nothing ran: %w", err))
	case errors.As(err, &placement):
		return withCode(exitScript, fmt.Errorf("nothing ran: %w", err))
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return withCode(exitInterrupted, err)
	default:
		return withCode(exitFailed, err)
	}
}

// progressSink feeds executor events to the live display.
type progressSink struct {
	d   *logging.Display
	ops map[string]string
}

func (p *progressSink) StepStarted(name string) { p.d.StepStarted(name, p.ops[name]) }
func (p *progressSink) StepEvent(name string, ev executor.Event) {
	if ev.Kind == executor.EventProgress {
		p.d.StepProgress(name, ev.Done, ev.Total, ev.Unit, ev.Message)
	}
	// Log events are already logged by the plugin manager.
}
func (p *progressSink) StepFinished(name string, _ executor.Status) { p.d.StepFinished(name) }

func printDecisionsJSON(w io.Writer, ds []executor.Decision, checked *validate.Result) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, d := range ds {
		v := struct {
			executor.Decision
			Notes []string `json:"notes,omitempty"`
		}{d, checked.Notes[d.Name]}
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}

func printDecisions(w io.Writer, script, prefix string, ds []executor.Decision, checked *validate.Result) {
	counts := map[executor.DecisionKind]int{}
	where := ""
	for _, d := range ds {
		counts[d.Decision]++
		if d.Runner != "" {
			where = "; runner " + d.Runner
		}
	}
	fmt.Fprintf(w, "%s: %d step(s) under %s — %d to run, %d done, %d running elsewhere, %d blocked%s\n\n",
		script, len(ds), prefix, counts[executor.DecisionRun], counts[executor.DecisionSkip],
		counts[executor.DecisionRunningElsewhere], counts[executor.DecisionBlocked], where)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DECISION\tSTEP\tOP\tREASON")
	for _, d := range ds {
		op := d.Op
		if routed := checked.Ops[d.Name]; routed != "" {
			op = routed
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Decision, d.RelPath, op, d.Reason)
		for _, n := range checked.Notes[d.Name] {
			// Not tab-terminated: a long note does not widen the STEP column.
			fmt.Fprintf(tw, "\t  %s\n", n)
		}
		if d.Runner != "" && d.Runner != runner.Local {
			fmt.Fprintf(tw, "\t  runs on %s: %s\t\t\n", d.Runner, d.Resources)
		}
		if len(d.Diff) > 0 {
			fmt.Fprintf(tw, "\t  changed since %s:\t\t\n", d.Previous)
			for _, c := range d.Diff {
				fmt.Fprintf(tw, "\t    %s\t\t\n", c.String())
			}
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\noutputs: %s/<step>\n", strings.TrimRight(prefix, "/"))
}

func printSummary(w io.Writer, r *executor.Report, took time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tSTEP\tTIME\tMESSAGE")
	for _, s := range r.Steps {
		d := ""
		if s.Ran {
			d = s.Duration.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Status, s.OutputPath, d, firstLine(s.Message))
	}
	tw.Flush()
	if r.Experiment != "" {
		fmt.Fprintf(w, "experiment record: %s (%s)\n", r.Experiment, took.Round(time.Millisecond))
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
