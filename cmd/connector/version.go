package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at link time: go build -ldflags "-X main.version=v1.2.3".
// Empty means the module version from the build info, or "devel".
var version = ""

func versionCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	writeVersion(stdout)
	return exitOK
}

// currentVersion is the version of this binary.
func currentVersion() string {
	info, _ := debug.ReadBuildInfo()
	return versionString(info)
}

func writeVersion(w io.Writer) {
	info, _ := debug.ReadBuildInfo()
	fmt.Fprintf(w, "connector %s\n", versionString(info))
	fmt.Fprintf(w, "go        %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	settings := buildSettings(info)
	for _, s := range []struct{ label, key string }{
		{"revision", "vcs.revision"},
		{"time", "vcs.time"},
		{"modified", "vcs.modified"},
	} {
		value := settings[s.key]
		if value == "" {
			value = "unknown"
		}
		fmt.Fprintf(w, "%-9s %s\n", s.label, value)
	}
}

func versionString(info *debug.BuildInfo) string {
	switch {
	case version != "":
		return version
	case info != nil && info.Main.Version != "" && info.Main.Version != "(devel)":
		return info.Main.Version
	}
	return "devel"
}

func buildSettings(info *debug.BuildInfo) map[string]string {
	settings := make(map[string]string)
	if info != nil {
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
	}
	return settings
}
