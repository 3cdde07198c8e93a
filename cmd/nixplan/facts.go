package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
)

// factsScript prints facts.sh.
func (c *cli) factsScript(args []string) int {
	fs := c.flags("facts-script")
	if code, done := c.parse(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		return c.usageError("facts-script: unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprint(c.stdout, plan.FactsScript())
	return exitOK
}

// readKeyFiles reads the public keys in each --ssh-key file, one a line,
// refusing a private key.
func (c *cli) readKeyFiles(files []string) ([]string, bool) {
	var keys []string
	for _, f := range files {
		data, err := plan.ReadRegular(f, plan.MaxKeyFileBytes)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			c.errorf("%s: %v", f, err)
			return nil, false
		}
		if plan.LooksPrivate(string(data)) {
			c.errorf("%s: this is a PRIVATE key", f)
			c.hintf("give the public half, the .pub file")
			return nil, false
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, line)
			}
		}
	}
	return keys, true
}

// loadMachine reads a machine description, printing its problems.
func (c *cli) loadMachine(file string) (*machine.Machine, bool) {
	m, err := machine.Load(file)
	if err != nil {
		var mps machine.Problems
		if !errors.As(err, &mps) {
			c.report(plan.Problems{{File: file, Msg: err.Error()}})
			return nil, false
		}
		ps := make(plan.Problems, len(mps))
		for i, p := range mps {
			ps[i] = plan.Problem{File: p.File, Line: p.Line, Col: p.Col, Key: p.Key, Msg: p.Msg, Hint: p.Hint}
		}
		c.report(ps)
		return nil, false
	}
	return m, true
}

// checkFacts compares every valid spec with the machine described in
// factsFile and prints each mismatch. It returns false if any is an error.
func (c *cli) checkFacts(factsFile string, specs []loaded) bool {
	m, ok := c.loadMachine(factsFile)
	if !ok {
		return false
	}
	for _, s := range specs {
		spec, err := plan.Load(s.file)
		if err != nil {
			c.errorf("%v", err)
			ok = false
			continue
		}
		problems := plan.CheckMachine(spec, s.plan, m)
		c.report(problems)
		if len(problems.Errors()) > 0 {
			ok = false
			continue
		}
		fmt.Fprintf(c.stdout, "%s: %s; matches the machine in %s\n", s.file, validLine(s.plan), factsFile)
	}
	return ok
}

// initFacts prints a spec written from a machine description, then checks it
// against the same machine and prints what would stop it.
func (c *cli) initFacts(factsFile, provider string, keys []string) int {
	m, ok := c.loadMachine(factsFile)
	if !ok {
		return exitProblem
	}
	text, problems := plan.SpecFromMachine(m, plan.InitOptions{Provider: provider, AuthorizedKeys: keys})
	c.report(problems)
	if len(problems.Errors()) > 0 {
		return exitProblem
	}
	fmt.Fprint(c.stdout, text)

	// The written spec must pass check --facts; say now what would stop it.
	name := "spec from " + factsFile
	spec, err := plan.Parse(name, []byte(text))
	if err != nil {
		c.errorf("%v", err)
		return exitProblem
	}
	p, problems := plan.Validate(spec)
	if p != nil {
		problems = append(problems, plan.CheckMachine(spec, p, m)...)
	}
	c.report(problems)
	if len(problems.Errors()) > 0 {
		return exitProblem
	}
	return exitOK
}
