package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progressEvery is how often the progress line is redrawn; tests shorten it.
var progressEvery = 250 * time.Millisecond

// progress draws one line on a terminal's standard error while a fleet
// renders: how many specs are done, the rate, and the time left. It is
// drawn over itself with a carriage return and erased when the work ends,
// before any problem is printed, so nothing of it is left in a log; off a
// terminal, and with --quiet, there is none.
type progress struct {
	w     io.Writer
	total int
	start time.Time
	done  atomic.Int64
	quit  chan struct{}
	wg    sync.WaitGroup
	drawn bool
}

// startProgress starts the progress of n specs, or returns nil (whose
// methods do nothing) when standard error is not a terminal, --quiet was
// given, or there is a single spec.
func (c *cli) startProgress(n int) *progress {
	if c.quiet || n < 2 || c.isTerminal == nil || !c.isTerminal(c.stderr) {
		return nil
	}
	p := &progress{w: c.stderr, total: n, start: time.Now(), quit: make(chan struct{})}
	p.wg.Go(func() {
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-tick.C:
				p.draw()
			}
		}
	})
	return p
}

func (p *progress) add() {
	if p != nil {
		p.done.Add(1)
	}
}

func (p *progress) draw() {
	done := p.done.Load()
	elapsed := time.Since(p.start).Seconds()
	line := fmt.Sprintf("nixplan: %d of %d specs", done, p.total)
	if done > 0 && elapsed > 0 {
		rate := float64(done) / elapsed
		left := time.Duration(float64(int64(p.total)-done) / rate * float64(time.Second))
		line += fmt.Sprintf(", %.0f a second, about %s left", rate, left.Round(time.Second))
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", line) // \x1b[K erases the rest of an earlier, longer line
	p.drawn = true
}

// stop ends the progress and erases its line.
func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.quit)
	p.wg.Wait()
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
