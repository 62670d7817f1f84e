package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/broadworks-connector/connector/config"
)

// Exit codes (CONTRACT.md).
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure
	exitUsage   = 2 // bad usage or bad configuration
)

// exampleConfig is what `run` uses without --config, if it is in the
// current directory.
const exampleConfig = "config.example.yaml"

const usageText = `Usage: connector <command> [flags]

Commands:
  run [--config FILE]           run the connector (default config: ./config.example.yaml, if present)
  check-config --config FILE    validate FILE and print the effective configuration, secrets masked
  xspsim --config FILE          run the BroadWorks XSP simulator alone on simulator.listen
  csta [flags] ACTION ...       CTI client: login/logout/ready/notready/acw AGENT DEVICE, state DEVICE,
                                forward DEVICE ..., dnd DEVICE on|off, watch DEVICE... (csta --help)
  version                       print version and build information
  help                          print this help

Every configuration key can be overridden by an environment variable
CONNECTOR_<PATH>, e.g. csta.listen by CONNECTOR_CSTA_LISTEN.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration.
`

// run dispatches the command line (without the program name) and returns
// the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	command, args := args[0], args[1:]
	switch command {
	case "run":
		return runCommand(args, stderr)
	case "check-config":
		return checkConfigCommand(args, stdout, stderr)
	case "xspsim":
		return xspsimCommand(args, stderr)
	case "csta":
		return cstaCommand(args, stdout, stderr)
	case "version":
		return versionCommand(args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	fmt.Fprintf(stderr, "connector: unknown command %q\n\n%s", command, usageText)
	return exitUsage
}

// parseFlags parses a command's flags; it returns an exit code and false
// when the command must not go on (-h, a bad flag, stray arguments).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false // flag already printed the error and usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "connector %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: connector %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// printConfigError writes every configuration problem on its own line.
func printConfigError(w io.Writer, err error) {
	var problems *config.Errors
	if !errors.As(err, &problems) {
		fmt.Fprintln(w, err)
		return
	}
	for _, p := range problems.Problems {
		fmt.Fprintf(w, "config: %s\n", p)
	}
}

// loadRequiredConfig parses the flags of a command whose --config is
// required and loads that file. When ok is false, the command exits with code
// (usage or config problems have been printed).
func loadRequiredConfig(command string, args []string, stderr io.Writer) (cfg *config.Config, path string, code int, ok bool) {
	fs := newFlagSet(command, "--config FILE")
	flagPath := fs.String("config", "", "configuration `FILE` (YAML), required")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return nil, "", code, false
	}
	if *flagPath == "" {
		fmt.Fprintf(stderr, "connector %s: --config FILE is required\n", command)
		fs.Usage()
		return nil, "", exitUsage, false
	}
	cfg, err := config.Load(*flagPath)
	if err != nil {
		printConfigError(stderr, err)
		return nil, "", exitUsage, false
	}
	return cfg, *flagPath, exitOK, true
}

func checkConfigCommand(args []string, stdout, stderr io.Writer) int {
	cfg, path, code, ok := loadRequiredConfig("check-config", args, stderr)
	if !ok {
		return code
	}
	out, err := cfg.Masked().YAML()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "# effective configuration of %s, environment applied, secrets masked\n", path)
	stdout.Write(out)
	return exitOK
}

// runConfigPath is --config, or config.example.yaml when that exists in the
// current directory.
func runConfigPath(flagValue string, stderr io.Writer) (string, bool) {
	if flagValue != "" {
		return flagValue, true
	}
	if _, err := os.Stat(exampleConfig); err == nil {
		return exampleConfig, true
	}
	fmt.Fprintf(stderr, "connector run: --config FILE is required (there is no %s in the current directory)\n", exampleConfig)
	return "", false
}
