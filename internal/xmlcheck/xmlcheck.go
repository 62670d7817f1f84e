// Package xmlcheck is the one place tests find xmllint and BroadWorks' XSI
// schema and validate documents with them. The rule is the same everywhere:
// a missing tool or schema fails the test when CI=true (CI installs
// libxml2-utils and has ../shared beside the checkout) and skips it with a
// clear message elsewhere.
package xmlcheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// missing fails on CI and skips elsewhere.
func missing(t testing.TB, what string) {
	t.Helper()
	msg := fmt.Sprintf("xmlcheck: %s; install libxml2-utils and keep ../shared beside the checkout", what)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// RepoRoot is the folder holding go.mod, found by walking up from the
// test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("xmlcheck: no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Xmllint is the path of xmllint.
func Xmllint(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("xmllint")
	if err != nil {
		missing(t, "xmllint not found")
	}
	return p
}

// XSISchema is BroadWorks' XSISchema.xsd in ../shared/xsd/xsi.
func XSISchema(t testing.TB) string {
	t.Helper()
	xsd := filepath.Join(RepoRoot(t), "..", "shared", "xsd", "xsi", "XSISchema.xsd")
	if _, err := os.Stat(xsd); err != nil {
		missing(t, fmt.Sprintf("XSI schema %s not found", xsd))
	}
	return xsd
}

// WellFormed checks documents with `xmllint --noout`, in one run.
func WellFormed(t testing.TB, docs map[string][]byte) {
	t.Helper()
	run(t, nil, docs)
}

// ValidXSI validates documents against XSISchema.xsd, in one xmllint run.
func ValidXSI(t testing.TB, docs map[string][]byte) {
	t.Helper()
	run(t, []string{"--schema", XSISchema(t)}, docs)
}

// WellFormedFiles checks files that already exist.
func WellFormedFiles(t testing.TB, files ...string) {
	t.Helper()
	lint(t, nil, files)
}

// ValidXSIFiles validates files that already exist against XSISchema.xsd.
func ValidXSIFiles(t testing.TB, files ...string) {
	t.Helper()
	lint(t, []string{"--schema", XSISchema(t)}, files)
}

func run(t testing.TB, args []string, docs map[string][]byte) {
	t.Helper()
	if len(docs) == 0 {
		return
	}
	dir := t.TempDir()
	files := make([]string, 0, len(docs))
	for name, doc := range docs {
		f := filepath.Join(dir, safeName(name))
		if err := os.WriteFile(f, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	lint(t, args, files)
}

func lint(t testing.TB, args []string, files []string) {
	t.Helper()
	if len(files) == 0 {
		return
	}
	sort.Strings(files)
	cmdArgs := append(append([]string{"--noout"}, args...), files...)
	out, err := exec.Command(Xmllint(t), cmdArgs...).CombinedOutput()
	// With --schema, xmllint prints "<file> validates" for each good file.
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.HasSuffix(line, " validates") {
			problems = append(problems, line)
		}
	}
	if err != nil || len(problems) > 0 {
		t.Errorf("xmllint %s: %v\n%s", strings.Join(args, " "), err, strings.Join(problems, "\n"))
		showFailing(t, files, problems)
	}
}

// showFailing logs the documents xmllint complained about, since they may
// live only in a temporary folder.
func showFailing(t testing.TB, files, problems []string) {
	t.Helper()
	for _, f := range files {
		for _, p := range problems {
			if strings.HasPrefix(p, f+":") || strings.HasPrefix(p, f+" ") {
				if b, err := os.ReadFile(f); err == nil {
					if len(b) > 4096 {
						b = append(b[:4096], "…"...)
					}
					t.Logf("%s:\n%s", filepath.Base(f), b)
				}
				break
			}
		}
	}
}

// safeName turns a document name into a file name in the temp folder.
func safeName(name string) string {
	name = strings.Map(func(r rune) rune {
		switch r {
		case '/', '\\', ' ', ':':
			return '_'
		}
		return r
	}, name)
	if !strings.HasSuffix(name, ".xml") {
		name += ".xml"
	}
	return name
}
