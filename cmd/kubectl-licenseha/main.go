// Command kubectl-licenseha is the licenseha kubectl plugin and admin CLI.
// Installed on the PATH it runs as "kubectl licenseha ...".
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	if err := newRootCmd(streams).Execute(); err != nil {
		os.Exit(1)
	}
}
