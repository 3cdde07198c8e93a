package plan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// exchange trades two folders' places with renameat2(RENAME_EXCHANGE),
// Linux 3.15 and later (rename(2); torvalds/linux include/uapi/linux/fs.h).
// An old kernel answers ENOSYS and a file system without it EINVAL: then
// errNoExchange, and Write moves the old folder aside instead.
func exchange(a, b string) error {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		return errNoExchange
	}
	if err != nil {
		return &os.LinkError{Op: "exchange", Old: a, New: b, Err: err}
	}
	return nil
}

// mountPoint reports whether dir is the root of a mount (rename(2) answers
// EBUSY for one): statx says so since Linux 5.8, and a device other than
// its parent's says so everywhere but for bind mounts.
func mountPoint(dir string, fi fs.FileInfo) bool {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &stx); err == nil &&
		stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	}
	parent, err := os.Stat(filepath.Dir(dir))
	if err != nil {
		return false
	}
	st, ok1 := fi.Sys().(*unix.Stat_t)
	pst, ok2 := parent.Sys().(*unix.Stat_t)
	return ok1 && ok2 && st.Dev != pst.Dev
}

// Inode flags that forbid removing a file or the entries of a folder
// (torvalds/linux 01edea1, include/uapi/linux/fs.h: FS_IMMUTABLE_FL,
// FS_APPEND_FL), which chattr +i and +a set and which bind even root.
const (
	fsImmutable = 0x10
	fsAppend    = 0x20
)

// removable says why the files of a bundle folder could not be removed, or
// returns nil: Write checks before it writes anything, so that an old
// bundle is never left half removed beside a new one.
func removable(dir string, entries []fs.DirEntry) error {
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("its files cannot be removed: %w", err)
	}
	if locked(dir) {
		return fmt.Errorf("it is immutable or append-only (chattr +i or +a), so its files cannot be removed")
	}
	for _, e := range entries {
		if e.Type().IsRegular() && locked(filepath.Join(dir, e.Name())) {
			return fmt.Errorf("%s is immutable or append-only (chattr +i or +a), so it cannot be removed", e.Name())
		}
		// The folders of the spec's modules and flake.
		if e.IsDir() {
			sub := filepath.Join(dir, e.Name())
			inner, err := os.ReadDir(sub)
			if err == nil {
				err = removable(sub, inner)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

// locked reports whether a file or folder has the immutable or append-only
// flag; a file system without inode flags has neither.
func locked(path string) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	return err == nil && flags&(fsImmutable|fsAppend) != 0
}
