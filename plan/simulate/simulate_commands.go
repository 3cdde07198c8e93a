package simulate

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"mvdan.cc/sh/v3/interp"
)

// The commands a simulated script may run that are neither shell builtins
// nor played by FakeMachine: small tools emulated here over the virtual file
// system, and the filters grep and awk, which run as the real programs but
// only from stdin to stdout. Any other command stops the simulation.

// cmdEnv is what an emulated command sees.
type cmdEnv struct {
	ss   *scriptSim
	hc   interp.HandlerContext
	line uint
}

func (e *cmdEnv) path(p string) string { return abs(e.hc.Dir, p) }

func (e *cmdEnv) errorf(name, format string, args ...any) int {
	fmt.Fprintf(e.hc.Stderr, name+": "+format+"\n", args...)
	return 1
}

// input reads the operands, or stdin when there are none or one is "-".
func (e *cmdEnv) input(name string, operands []string) ([]byte, int) {
	if len(operands) == 0 {
		operands = []string{"-"}
	}
	var out []byte
	for _, op := range operands {
		if op == "-" {
			data, err := io.ReadAll(e.hc.Stdin)
			if err != nil {
				return nil, e.errorf(name, "-: %v", err)
			}
			out = append(out, data...)
			continue
		}
		data, err := e.ss.fs.read(e.path(op))
		if err != nil {
			return nil, e.errorf(name, "%s: No such file or directory", op)
		}
		out = append(out, data...)
	}
	return out, 0
}

type emulation func(e *cmdEnv, args []string) (int, error)

var emulated map[string]emulation

func init() {
	emulated = map[string]emulation{
		"cat": emuCat, "tee": emuTee, "mkdir": emuMkdir, "cp": emuCp, "mv": emuMv, "chmod": emuChmod,
		"tail": emuHeadTail, "head": emuHeadTail, "cut": emuCut, "tr": emuTr, "sort": emuSort,
		"sleep": emuSleep, "dirname": emuDirname, "od": emuOd, "sha256sum": emuSha256sum, "tar": emuTar,
		"rm": emuRm, "wc": emuWc, "date": emuDate, "setsid": emuSetsid, "base64": emuBase64,
	}
}

// filters run as the real programs, stdin to stdout, never with a file operand.
var filters = map[string]bool{"grep": true, "awk": true}

// splitFlags separates "-x" style flags from operands; "--" ends the flags.
// valued lists the flags that take the next argument.
func splitFlags(args []string, valued string) (flags map[string]string, operands []string, err error) {
	flags = map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return flags, append(operands, args[i+1:]...), nil
		case strings.HasPrefix(a, "--"):
			k, v, _ := strings.Cut(a, "=")
			flags[k] = v
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				c := a[j : j+1]
				if strings.Contains(valued, c) {
					if j+1 < len(a) {
						flags[c] = a[j+1:]
					} else if i+1 < len(args) {
						i++
						flags[c] = args[i]
					} else {
						return nil, nil, fmt.Errorf("-%s needs a value", c)
					}
					break
				}
				flags[c] = ""
			}
		default:
			operands = append(operands, a)
		}
	}
	return flags, operands, nil
}

func emuCat(e *cmdEnv, args []string) (int, error) {
	_, ops, err := splitFlags(args[1:], "")
	if err != nil {
		return e.errorf("cat", "%v", err), nil
	}
	data, code := e.input("cat", ops)
	e.hc.Stdout.Write(data)
	return code, nil
}

func emuTee(e *cmdEnv, args []string) (int, error) {
	flags, ops, err := splitFlags(args[1:], "")
	if err != nil {
		return e.errorf("tee", "%v", err), nil
	}
	mode := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if _, ok := flags["a"]; ok {
		mode = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	var files []io.Writer
	for _, op := range ops {
		f, err := e.ss.fs.open(e.path(op), mode)
		if err != nil {
			return e.errorf("tee", "%s: %v", op, err), nil
		}
		defer f.Close()
		files = append(files, f)
	}
	_, err = io.Copy(io.MultiWriter(append(files, e.hc.Stdout)...), e.hc.Stdin)
	if err != nil {
		return e.errorf("tee", "%v", err), nil
	}
	return 0, nil
}

func emuMkdir(e *cmdEnv, args []string) (int, error) {
	flags, ops, err := splitFlags(args[1:], "m")
	if err != nil || len(ops) == 0 {
		return e.errorf("mkdir", "missing operand"), nil
	}
	_, parents := flags["p"]
	code := 0
	for _, op := range ops {
		if err := e.ss.fs.mkdir(e.path(op), parents); err != nil {
			code = e.errorf("mkdir", "cannot create directory '%s': %v", op, errors.Unwrap(err))
		}
	}
	return code, nil
}

// destination is where cp or mv puts a source: into a folder, or as a file.
func (e *cmdEnv) destination(src, dst string, many bool) (string, bool) {
	d := e.path(dst)
	if info, err := e.ss.fs.stat(d); err == nil && info.IsDir() {
		return path.Join(d, path.Base(src)), true
	}
	return d, !many && !strings.HasSuffix(dst, "/")
}

func emuCp(e *cmdEnv, args []string) (int, error) {
	_, ops, err := splitFlags(args[1:], "")
	if err != nil || len(ops) < 2 {
		return e.errorf("cp", "missing file operand"), nil
	}
	srcs, dst := ops[:len(ops)-1], ops[len(ops)-1]
	code := 0
	for _, src := range srcs {
		from := e.path(src)
		to, ok := e.destination(src, dst, len(srcs) > 1)
		if !ok {
			code = e.errorf("cp", "target '%s' is not a directory", dst)
			continue
		}
		data, err := e.ss.fs.read(from)
		if err != nil {
			code = e.errorf("cp", "cannot stat '%s': No such file or directory", src)
			continue
		}
		growing := e.ss.fs.growing(from)
		info, _ := e.ss.fs.stat(from)
		if err := e.ss.fs.write(to, data, info.Mode()); err != nil {
			code = e.errorf("cp", "cannot create regular file '%s': %v", to, errors.Unwrap(err))
			continue
		}
		wrote := &WrittenFile{Path: to, Size: int64(len(data)), SHA256: sha256Hex(data)}
		if growing {
			// Another command is still writing the source (the install log
			// through tee): what the copy holds depends on timing.
			wrote = &WrittenFile{Path: to, Size: -1, Note: "a copy of " + from + " as far as it is written"}
		}
		e.ss.mu.Lock()
		e.ss.addStep(Step{Wrote: wrote})
		e.ss.mu.Unlock()
	}
	return code, nil
}

func emuMv(e *cmdEnv, args []string) (int, error) {
	_, ops, err := splitFlags(args[1:], "")
	if err != nil || len(ops) != 2 {
		return e.errorf("mv", "simulate plays mv SOURCE DEST"), nil
	}
	to, ok := e.destination(ops[0], ops[1], false)
	if !ok {
		return e.errorf("mv", "target '%s' is not a directory", ops[1]), nil
	}
	if err := e.ss.fs.rename(e.path(ops[0]), to); err != nil {
		return e.errorf("mv", "cannot move '%s' to '%s': %v", ops[0], ops[1], errors.Unwrap(err)), nil
	}
	return 0, nil
}

func emuChmod(e *cmdEnv, args []string) (int, error) {
	if len(args) < 3 {
		return e.errorf("chmod", "missing operand"), nil
	}
	mode, err := strconv.ParseUint(args[1], 8, 32)
	if err != nil {
		return 0, e.ss.fail(e.line, "chmod %s: simulate plays octal modes only", args[1])
	}
	code := 0
	for _, op := range args[2:] {
		if err := e.ss.fs.chmod(e.path(op), fs.FileMode(mode)); err != nil {
			code = e.errorf("chmod", "cannot access '%s': No such file or directory", op)
		}
	}
	return code, nil
}

// emuHeadTail plays head and tail with -n N or -c N, and tail's +N (from
// line or byte N on). tail -f, -s and --pid follow a file as it grows: in a
// simulation every writer has finished by then, so tail prints what is there.
func emuHeadTail(e *cmdEnv, args []string) (int, error) {
	name := args[0]
	flags, ops, err := splitFlags(args[1:], "ncs")
	if err != nil {
		return e.errorf(name, "%v", err), nil
	}
	for f := range flags {
		if name == "head" && f != "n" && f != "c" || !slices.Contains([]string{"n", "c", "f", "s", "--pid"}, f) {
			return 0, e.ss.fail(e.line, "%s: simulate plays -n, -c, and tail's -f, -s and --pid, not -%s", name, f)
		}
	}
	data, code := e.input(name, ops)
	if code != 0 {
		return code, nil
	}
	count := func(v, what string) (int, bool, int) {
		from, ok := strings.CutPrefix(v, "+")
		n, err := strconv.Atoi(from)
		if err != nil || n < 0 {
			return 0, false, e.errorf(name, "invalid number of %s: '%s'", what, v)
		}
		return n, ok && name == "tail", 0
	}
	if v, ok := flags["c"]; ok {
		n, from, code := count(v, "bytes")
		if code != 0 {
			return code, nil
		}
		switch {
		case from:
			e.hc.Stdout.Write(data[min(max(n-1, 0), len(data)):])
		case name == "head":
			e.hc.Stdout.Write(data[:min(n, len(data))])
		default:
			e.hc.Stdout.Write(data[len(data)-min(n, len(data)):])
		}
		return 0, nil
	}
	n, from := 10, false
	if v, ok := flags["n"]; ok {
		if n, from, code = count(v, "lines"); code != 0 {
			return code, nil
		}
	}
	lines := strings.SplitAfter(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	switch {
	case from:
		lines = lines[min(max(n-1, 0), len(lines)):]
	case name == "head":
		lines = lines[:min(n, len(lines))]
	default:
		lines = lines[len(lines)-min(n, len(lines)):]
	}
	io.WriteString(e.hc.Stdout, strings.Join(lines, ""))
	return 0, nil
}

// emuRm plays rm [-f] [-r] over the virtual file system.
func emuRm(e *cmdEnv, args []string) (int, error) {
	flags, ops, err := splitFlags(args[1:], "")
	if err != nil {
		return e.errorf("rm", "%v", err), nil
	}
	_, force := flags["f"]
	_, recursive := flags["r"]
	code := 0
	for _, op := range ops {
		if err := e.ss.fs.remove(e.path(op), recursive); err != nil {
			if errors.Is(err, fs.ErrNotExist) && force {
				continue
			}
			code = e.errorf("rm", "cannot remove '%s': %v", op, errors.Unwrap(err))
		}
	}
	return code, nil
}

// emuWc plays wc -c and wc -l on stdin.
func emuWc(e *cmdEnv, args []string) (int, error) {
	flags, ops, err := splitFlags(args[1:], "")
	_, bytesWanted := flags["c"]
	_, linesWanted := flags["l"]
	if err != nil || len(ops) > 0 || len(flags) != 1 || !bytesWanted && !linesWanted {
		return 0, e.ss.fail(e.line, "wc: simulate plays wc -c and wc -l on stdin, not %q", args[1:])
	}
	data, code := e.input("wc", nil)
	if code != 0 {
		return code, nil
	}
	if bytesWanted {
		fmt.Fprintln(e.hc.Stdout, len(data))
	} else {
		fmt.Fprintln(e.hc.Stdout, bytes.Count(data, []byte("\n")))
	}
	return 0, nil
}

// simulatedNow is the time the simulated date prints: a simulation runs at
// no time in particular, and its transcripts must not change by the day.
var simulatedNow = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// emuDate plays date [-u] [+FORMAT] with %Y %m %d %H %M %S %Z %%.
func emuDate(e *cmdEnv, args []string) (int, error) {
	format := "+%a %b %e %H:%M:%S %Z %Y"
	for _, a := range args[1:] {
		switch {
		case a == "-u" || a == "--utc":
		case strings.HasPrefix(a, "+"):
			format = a
		default:
			return 0, e.ss.fail(e.line, "date: simulate plays date -u +FORMAT, not %q", a)
		}
	}
	t := simulatedNow
	r := strings.NewReplacer("%Y", t.Format("2006"), "%m", t.Format("01"), "%d", t.Format("02"), "%e", t.Format("_2"),
		"%H", t.Format("15"), "%M", t.Format("04"), "%S", t.Format("05"), "%Z", "UTC", "%a", t.Format("Mon"), "%b", t.Format("Jan"), "%%", "%")
	fmt.Fprintln(e.hc.Stdout, r.Replace(format[1:]))
	return 0, nil
}

// emuSetsid plays setsid --fork bash -p SCRIPT ARGS...: the bundle's script
// run again, detached from the session, reading what the call gives it on
// its stdin (/dev/null, or the pipe that hands over the encryption
// passphrase) and writing to what the call redirected its output to (the
// log). setsid --fork returns at once; here the detached run goes to its end
// first, so what follows it (the log) finds all it wrote.
func emuSetsid(e *cmdEnv, args []string) (int, error) {
	argv := args[1:]
	for len(argv) > 0 && (argv[0] == "--fork" || argv[0] == "-f") {
		argv = argv[1:]
	}
	if len(argv) < 3 || argv[0] != "bash" || argv[1] != "-p" {
		return 0, e.ss.fail(e.line, "setsid: simulate plays setsid --fork bash -p SCRIPT ..., not %q", args[1:])
	}
	script := e.path(argv[2])
	name := path.Base(script)
	if script != path.Join(simulatedHome, name) || e.ss.bundle.File(name) == nil {
		return 0, e.ss.fail(e.line, "setsid: simulate starts only the bundle's scripts in %s, not %s", simulatedHome, argv[2])
	}
	quoted, err := quoteArgs(args)
	if err != nil {
		return 0, e.ss.fail(e.line, "%v", err)
	}
	var stdin []byte
	if e.hc.Stdin != nil {
		if stdin, err = io.ReadAll(e.hc.Stdin); err != nil {
			return 0, e.ss.fail(e.line, "setsid: reading its standard input: %v", err)
		}
	}
	e.ss.mu.Lock()
	e.ss.addStep(Step{Line: int(e.line), Argv: slices.Clone(args), Command: quoted})
	e.ss.mu.Unlock()
	run, err := e.ss.runScript(scriptCall{name: name, path: script, system: e.ss.run.System, fake: e.ss.fake, fs: e.ss.fs,
		args: slices.Clone(argv[3:]), detached: true, stdin: string(stdin), stdout: e.hc.Stdout, stderr: e.hc.Stderr})
	if err != nil {
		e.ss.mu.Lock()
		if e.ss.err == nil {
			e.ss.err = err
		}
		e.ss.mu.Unlock()
		return 0, err
	}
	e.ss.detached = append(e.ss.detached, *run)
	return 0, nil
}

// emuCut plays cut -d DELIM -f LIST.
func emuCut(e *cmdEnv, args []string) (int, error) {
	flags, ops, err := splitFlags(args[1:], "df")
	if err != nil {
		return e.errorf("cut", "%v", err), nil
	}
	delim, list := "\t", flags["f"]
	if d, ok := flags["d"]; ok {
		delim = d
	}
	if list == "" || len(delim) != 1 {
		return 0, e.ss.fail(e.line, "cut: simulate plays cut -d CHAR -f LIST")
	}
	var ranges [][2]int
	for _, r := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, errA := strconv.Atoi(lo)
		b := a
		if isRange {
			if hi == "" {
				b = 1 << 30
			} else {
				b, err = strconv.Atoi(hi)
				if err != nil {
					return e.errorf("cut", "invalid field list '%s'", list), nil
				}
			}
		}
		if errA != nil {
			return e.errorf("cut", "invalid field list '%s'", list), nil
		}
		ranges = append(ranges, [2]int{a, b})
	}
	keep := func(n int) bool {
		for _, r := range ranges {
			if n >= r[0] && n <= r[1] {
				return true
			}
		}
		return false
	}
	data, code := e.input("cut", ops)
	if code != 0 {
		return code, nil
	}
	var b strings.Builder
	for _, line := range textLines(string(data)) {
		if !strings.Contains(line, delim) {
			b.WriteString(line + "\n")
			continue
		}
		var out []string
		for i, f := range strings.Split(line, delim) {
			if keep(i + 1) {
				out = append(out, f)
			}
		}
		b.WriteString(strings.Join(out, delim) + "\n")
	}
	io.WriteString(e.hc.Stdout, b.String())
	return 0, nil
}

func textLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// trSet expands a tr set: characters, ranges a-z, \n and \t.
func trSet(s string) []byte {
	s = strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\\`, `\`).Replace(s)
	var out []byte
	for i := 0; i < len(s); i++ {
		if i+2 < len(s) && s[i+1] == '-' {
			for c := int(s[i]); c <= int(s[i+2]); c++ {
				out = append(out, byte(c))
			}
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

// emuTr plays tr -d SET and tr SET1 SET2.
func emuTr(e *cmdEnv, args []string) (int, error) {
	flags, ops, err := splitFlags(args[1:], "")
	if err != nil {
		return e.errorf("tr", "%v", err), nil
	}
	data, err := io.ReadAll(e.hc.Stdin)
	if err != nil {
		return e.errorf("tr", "%v", err), nil
	}
	_, del := flags["d"]
	switch {
	case del && len(ops) == 1 && len(flags) == 1:
		set := trSet(ops[0])
		data = bytes.Map(func(r rune) rune {
			if r < 256 && bytes.IndexByte(set, byte(r)) >= 0 {
				return -1
			}
			return r
		}, data)
	case len(flags) == 0 && len(ops) == 2:
		from, to := trSet(ops[0]), trSet(ops[1])
		if len(to) == 0 {
			return e.errorf("tr", "when not truncating set1, string2 must be non-empty"), nil
		}
		for i, c := range data {
			if k := bytes.IndexByte(from, c); k >= 0 {
				data[i] = to[min(k, len(to)-1)]
			}
		}
	default:
		return 0, e.ss.fail(e.line, "tr: simulate plays tr -d SET and tr SET1 SET2, not %q", args[1:])
	}
	e.hc.Stdout.Write(data)
	return 0, nil
}

// emuSort plays sort [-u] in the C locale.
func emuSort(e *cmdEnv, args []string) (int, error) {
	flags, ops, err := splitFlags(args[1:], "")
	if err != nil {
		return e.errorf("sort", "%v", err), nil
	}
	for f := range flags {
		if f != "u" {
			return 0, e.ss.fail(e.line, "sort: simulate plays sort and sort -u, not -%s", f)
		}
	}
	data, code := e.input("sort", ops)
	if code != 0 {
		return code, nil
	}
	lines := textLines(string(data))
	sort.Strings(lines)
	if _, ok := flags["u"]; ok {
		lines = slices.Compact(lines)
	}
	for _, l := range lines {
		io.WriteString(e.hc.Stdout, l+"\n")
	}
	return 0, nil
}

// emuSleep does not wait: the simulated machine is ready at once.
func emuSleep(*cmdEnv, []string) (int, error) { return 0, nil }

func emuDirname(e *cmdEnv, args []string) (int, error) {
	if len(args) != 2 {
		return e.errorf("dirname", "simulate plays dirname with one name"), nil
	}
	p := strings.TrimRight(args[1], "/")
	switch {
	case p == "" && args[1] != "":
		p = "/"
	case !strings.Contains(p, "/"):
		p = "."
	default:
		p = strings.TrimRight(p[:strings.LastIndexByte(p, '/')], "/")
		if p == "" {
			p = "/"
		}
	}
	fmt.Fprintln(e.hc.Stdout, p)
	return 0, nil
}

// emuBase64 plays base64 -d, as GNU base64 decodes: newlines are
// skipped, anything else that is not base64 is an error.
func emuBase64(e *cmdEnv, args []string) (int, error) {
	flags, ops, err := splitFlags(args[1:], "")
	if err != nil {
		return e.errorf("base64", "%v", err), nil
	}
	if _, ok := flags["d"]; !ok || len(flags) != 1 {
		return 0, e.ss.fail(e.line, "base64: simulate plays base64 -d, not %q", args[1:])
	}
	data, code := e.input("base64", ops)
	if code != 0 {
		return code, nil
	}
	out, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(data), "\n", ""))
	if err != nil {
		return e.errorf("base64", "invalid input"), nil
	}
	e.hc.Stdout.Write(out)
	return 0, nil
}

// emuOd plays od -An -tu1 [-j SKIP] [-N COUNT], as GNU od prints it.
func emuOd(e *cmdEnv, args []string) (int, error) {
	flags, ops, err := splitFlags(args[1:], "AtjN")
	if err != nil {
		return e.errorf("od", "%v", err), nil
	}
	if flags["A"] != "n" || flags["t"] != "u1" {
		return 0, e.ss.fail(e.line, "od: simulate plays od -An -tu1, not %q", args[1:])
	}
	data, code := e.input("od", ops)
	if code != 0 {
		return code, nil
	}
	if v, ok := flags["j"]; ok {
		n, _ := strconv.Atoi(v)
		data = data[min(n, len(data)):]
	}
	if v, ok := flags["N"]; ok {
		n, _ := strconv.Atoi(v)
		data = data[:min(n, len(data))]
	}
	var b strings.Builder
	for i, c := range data {
		fmt.Fprintf(&b, "%4d", c)
		if i%16 == 15 || i == len(data)-1 {
			b.WriteString("\n")
		}
	}
	io.WriteString(e.hc.Stdout, b.String())
	return 0, nil
}

// emuSha256sum plays sha256sum, with --check over the virtual file system.
func emuSha256sum(e *cmdEnv, args []string) (int, error) {
	flags, ops, err := splitFlags(args[1:], "")
	if err != nil {
		return e.errorf("sha256sum", "%v", err), nil
	}
	_, c1 := flags["c"]
	_, c2 := flags["--check"]
	if !c1 && !c2 {
		if len(ops) == 0 {
			ops = []string{"-"}
		}
		for _, op := range ops {
			data, code := e.input("sha256sum", []string{op})
			if code != 0 {
				return code, nil
			}
			fmt.Fprintf(e.hc.Stdout, "%s  %s\n", e.ss.sha256Of(data), op)
		}
		return 0, nil
	}
	_, quiet := flags["--quiet"]
	_, status := flags["--status"]
	_, ignoreMissing := flags["--ignore-missing"]
	if len(ops) == 0 {
		ops = []string{"-"}
	}
	failed, verified := 0, 0
	for _, op := range ops {
		list, code := e.input("sha256sum", []string{op})
		if code != 0 {
			return code, nil
		}
		for _, line := range textLines(string(list)) {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			sum, name, ok := strings.Cut(line, " ")
			if !ok || len(name) < 2 || (name[0] != ' ' && name[0] != '*') {
				return e.errorf("sha256sum", "%s: improperly formatted SHA256 checksum line", op), nil
			}
			name = name[1:]
			data, err := e.ss.fs.read(e.path(name))
			if err != nil {
				if ignoreMissing {
					continue
				}
				failed++
				if !status {
					fmt.Fprintf(e.hc.Stdout, "%s: FAILED open or read\n", name)
				}
				continue
			}
			verified++
			if e.ss.sha256Of(data) != sum {
				failed++
				if !status {
					fmt.Fprintf(e.hc.Stdout, "%s: FAILED\n", name)
				}
			} else if !quiet && !status {
				fmt.Fprintf(e.hc.Stdout, "%s: OK\n", name)
			}
		}
		if ignoreMissing && verified == 0 {
			return e.errorf("sha256sum", "%s: no file was verified", op), nil
		}
	}
	if failed > 0 {
		if !status {
			fmt.Fprintf(e.hc.Stderr, "sha256sum: WARNING: %d computed checksum did NOT match\n", failed)
		}
		return 1, nil
	}
	return 0, nil
}

// kexecTarballFiles are what the nixos-images kexec tarball unpacks to.
var kexecTarballFiles = []struct {
	name string
	mode fs.FileMode
}{{"kexec/run", 0o755}, {"kexec/bzImage", 0o644}, {"kexec/initrd", 0o644}, {"kexec/kexec", 0o755}, {"kexec/ip", 0o755}}

// emuTar plays tar -x of the kexec tarball: it unpacks stand-ins of kexec/*.
func emuTar(e *cmdEnv, args []string) (int, error) {
	flags, ops, err := splitFlags(args[1:], "Cf")
	if err != nil {
		return e.errorf("tar", "%v", err), nil
	}
	if len(ops) > 0 && !strings.HasPrefix(args[1], "-") {
		return 0, e.ss.fail(e.line, "tar: simulate plays tar -x with dashed options, not %q", args[1:])
	}
	if _, ok := flags["x"]; !ok {
		return 0, e.ss.fail(e.line, "tar: simulate plays tar -x only, not %q", args[1:])
	}
	dir := e.hc.Dir
	if d, ok := flags["C"]; ok {
		dir = e.path(d)
	}
	archive := flags["f"]
	var data []byte
	if archive == "-" || archive == "" {
		data, _ = io.ReadAll(e.hc.Stdin)
	} else if data, err = e.ss.fs.read(e.path(archive)); err != nil {
		fmt.Fprintf(e.hc.Stderr, "tar: %s: Cannot open: No such file or directory\n", archive)
		return 2, nil
	}
	if !bytes.Equal(data, e.ss.tarball) {
		return 0, e.ss.fail(e.line, "tar: %s is not the kexec tarball; simulate unpacks only that", archive)
	}
	if _, ok := flags["O"]; ok {
		// tar -xzOf TARBALL kexec/run: the member to stdout, nothing written.
		if len(ops) != 1 || ops[0] != "kexec/run" {
			return 0, e.ss.fail(e.line, "tar: simulate prints only kexec/run with -O, not %q", ops)
		}
		io.WriteString(e.hc.Stdout, e.ss.kexecRun())
		return 0, nil
	}
	if info, err := e.ss.fs.stat(dir); err != nil || !info.IsDir() {
		fmt.Fprintf(e.hc.Stderr, "tar: %s: Cannot open: No such file or directory\n", dir)
		return 2, nil
	}
	for _, f := range kexecTarballFiles {
		if f.name == "kexec/run" {
			e.ss.fs.put(path.Join(dir, f.name), []byte(e.ss.kexecRun()), f.mode)
			continue
		}
		e.ss.fs.put(path.Join(dir, f.name), []byte("nixplan simulate: a stand-in for "+f.name+"\n"), f.mode)
	}
	return 0, nil
}

// awkUnsafe finds awk programs that could touch files or run commands.
var awkUnsafe = regexp.MustCompile(`\b(system|getline|close|fflush)\b|print[f]?[^;}]*(>|\|)`)

// filter runs grep or awk as the real program, from stdin to stdout. A file
// operand, or an awk program that could open files, stops the simulation:
// the scripts read machine files by redirection only (templates/templates.go).
func (ss *scriptSim) filter(hc interp.HandlerContext, line uint, args []string) (int, error) {
	name := args[0]
	var valued string
	switch name {
	case "grep":
		valued = "emABCD"
	case "awk":
		valued = "vF"
	}
	flags, ops, err := splitFlags(args[1:], valued)
	if err != nil {
		return 0, ss.fail(line, "%s: %v", name, err)
	}
	for f := range flags {
		if slices.Contains([]string{"f", "r", "R", "--file", "--recursive", "--dereference-recursive"}, f) {
			return 0, ss.fail(line, "%s -%s reads or writes files; simulate runs %s only from stdin to stdout", name, f, name)
		}
	}
	program := 1 // the pattern or the program is the first operand
	if _, ok := flags["e"]; ok {
		program = 0
	}
	if len(ops) > program {
		return 0, ss.fail(line, "%s has a file operand (%q); the templates must give it the file on stdin (%s ... <FILE)", name, ops[program], name)
	}
	if name == "awk" && len(ops) == 1 && awkUnsafe.MatchString(ops[0]) {
		return 0, ss.fail(line, "awk program %q could open files or run commands; simulate runs only pure filters", ops[0])
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return 0, ss.fail(line, "%s is not installed here; simulate runs the real %s as a filter", name, name)
	}
	cmd := exec.Command(bin, args[1:]...)
	cmd.Env = []string{"LC_ALL=C"}
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = hc.Stdin, hc.Stdout, hc.Stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), nil
	}
	return 0, ss.fail(line, "%s: %v", name, err)
}
