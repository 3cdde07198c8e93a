package plan_test

import (
	"go/build"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/nixplan/nixplan"

// importsOf returns, per non-test Go file of the package in dir, the
// project packages it imports.
func importsOf(t *testing.T, dir string) map[string][]string {
	t.Helper()
	pkg, err := build.ImportDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	fset := token.NewFileSet()
	for _, name := range pkg.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == module || strings.HasPrefix(path, module+"/") {
				out[name] = append(out[name], strings.TrimPrefix(strings.TrimPrefix(path, module), "/"))
			}
		}
	}
	return out
}

// TestPackageRooms holds the rules the package comments state: the machine
// description imports nothing from the project; simulate imports only plan
// and plan/machine; plan never imports simulate, and only its checks
// against a machine (facts.go) import plan/machine.
func TestPackageRooms(t *testing.T) {
	for file, imps := range importsOf(t, "machine") {
		t.Errorf("plan/machine/%s imports %v: the machine package imports nothing from the project", file, imps)
	}
	for file, imps := range importsOf(t, "simulate") {
		for _, imp := range imps {
			if imp != "plan" && imp != "plan/machine" {
				t.Errorf("plan/simulate/%s imports %s: simulate depends on plan's public API and plan/machine only", file, imp)
			}
		}
	}
	for file, imps := range importsOf(t, ".") {
		if slices.Contains(imps, "plan/simulate") {
			t.Errorf("plan/%s imports plan/simulate: the pipeline never depends on simulate", file)
		}
		if slices.Contains(imps, "plan/machine") && file != "facts.go" {
			t.Errorf("plan/%s imports plan/machine: only the checks against a machine (facts.go) read machine descriptions", file)
		}
	}
}
