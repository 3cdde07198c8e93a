package plan_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/simulate"
)

// The benchmarks measure one host through the pipeline, stage by stage and
// whole; they assert nothing about time. Run them with
//
//	go test ./plan -run '^$' -bench . -benchmem
//
// cmd/nixplan's benchmarks measure a fleet of 1,000 specs.

const benchSpecFile = "../examples/ovh-kimsufi.toml"

// renderHost loads, validates and renders the benchmarks' spec.
func renderHost(b *testing.B) (*plan.Spec, *plan.Plan, *plan.Bundle) {
	b.Helper()
	spec, err := plan.Load(benchSpecFile)
	if err != nil {
		b.Fatal(err)
	}
	p, ps := plan.Validate(spec)
	if p == nil {
		b.Fatal(ps)
	}
	bundle, err := plan.Render(p)
	if err != nil {
		b.Fatal(err)
	}
	return spec, p, bundle
}

func BenchmarkHost(b *testing.B) {
	spec, p, bundle := renderHost(b)
	dir := filepath.Join(b.TempDir(), "bundle")
	if err := plan.Write(bundle, dir); err != nil {
		b.Fatal(err)
	}

	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			if _, err := plan.Load(benchSpecFile); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("validate", func(b *testing.B) {
		for b.Loop() {
			if p, ps := plan.Validate(spec); p == nil {
				b.Fatal(ps)
			}
		}
	})
	// Render includes Check; check alone is the bash parsing and invariants.
	// Both forget the script bodies that parsed, as in a process that renders
	// one host: render-fleet below is a host among others.
	b.Run("render", func(b *testing.B) {
		for b.Loop() {
			plan.ForgetParsedBodies()
			if _, err := plan.Render(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			plan.ForgetParsedBodies()
			if err := plan.Check(bundle); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Hosts of a fleet alternate, so every host's scripts are parsed; only
	// facts.sh, the same for every host, is not.
	other := *p
	other.Host.Name = "web2"
	b.Run("render-fleet", func(b *testing.B) {
		plan.ForgetParsedBodies()
		i := 0
		for b.Loop() {
			q := p
			if i++; i%2 == 0 {
				q = &other
			}
			if _, err := plan.Render(q); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What nixplan diff does per host once rendered: read and compare.
	b.Run("compare", func(b *testing.B) {
		for b.Loop() {
			if d, err := plan.CompareBundle(bundle, dir, "bundle", "rendered"); err != nil || len(d) > 0 {
				b.Fatal(d, err)
			}
		}
	})
	// load, validate, render and check: what nixplan check or render costs
	// per host before writing.
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			plan.ForgetParsedBodies()
			renderHost(b)
		}
	})
}

// BenchmarkHostSimulate is one host through everything the operator runs
// before copying a bundle: load, validate, render and check, then simulate
// both scripts against the healthy machine the spec describes.
func BenchmarkHostSimulate(b *testing.B) {
	_, p, bundle := renderHost(b)
	// simulate alone runs the trees Render's check kept, as after a render;
	// all parses them again each time, as a process does once.
	b.Run("simulate", func(b *testing.B) {
		for b.Loop() {
			if _, err := simulate.Run(p, bundle, simulate.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			plan.ForgetParsedBodies()
			_, p, bundle := renderHost(b)
			if _, err := simulate.Run(p, bundle, simulate.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUnifiedDiff measures the diffs diff meets: one line changed in
// kexec-install.sh, two unrelated scripts of the bundle, and a committed
// kexec-install.sh replaced by 1,000 to 30,000 lines of other text (the
// hand-written Myers diff this replaced took 1.6 s and 970 MB for 10,000;
// the commit before the change measures both).
func BenchmarkUnifiedDiff(b *testing.B) {
	bundle := diffTestBundle(b)
	script := bundle.File(plan.KexecInstallFile).Data
	lines := bytes.SplitAfter(script, []byte("\n"))
	edited := bytes.Join(append(append(append([][]byte{}, lines[:len(lines)/2]...), []byte("# edited\n")), lines[len(lines)/2+1:]...), nil)
	cases := []struct {
		name     string
		old, new []byte
	}{
		{"one_line_changed", script, edited},
		{"unrelated_scripts", bundle.File(plan.RescueBootstrapFile).Data, script},
	}
	for _, n := range []int{1000, 3000, 10000, 30000} {
		cases = append(cases, struct {
			name     string
			old, new []byte
		}{fmt.Sprintf("replaced_by_%d_lines", n), otherLines(n), script})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if plan.UnifiedDiff("a", c.old, "b", c.new) == nil {
					b.Fatal("no diff")
				}
			}
		})
	}
}

// otherLines is a text of n lines, none of which a bundle holds.
func otherLines(n int) []byte {
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, "line %d of a file that replaced the committed one\n", i)
	}
	return buf.Bytes()
}
