package simulate_test

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// examples lists the example specs, whose simulations are golden files.
func examples(t testing.TB) []string {
	t.Helper()
	specs, err := filepath.Glob("../../examples/*.toml")
	if err != nil || len(specs) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	return specs
}

func exampleName(spec string) string {
	return strings.TrimSuffix(filepath.Base(spec), ".toml")
}

// renderText parses, validates and renders spec text, failing the test on
// any problem.
func renderText(t testing.TB, name, text string) (*plan.Plan, *plan.Bundle) {
	t.Helper()
	spec, err := plan.Parse(name, []byte(text))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return validateAndRender(t, name, spec)
}

// renderFile loads, validates and renders a spec file, with the modules
// or flake it names.
func renderFile(t testing.TB, file string) (*plan.Plan, *plan.Bundle) {
	t.Helper()
	spec, err := plan.Load(file)
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return validateAndRender(t, file, spec)
}

func validateAndRender(t testing.TB, name string, spec *plan.Spec) (*plan.Plan, *plan.Bundle) {
	t.Helper()
	p, ps := plan.Validate(spec)
	if p == nil {
		t.Fatalf("validate %s:\n%v", name, ps)
	}
	b, err := plan.Render(p)
	if err != nil {
		t.Fatalf("render %s: %v", name, err)
	}
	return p, b
}
