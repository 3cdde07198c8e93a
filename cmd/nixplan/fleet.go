package main

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/nixplan/nixplan/plan"
)

// rendered is one spec taken through Load, Validate and Render.
type rendered struct {
	file     string
	problems plan.Problems // errors and warnings from Load and Validate
	plan     *plan.Plan    // nil when the spec is invalid
	bundle   *plan.Bundle  // nil when the spec is invalid or did not render
	err      error         // why Render failed
}

// renderAll loads, validates and renders the specs concurrently, at most
// GOMAXPROCS at a time, then prints every problem in the specs' order, so
// the output does not depend on scheduling. ok is false when a spec is
// invalid, fails to render, or names a host an earlier spec names.
//
// When then is given it runs in the worker, right after a spec renders, and
// the bundle is not kept: diff compares a fleet without holding every bundle.
func (c *cli) renderAll(files []string, then func(i int, b *plan.Bundle)) (rs []rendered, ok bool) {
	rs = make([]rendered, len(files))
	forEach(len(files), func(i int) {
		r := &rs[i]
		r.file = files[i]
		r.plan, r.problems = loadOne(r.file)
		if r.plan == nil {
			return
		}
		r.bundle, r.err = plan.Render(r.plan)
		if r.bundle != nil && then != nil {
			then(i, r.bundle)
			r.bundle = nil
		}
	})

	ok = true
	for _, r := range rs {
		c.report(r.problems)
		if r.plan == nil {
			ok = false
		}
		if r.err != nil {
			c.errorf("%s: %v", r.file, r.err)
			ok = false
		}
	}
	// Two specs for one host would write one folder twice.
	first := map[string]string{}
	for _, r := range rs {
		if r.plan == nil {
			continue
		}
		if f, dup := first[r.plan.Host.Name]; dup {
			c.errorf("%s: host.name: host %q is also named in %s", r.file, r.plan.Host.Name, f)
			ok = false
			continue
		}
		first[r.plan.Host.Name] = r.file
	}
	return rs, ok
}

// forEach calls f(0) to f(n-1) on GOMAXPROCS goroutines and returns when
// all have returned. Callers keep results by index, so their order never
// depends on scheduling.
func forEach(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}
