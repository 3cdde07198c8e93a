package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nixplan/nixplan/plan/simulate"
)

// simulate runs the bundle's scripts against a machine description in
// mvdan.cc/sh's interpreter and prints every command they would run.
func (c *cli) simulate(args []string) int {
	fs := c.flags("simulate", "nixplan simulate SPEC [--machine FILE] [--format text|json]")
	machine := fs.String("machine", "", "a machine description (facts.sh's output) to run against; default: the healthy machine the spec describes")
	format := fs.String("format", "text", "text, a transcript to review, or json, the plan for other tools")
	if code, done := c.parse(fs, args); done {
		return code
	}
	switch {
	case fs.NArg() == 0:
		return c.usageError("simulate: no spec given")
	case fs.NArg() > 1:
		return c.usageError("simulate: one spec at a time, not %d", fs.NArg())
	case *format != "text" && *format != "json":
		return c.usageError("simulate: --format is text or json, not %q", *format)
	}
	rs, ok := c.renderAll(fs.Args(), nil)
	if !ok {
		return exitProblem
	}
	s, b := rs[0], rs[0].bundle
	opts := simulate.Options{}
	if *machine != "" {
		m, ok := c.loadMachine(*machine)
		if !ok {
			return exitProblem
		}
		opts.Machine = m
	}
	sim, err := simulate.Run(s.plan, b, opts)
	if err != nil {
		c.errorf("%s: %v", s.file, err)
		var se *simulate.Error
		if errors.As(err, &se) {
			c.hintf("the templates and nixplan simulate disagree; this is a bug in nixplan")
		}
		return exitProblem
	}
	if *format == "json" {
		out, err := json.MarshalIndent(sim, "", "  ")
		if err != nil {
			c.errorf("%v", err)
			return exitProblem
		}
		fmt.Fprintf(c.stdout, "%s\n", out)
	} else if err := sim.Transcript(c.stdout); err != nil {
		c.errorf("%v", err)
		return exitProblem
	}
	if sim.ExitStatus != 0 {
		return exitProblem
	}
	return exitOK
}
