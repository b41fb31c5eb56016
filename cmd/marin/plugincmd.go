package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/marin-go/marin/backends/cpu"
	"github.com/marin-go/marin/backends/gomlx"
	"github.com/marin-go/marin/plugins/datasets"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/shell"
	"github.com/marin-go/marin/plugins/tasks"
	"github.com/marin-go/marin/starlib"
)

// builtinPlugins are compiled into the marin binary and started as its
// child processes (`marin plugin serve NAME`).
func builtinPlugins() []*sdk.Plugin {
	return []*sdk.Plugin{shell.Plugin(), datasets.Plugin(), tasks.Plugin(), cpu.Plugin(), gomlx.Plugin()}
}

func pluginProtocolVersion() int { return sdk.ProtocolVersion }

func newPluginCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Plugin plumbing (the host uses it to start built-in plugins)",
		Args:  cobra.NoArgs,
	}
	names := []string{}
	for _, p := range builtinPlugins() {
		names = append(names, p.Name)
	}
	serve := &cobra.Command{
		Use:   "serve NAME",
		Short: "Serve a built-in plugin over go-plugin's gRPC protocol (started by the marin host)",
		Long: "Serve a built-in plugin. The marin host starts this as a child process; run by hand\n" +
			"it only explains that it must be started by marin. Built-in plugins: " + strings.Join(names, ", ") + ".",
		Args:      cobra.ExactArgs(1),
		ValidArgs: names,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sdk.ServeNamed(args[0], builtinPlugins()...); err != nil {
				return withCode(exitUsage, err)
			}
			return nil
		},
	}
	cmd.AddCommand(serve)
	return cmd
}

func newDatasetsCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "datasets",
		Short: "List the instruction datasets get_instruction_dataset knows, with pinned revisions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ds := starlib.Datasets()
			sort.Slice(ds, func(i, j int) bool { return strings.ToLower(ds[i].ID) < strings.ToLower(ds[j].ID) })
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DATASET\tREVISION\tFILES\tADAPTER\tDOCUMENTS")
			for _, d := range ds {
				docs := "?"
				if d.DocCount > 0 {
					docs = fmt.Sprint(d.DocCount)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.Revision, d.FileType, d.Adapter, docs)
			}
			return tw.Flush()
		},
	}
}
