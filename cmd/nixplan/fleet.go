package main

import (
	"fmt"
	"runtime"
	"strings"
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
	clash    bool          // the spec shares with another what two servers cannot
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
	c.reportFleet(rs)
	var members []plan.FleetMember
	var index []int // members[i] is rs[index[i]]
	for i, r := range rs {
		if r.plan == nil {
			ok = false
		}
		if r.err != nil {
			c.errorf("%s: %v", r.file, r.err)
			ok = false
		}
		if r.plan != nil {
			members = append(members, plan.FleetMember{File: r.file, Plan: r.plan})
			index = append(index, i)
		}
	}
	// What two servers cannot share, such as a host name (which would
	// write one folder twice) or an address.
	fleet, clashes := plan.CheckFleet(members)
	c.report(fleet)
	if len(fleet.Errors()) > 0 {
		ok = false
	}
	for _, i := range clashes {
		rs[index[i]].clash = true
	}
	return rs, ok
}

// reportFleet prints every spec's problems in the specs' order. A problem
// of a shared include is printed once, where it is first met, with the specs
// that include it.
func (c *cli) reportFleet(rs []rendered) {
	type shared struct {
		users []string
	}
	own := func(r rendered, p plan.Problem) bool { return p.File == r.file }
	seen := map[string]*shared{}
	for _, r := range rs {
		for _, p := range r.problems {
			if own(r, p) {
				continue
			}
			id := p.Error() + "\x00" + p.Hint
			if s, ok := seen[id]; ok {
				s.users = append(s.users, r.file)
			} else {
				seen[id] = &shared{users: []string{r.file}}
			}
		}
	}
	for _, r := range rs {
		for _, p := range r.problems {
			if own(r, p) {
				c.report(plan.Problems{p})
				continue
			}
			s := seen[p.Error()+"\x00"+p.Hint]
			if s == nil || s.users[0] != r.file {
				continue // printed with the first spec that includes it
			}
			c.report(plan.Problems{p})
			if len(rs) > 1 {
				c.hintf("%s is included by %s", p.File, joinFiles(s.users))
			}
		}
	}
}

// joinFiles lists files for a message, at most five by name.
func joinFiles(files []string) string {
	if len(files) > 5 {
		return strings.Join(files[:5], ", ") + fmt.Sprintf(" and %d more", len(files)-5)
	}
	return strings.Join(files, ", ")
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

// writeBundles writes each bundle into its folder with plan.Write, which
// leaves a folder whole, old or new, at every instant; concurrently, with
// the errors in the bundles' order. It is render's one way to the disk.
func writeBundles(bundles []*plan.Bundle, dirs []string) []error {
	errs := make([]error, len(bundles))
	forEach(len(bundles), func(i int) { errs[i] = plan.Write(bundles[i], dirs[i]) })
	return errs
}
