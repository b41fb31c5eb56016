package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/marin-go/marin/host/pluginhost"
)

func newPluginsCmd(stdout, stderr io.Writer) *cobra.Command {
	var asJSON bool
	var logFormat, logLevel string
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List installed plugins: kind, ops, protocol version and path",
		Long: `List the plugins marin can use: the built-in ones inside this binary and
third-party executables found in the directories of $MARIN_PLUGIN_PATH and in
~/.marin/plugins. Each third-party plugin is started once to ask what it serves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, _, err := newLogger(logFormat, logLevel, stderr)
			if err != nil {
				return err
			}
			m, err := newManager(log)
			if err != nil {
				return withCode(exitNoPlugin, err)
			}
			infos := m.List()
			if asJSON {
				enc := json.NewEncoder(stdout)
				for _, p := range infos {
					if err := enc.Encode(p); err != nil {
						return err
					}
				}
				return nil
			}
			printPlugins(stdout, infos)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per plugin")
	bindLogFlags(cmd, &logFormat, &logLevel)
	return cmd
}

func printPlugins(w io.Writer, infos []pluginhost.PluginInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLUGIN\tKIND\tVERSION\tPROTOCOL\tOPS\tPATH")
	for _, p := range infos {
		if p.Err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\terror: %s\t%s\n", p.Name, strings.ReplaceAll(p.Err.Error(), "\n", " "), p.Path)
			continue
		}
		var ops []string
		for _, o := range p.Ops {
			ops = append(ops, o.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, p.Kind, p.Version, p.ProtocolVersion, strings.Join(ops, ", "), p.Path)
		for _, c := range p.Conflicts {
			fmt.Fprintf(tw, "\t\t\t\t  conflict: %s\t\n", c)
		}
	}
	tw.Flush()
}
