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
	fs := c.flags("simulate")
	if code, done := c.parse(fs, args); done {
		return code
	}
	machine, format := stringFlag(fs, "machine"), stringFlag(fs, "format")
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
		// The transcript on stdout says it too; stderr must say why the
		// status is 1 for whoever reads only that.
		last := sim.Scripts[len(sim.Scripts)-1]
		where := last.Script
		if phase := last.StoppedIn(); phase != "" {
			where += " (" + phase + " phase)"
		}
		c.errorf("%s: the install would stop in %s: %s", s.file, where, sim.Message)
		return exitProblem
	}
	return exitOK
}
