//go:build unix

package machine

import "syscall"

// openNonblock keeps opening a FIFO from blocking until a writer comes.
const openNonblock = syscall.O_NONBLOCK
