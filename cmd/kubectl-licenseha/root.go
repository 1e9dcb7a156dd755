package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/licenseha/licenseha/internal/version"
)

// Options are shared by every subcommand: the standard kubectl flags
// (--kubeconfig, --context, --namespace, ...) and the I/O streams.
type Options struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams
}

// subcommands build the top-level commands. Add a constructor here to add a
// command (status, switchover, replace-member, backup export|import, ...).
var subcommands = []func(*Options) *cobra.Command{
	newLicenseCmd,
	newLicensesCmd,
	newClientCmd,
	newStatusCmd,
	newSwitchoverCmd,
	newStopCmd,
	newResumeCmd,
	newReplaceMemberCmd,
	newBackupCmd,
	newSettingsCmd,
	newUsageCmd,
	newLogsCmd,
	newReportCmd,
	newVersionCmd,
	newNotifyCmd,
}

func newRootCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{ConfigFlags: genericclioptions.NewConfigFlags(true), IOStreams: streams}
	root := &cobra.Command{
		Use:           "kubectl-licenseha",
		Short:         "Manage licenseha license server groups, licences and clients",
		SilenceUsage:  true,
		SilenceErrors: false,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl licenseha"},
		// --version prints this; `version` adds the operator's.
		Version: version.Get().String(),
	}
	// Declared here rather than by cobra, which would take -v for it.
	root.Flags().Bool("version", false, "print the plugin's version and revision and exit")
	root.SetVersionTemplate("kubectl-licenseha {{.Version}}\n")
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.ConfigFlags.AddFlags(root.PersistentFlags())
	for _, sub := range subcommands {
		root.AddCommand(sub(o))
	}
	return root
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(data))
	return err
}

// printAs writes v as JSON (format "json") or YAML.
func printAs(w io.Writer, format string, v any) error {
	if format == "json" {
		return printJSON(w, v)
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}
