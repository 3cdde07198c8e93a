package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/nixplan/nixplan/plan"
)

// diff renders the specs in memory and compares each bundle with the one in
// DIR (DIR/HOST with several specs, as render writes them): the check a CI
// job runs on committed bundles. Diffs go to stdout, one error per drifted
// file to stderr. As with diff(1), the exit status is 0 when nothing
// drifted, 1 when something did and 2 when it could not compare.
func (c *cli) diff(args []string) int {
	fs := c.flags("diff")
	if code, done := c.parse(fs, args); done {
		return code
	}
	listed := *stringFlag(fs, "from") != ""
	switch {
	case fs.NArg() == 0 && !listed:
		return c.usageError("diff: no spec given")
	case fs.NArg() == 0:
		return c.usageError("diff: no bundle folder given")
	case fs.NArg() == 1 && !listed:
		return c.usageError("diff: no bundle folder given after the spec")
	}
	root := fs.Arg(fs.NArg() - 1)
	files, fleet, err := c.specInputs(fs, fs.Args()[:fs.NArg()-1])
	if err != nil {
		c.errorf("diff: %v", err)
		return exitTrouble
	}
	// A fleet's folder that is not there is a wrong command line, not every
	// host drifting (a single spec's folder is CompareBundle's to judge).
	if fi, err := os.Stat(root); fleet && err != nil {
		c.errorf("%s: %s", root, map[bool]string{true: "no such folder", false: "cannot be read"}[errors.Is(err, os.ErrNotExist)])
		return exitTrouble
	} else if fleet && !fi.IsDir() {
		c.errorf("%s: not a folder; diff compares a folder of bundles", root)
		return exitTrouble
	}
	// diff keeps no bundle once compared, so its live heap is a few MB and
	// the collector would run every few renders: a larger heap goal costs
	// tens of MB and saves about a quarter of the CPU on a fleet.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	defer softMemoryLimit()()

	type result struct {
		dir     string
		drift   []plan.Drift
		missing bool // a fleet's host folder that is not there yet: drift
		err     error
	}
	results := make([]result, len(files))
	_, ok := c.renderAll(files, func(i int, _ *plan.Plan, b *plan.Bundle) {
		dir, rendered := root, "rendered"
		if fleet {
			dir, rendered = filepath.Join(root, b.Host), "rendered/"+b.Host
		}
		if _, err := os.Lstat(dir); fleet && errors.Is(err, os.ErrNotExist) {
			results[i] = result{dir: dir, missing: true}
			return
		}
		drift, err := plan.CompareBundle(b, dir, filepath.ToSlash(filepath.Clean(dir)), rendered)
		results[i] = result{dir: dir, drift: drift, err: err}
	})
	if !ok {
		return exitTrouble
	}

	drifted, trouble := false, false
	hosts := map[string]bool{}
	for i, r := range results {
		file := files[i]
		hosts[filepath.Base(r.dir)] = true
		if r.err != nil {
			c.errorf("%s: %v", file, r.err)
			trouble = true
			continue
		}
		if r.missing {
			c.errorf("%s: missing; %s renders a bundle there", r.dir+"/", file)
			drifted = true
			continue
		}
		if len(r.drift) == 0 {
			fmt.Fprintf(c.stdout, "%s: %s is up to date\n", file, r.dir)
			continue
		}
		drifted = true
		for _, d := range r.drift {
			path := filepath.Join(r.dir, d.Name)
			if strings.HasSuffix(d.Name, "/") {
				path += "/" // a folder
			}
			switch d.Kind {
			case plan.FileChanged:
				if d.Diff == nil {
					c.errorf("%s: differs from what %s renders (it is %d bytes, more than the %s nixplan diffs)", path, file, d.Size, plan.FormatBinary(plan.MaxBundleFileBytes))
					continue
				}
				c.stdout.Write(d.Diff)
				c.errorf("%s: differs from what %s renders", path, file)
			case plan.FileMissing:
				c.errorf("%s: missing; %s renders it", path, file)
			case plan.FileExtra:
				c.errorf("%s: not part of the bundle %s renders", path, file)
			case plan.FileModeChanged:
				if d.Executable {
					c.errorf("%s: not executable; %s renders it executable", path, file)
				} else {
					c.errorf("%s: executable; %s renders it not executable", path, file)
				}
			case plan.FileNotRegular:
				c.errorf("%s: not a regular file; %s renders a file here", path, file)
			}
		}
	}
	// A fleet's bundle whose spec is gone is drift too.
	if fleet {
		entries, _ := os.ReadDir(root)
		var stale []string
		for _, e := range entries {
			switch {
			case plan.IsLeftover(e.Name()):
				c.warnf("%s: left by an interrupted render, not a host; the next render of its host removes it", filepath.Join(root, e.Name()))
			case e.IsDir() && !hosts[e.Name()] && plan.IsBundle(filepath.Join(root, e.Name())):
				stale = append(stale, e.Name())
			}
		}
		sort.Strings(stale)
		for _, host := range stale {
			c.errorf("%s: a bundle for host %s, which none of the specs names", filepath.Join(root, host), host)
			drifted = true
		}
	}
	if trouble {
		return exitTrouble
	}
	if drifted {
		if fleet {
			c.hintf(`if the specs are right, render them again with "nixplan render SPEC... -o %s", review the changes and commit them`, root)
		} else {
			c.hintf(`if the spec is right, render it again with "nixplan render %s -o %s", review the changes and commit them`, files[0], root)
		}
		return exitProblem
	}
	return exitOK
}
