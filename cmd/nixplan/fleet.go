package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// the bundle is not kept: render writes a fleet and diff compares one
// without holding every bundle. Progress goes to a terminal meanwhile.
func (c *cli) renderAll(files []string, then func(i int, p *plan.Plan, b *plan.Bundle)) (rs []rendered, ok bool) {
	rs = make([]rendered, len(files))
	prog := c.startProgress(len(files))
	forEach(len(files), func(i int) {
		defer prog.add()
		r := &rs[i]
		r.file = files[i]
		r.plan, r.problems = loadOne(r.file)
		if r.plan == nil {
			return
		}
		r.bundle, r.err = plan.Render(r.plan)
		if r.bundle != nil && then != nil {
			then(i, r.plan, r.bundle)
			r.bundle = nil
		}
	})
	prog.stop()

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

// stager is render's way to the disk, over plan.Stage and Publish: each
// bundle is staged beside its folder as soon as it renders, and published
// only when every spec has succeeded; otherwise every staged bundle is
// discarded, with the folders staging created, and nothing changes.
type stager struct {
	mu      sync.Mutex
	claimed map[string]bool
	staged  []*plan.Staged
	errs    []error
	created []string // folders that were missing, deepest last
}

// newStager prepares n bundles whose folders are in or below parent.
func newStager(n int, parent string) *stager {
	s := &stager{claimed: map[string]bool{}, staged: make([]*plan.Staged, n), errs: make([]error, n)}
	for dir := filepath.Clean(parent); ; dir = filepath.Dir(dir) {
		if _, err := os.Lstat(dir); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		s.created = append([]string{dir}, s.created...)
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return s
}

// stage stages bundle i in dir, unless another bundle has claimed dir: two
// specs for one host, which the fleet check refuses.
func (s *stager) stage(i int, b *plan.Bundle, dir string) {
	s.mu.Lock()
	dir = filepath.Clean(dir)
	taken := s.claimed[dir]
	s.claimed[dir] = true
	s.mu.Unlock()
	if !taken {
		s.staged[i], s.errs[i] = plan.Stage(b, dir)
	}
}

// failed reports whether a bundle could not be staged.
func (s *stager) failed() bool {
	for _, err := range s.errs {
		if err != nil {
			return true
		}
	}
	return false
}

// publish publishes every staged bundle, concurrently, with the errors in
// the bundles' order.
func (s *stager) publish() []error {
	forEach(len(s.staged), func(i int) {
		if s.staged[i] != nil && s.errs[i] == nil {
			s.errs[i] = s.staged[i].Publish()
		}
	})
	return s.errs
}

// discard removes every staged bundle and the folders staging created.
func (s *stager) discard() {
	forEach(len(s.staged), func(i int) {
		if s.staged[i] != nil {
			_ = s.staged[i].Discard()
		}
	})
	for i := len(s.created) - 1; i >= 0; i-- {
		_ = os.Remove(s.created[i]) // only if empty
	}
}

// writeBundles writes each bundle into its folder through the stager, all
// or nothing, with the errors in the bundles' order.
func writeBundles(bundles []*plan.Bundle, dirs []string) []error {
	s := newStager(len(bundles), filepath.Dir(dirs[0]))
	forEach(len(bundles), func(i int) { s.stage(i, bundles[i], dirs[i]) })
	if s.failed() {
		s.discard()
		return s.errs
	}
	return s.publish()
}
