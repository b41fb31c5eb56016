// Command marin runs LLM supervised fine-tuning experiments written as
// Starlark scripts:
//
//	marin experiments/exp606_sft.star            # run; cached steps are skipped
//	marin experiments/exp606_sft.star --dry-run  # show the plan and why each step runs
//
// It wires starlib (script evaluation), host (executor, plugin manager,
// logging) and the built-in plugins together; the work itself happens in
// plugins, each a child process.
//
// Exit codes:
//
//	0  success: every step succeeded or was already done (or the dry run printed)
//	1  one or more steps failed (or could not run because a dependency failed)
//	2  usage: unknown flag, missing argument
//	3  the script is wrong: a Starlark error or an invalid step graph
//	4  a step's op is served by no installed plugin; nothing ran
//	5  a step is still running elsewhere and --wait=false was given
//	130 interrupted
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/marin-go/marin/plugins/redact"
)

// Exit codes; see the package comment.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitScript      = 3
	exitNoPlugin    = 4
	exitElsewhere   = 5
	exitInterrupted = 130
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitError carries an exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// runMain executes the CLI and returns the exit code.
func runMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first SIGINT or SIGTERM cancels ctx (script evaluation and steps
	// stop, status is recorded, exit 130); a second one kills at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err.Error() != "" {
			fmt.Fprintln(stderr, "marin:", redact.String(ee.err.Error()))
		}
		return ee.code
	}
	// Errors cobra raised itself are flag and argument mistakes.
	fmt.Fprintln(stderr, "marin:", redact.String(err.Error()))
	fmt.Fprintln(stderr, "Run 'marin --help' for usage.")
	return exitUsage
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	opts := &runOptions{}
	root := &cobra.Command{
		Use:   "marin SCRIPT.star [flags]",
		Short: "Run LLM fine-tuning experiments written as Starlark scripts",
		Long: `marin evaluates an experiment script, turns it into a graph of steps with
content-addressed output paths, skips what is already done and runs the rest
through plugins.

  marin experiments/exp606_sft.star --dry-run     show the plan and why each step runs
  marin experiments/exp606_sft.star               run it
  marin explain experiments/exp606_sft.star sft   everything about one step

Exit codes: 0 success, 1 a step failed, 2 usage, 3 script or graph error,
4 an op no plugin serves, 5 a step running elsewhere (--wait=false), 130 interrupted.`,
		Args:          cobra.ExactArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScript(cmd.Context(), args[0], opts, stdout, stderr)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	opts.bind(root)
	root.AddCommand(
		newExplainCmd(stdout, stderr),
		newPluginsCmd(stdout, stderr),
		newPluginCmd(stdout, stderr),
		newDatasetsCmd(stdout),
		newVersionCmd(stdout),
		newTokenizerCmd(stdout, stderr),
		newGenerateCmd(stdout, stderr), newChatCmd(stdout, stderr),
		newRunStepCmd(stdout, stderr),
		newResultsCmd(stdout, stderr),
	)
	return root
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print marin's version and plugin protocol version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(stdout, "marin %s (plugin protocol %d)\n", version, pluginProtocolVersion())
			return nil
		},
	}
}
