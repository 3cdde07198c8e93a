package simulate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
)

// Simulation is what `nixplan simulate` shows: the bundle's two scripts run
// in mvdan.cc/sh's interpreter against a machine description, phase by phase,
// with every command that would change the machine and every file written.
// Nothing runs on a real machine: commands the scripts read the machine with
// are answered by a FakeMachine, and files live in a virtual file system.
type Simulation struct {
	Host string `json:"host"`
	// Machine says which machine the scripts ran against.
	Machine string `json:"machine"`
	// Notes are what the simulation chose that a real run would not:
	// stand-ins, the operator's answers.
	Notes   []string    `json:"notes"`
	Scripts []ScriptRun `json:"scripts"`
	// ExitStatus is that of the last script run: 0 when both finished.
	ExitStatus int `json:"exit_status"`
	// Message is the error the run stopped with; empty when it finished.
	Message string `json:"message"`
}

// ScriptRun is one script's simulated run.
type ScriptRun struct {
	Script string   `json:"script"`
	Args   []string `json:"args"`
	// Stdin is what the operator types into the script.
	Stdin string `json:"stdin"`
	// System is where it runs: "rescue" or "installer".
	System string `json:"system"`
	// Detached: the run before it started this one with setsid, detached
	// from the session, its output going to the install log.
	Detached   bool    `json:"detached,omitempty"`
	Phases     []Phase `json:"phases"`
	ExitStatus int     `json:"exit_status"`
	// Message is the script's error line, Hints its hints.
	Message string   `json:"message"`
	Hints   []string `json:"hints"`
	// Output is what the script printed on stdout, Errors on stderr.
	Output string `json:"output"`
	Errors string `json:"errors"`
}

// Phase is the steps after one "==> NAME" line of a script. Steps before the
// first such line are in a phase with an empty name.
type Phase struct {
	Name  string `json:"name"`
	Steps []Step `json:"steps"`
}

// Step is one command the script runs through its `run` function (what
// --dry-run shows), or one file it finished writing.
type Step struct {
	// Line is the script line of the call.
	Line int `json:"line,omitempty"`
	// Argv is the command with every value filled in; Command the same,
	// shell-quoted as the operator would type it.
	Argv    []string `json:"argv,omitempty"`
	Command string   `json:"command,omitempty"`
	// ChangesMachine: simulate.ChangesMachine says the command changes the machine.
	ChangesMachine bool `json:"changes_machine,omitempty"`
	// OutsideRun: the script ran a command that changes the machine without
	// going through `run`, so --dry-run would not show it. Templates must not.
	OutsideRun bool         `json:"outside_run,omitempty"`
	Wrote      *WrittenFile `json:"wrote,omitempty"`
}

// WrittenFile is a file a script wrote, as it was when written.
type WrittenFile struct {
	Path string `json:"path"`
	// Size and SHA256 are left out (-1, "") when the file was copied while
	// another command was still writing it, as the install log is.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Note says when the contents are a simulation's stand-in.
	Note string `json:"note,omitempty"`
}

// Options choose the machine a simulation runs against.
type Options struct {
	// Machine is the rescue system the bundle starts on; nil for the healthy
	// machine the plan describes (HealthyMachine).
	Machine *machine.Machine
	// Faults break what a description does not say.
	Faults Faults
}

// Error is a script doing something the simulation cannot play:
// a command it does not know, a filter given a file to read. It means the
// templates and the simulation have drifted apart.
type Error struct {
	Script string
	Line   int
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: simulate cannot play this: %s", e.Script, e.Line, e.Msg)
}

// simulatedHome is where both scripts run, with the bundle beside them.
const simulatedHome = "/root"

// Run runs a bundle's rescue-bootstrap.sh, then (if it booted the
// installer) kexec-install.sh, against a machine. A script that stops is a
// result, not an error; an error means the simulation itself could not go on.
func Run(p *plan.Plan, b *plan.Bundle, opts Options) (*Simulation, error) {
	m := opts.Machine
	sim := &Simulation{Host: p.Host.Name}
	if m == nil {
		m = HealthyMachine(p)
		sim.Machine = fmt.Sprintf("the healthy machine %s describes", p.SpecFile)
	} else {
		sim.Machine = m.File
		if sim.Machine == "" {
			sim.Machine = "the machine description given"
		}
	}
	s := &simulator{plan: p, bundle: b, standIns: map[string]string{}}

	// The tarball's download is a stand-in: its hash is the pinned one, or,
	// with none pinned, the stand-in's own, which the operator accepts.
	tarball := []byte("nixplan simulate: a stand-in for " + p.Kexec.URL + "\n")
	args := []string{}
	if p.Kexec.SHA256 != "" {
		s.standIns[sha256Hex(tarball)] = p.Kexec.SHA256
		sim.Notes = append(sim.Notes, "the downloaded kexec tarball is a stand-in with the sha256 the spec pins")
	} else {
		args = append(args, "--accept-hash", sha256Hex(tarball))
		sim.Notes = append(sim.Notes, "the spec pins no kexec.sha256: the downloaded tarball is a stand-in, and simulate accepts its sha256 with --accept-hash as the operator would after comparing it")
	}
	s.tarball = tarball
	// A pinned channel's nixexprs.tar.xz is a stand-in with the pinned hash.
	if p.Nixpkgs.Pinned {
		s.standIns[sha256Hex(standInFor(p.Nixpkgs.ChannelURL+"/nixexprs.tar.xz"))] = p.Nixpkgs.SHA256
		sim.Notes = append(sim.Notes, "the pinned channel's nixexprs.tar.xz is a stand-in with the sha256 the spec pins")
	}

	rescue := NewFakeMachine(m)
	rescue.Faults = opts.Faults
	rfs := s.seed(rescue, nil)
	run, err := s.runScript(scriptCall{name: plan.RescueBootstrapFile, system: "rescue", fake: rescue, fs: rfs, args: args})
	if err != nil {
		return nil, err
	}
	sim.Scripts = append(sim.Scripts, *run)
	sim.ExitStatus, sim.Message = run.ExitStatus, run.Message
	if run.ExitStatus != 0 {
		return sim, nil
	}
	if !s.kexecd {
		sim.ExitStatus = 1
		sim.Message = "rescue-bootstrap.sh finished without starting the installer (kexec/run)"
		return sim, nil
	}

	// kexec/run carries root's login keys into the installer; the rest of the
	// rescue system's files are gone.
	installer := NewFakeMachine(InstallerMachine(m, p))
	installer.Faults = opts.Faults
	installer.Versions = InstallerVersions(p)
	sim.Notes = append(sim.Notes, fmt.Sprintf("the installer reports Nix %s and ZFS %s, the lowest the image table allows for %s", installer.Versions["nix"], installer.Versions["zfs"], orThis(p.Kexec.Tag)))
	keys := map[string][]byte{}
	for _, name := range []string{"/root/.ssh/authorized_keys", "/root/.ssh/authorized_keys2"} {
		if data, err := rfs.read(name); err == nil {
			keys[name] = data
		}
	}
	ifs := s.seed(installer, keys)
	s.kexecd = false
	answer := OperatorInput(p)
	sim.Notes = append(sim.Notes, fmt.Sprintf("kexec-install.sh asks before it erases the disks; simulate answers %s, as the operator would type it", p.Host.Name))
	if p.Encryption != nil {
		sim.Notes = append(sim.Notes, "kexec-install.sh asks for the encryption passphrase before it detaches; simulate types a stand-in twice, and the detached run gets it through a pipe")
	}
	if p.ConsolePassword {
		sim.Notes = append(sim.Notes, "kexec-install.sh asks for the console password before it detaches; simulate types a stand-in twice")
	}
	run, err = s.runScript(scriptCall{name: plan.KexecInstallFile, system: "installer", fake: installer, fs: ifs, stdin: answer})
	if err != nil {
		return nil, err
	}
	// The runs the foreground run started detached come after it.
	sim.Scripts = append(sim.Scripts, *run)
	sim.Scripts = append(sim.Scripts, s.detached...)
	last := sim.Scripts[len(sim.Scripts)-1]
	sim.ExitStatus, sim.Message = last.ExitStatus, last.Message
	return sim, nil
}

// MachineCommands returns, in order, every command of both scripts that
// changes the machine (simulate.ChangesMachine), as argument lists: what a
// recording PATH would record when bash runs the same scripts.
func (s *Simulation) MachineCommands() [][]string {
	var out [][]string
	for _, r := range s.Scripts {
		out = append(out, r.MachineCommands()...)
	}
	return out
}

// MachineCommands returns the script's commands that change the machine, in order.
func (r *ScriptRun) MachineCommands() [][]string {
	var out [][]string
	for _, ph := range r.Phases {
		for _, st := range ph.Steps {
			if st.ChangesMachine {
				out = append(out, st.Argv)
			}
		}
	}
	return out
}

// StoppedIn returns the phase the script was in when it ended.
func (r *ScriptRun) StoppedIn() string {
	if len(r.Phases) == 0 {
		return ""
	}
	return r.Phases[len(r.Phases)-1].Name
}

// HealthyMachine is the rescue system a plan describes, as it should be:
// its disks empty and with the identity the spec gives, its address on the
// interface (and MAC) the spec names, its firmware, memory well above what
// the installer image needs, every tool present.
func HealthyMachine(p *plan.Plan) *machine.Machine {
	m := &machine.Machine{
		Version:     machine.Version,
		Description: "the healthy rescue system of " + p.Host.Name + ", made from its spec",
		Hostname:    "rescue",
		Kernel:      "6.1.0-21-amd64",
		Arch:        "x86_64",
		OS:          machine.OSRelease{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
		Firmware:    machine.Firmware{Mode: p.Firmware},
		RAMBytes:    max(16<<30, int64(p.Kexec.Image.MinRAMMiB)<<22), // 16 GiB, or 4 times the minimum
		Tools:       map[string]bool{},
	}
	if p.Firmware == machine.FirmwareUEFI {
		off := false
		m.Firmware.SecureBoot = &off
	}
	for _, t := range []string{"tar", "gzip", "xz", "cpio", "curl", "wget", "sha256sum", "kexec", "ip", "lsblk", "blkid", "parted", "wipefs", "mdadm", "mkfs.ext4", "ssh-keygen"} {
		m.Tools[t] = true
	}
	identity := map[string]plan.DiskIdentity{}
	for _, id := range p.Storage.Identity {
		identity[id.Device] = id
	}
	for i, dev := range p.Storage.Disks {
		d := machine.Disk{Type: "disk", Model: "SIMULATED DISK", Serial: fmt.Sprintf("SIM%05d", i+1), SizeBytes: 2000398934016,
			LogicalSectorBytes: 512, Partitions: []machine.DiskPartition{}}
		if id, ok := identity[dev]; ok {
			if id.Serial != "" {
				d.Serial = id.Serial
			}
			if id.SizeBytes > 0 {
				d.SizeBytes = id.SizeBytes
			}
		}
		if strings.HasPrefix(dev, "/dev/disk/") {
			d.Name = fmt.Sprintf("sd%c", 'a'+i)
			if strings.Contains(dev, "/nvme-") {
				d.Name = fmt.Sprintf("nvme%dn1", i)
			}
			d.Path = "/dev/" + d.Name
			d.ByID = []string{dev}
		} else {
			d.Path = dev
			d.Name = path.Base(dev)
			d.ByID = []string{"/dev/disk/by-id/ata-SIMULATED_DISK_" + d.Serial}
		}
		if p.Storage.Label == "gpt" {
			d.PartitionTable = "gpt"
		}
		m.Disks = append(m.Disks, d)
	}
	ifc := machine.Interface{Name: p.Network.Interface, MAC: p.Network.MAC, Physical: true, OperState: "up", MTU: 1500, DefaultRoute: true}
	if p.Network.RenameByMAC {
		ifc.Name = "eth0" // the spec's own name exists only in the installed system
	}
	if ifc.MAC == "" {
		ifc.MAC = "02:00:00:00:00:01"
	}
	if p.Encryption != nil {
		ifc.Driver = p.Encryption.NICDriver // the machine the spec describes
	}
	ifc.Addresses = append(ifc.Addresses, machine.Address{Family: "ipv4", Address: p.Network.IPv4.Address, Prefix: p.Network.IPv4.Prefix, Scope: "global"})
	m.Routes = append(m.Routes, machine.Route{Family: "ipv4", Destination: "default", Gateway: p.Network.IPv4.Gateway, Interface: ifc.Name, OnLink: p.Network.IPv4.OnLink})
	if v6 := p.Network.IPv6; v6 != nil {
		ifc.Addresses = append(ifc.Addresses, machine.Address{Family: "ipv6", Address: v6.Address, Prefix: v6.Prefix, Scope: "global"})
		m.Routes = append(m.Routes, machine.Route{Family: "ipv6", Destination: "default", Gateway: v6.Gateway, Interface: ifc.Name, OnLink: v6.OnLink})
	}
	m.Interfaces = []machine.Interface{ifc}
	return m
}

// InstallerMachine is a rescue system after rescue-bootstrap.sh booted the
// NixOS kexec installer on it: the same disks, network and firmware; the
// rescue system's mounts and imported pools gone (md arrays and LVM are
// assembled again at boot); the installer's tools.
func InstallerMachine(rescue *machine.Machine, p *plan.Plan) *machine.Machine {
	m := *rescue
	m.Hostname = "nixos"
	m.OS = machine.OSRelease{ID: "nixos", VersionID: strings.TrimPrefix(p.Kexec.Tag, "nixos-"), PrettyName: "NixOS kexec installer (" + p.Kexec.Tag + ")"}
	m.ZFSPools = nil
	m.Disks = slices.Clone(rescue.Disks)
	for i := range m.Disks {
		d := &m.Disks[i]
		d.Mountpoints = nil
		d.Partitions = slices.Clone(d.Partitions)
		for j := range d.Partitions {
			d.Partitions[j].Mountpoints = nil
		}
	}
	m.MDArrays = slices.Clone(rescue.MDArrays)
	for i := range m.MDArrays {
		m.MDArrays[i].Mountpoints = nil
	}
	m.DMVolumes = slices.Clone(rescue.DMVolumes)
	for i := range m.DMVolumes {
		m.DMVolumes[i].Mountpoints = nil
	}
	m.Tools = map[string]bool{}
	// Every NixOS system has these (nixpkgs nixos/modules/config/system-path.nix
	// and the installer profile's nixos-install-tools).
	for _, t := range []string{"lsblk", "blkid", "ip", "curl", "tar", "sha256sum", "ssh-keygen", "udevadm", "lvm", "lvs", "vgchange", "wipefs", "mkswap",
		"nixos-generate-config", "nixos-install", "nix-channel", "nixos-enter", "nix", "nix-instantiate", "nix-build"} {
		m.Tools[t] = true
	}
	// The partitioning and storage tools are what the image table says; an
	// image outside the table is given them all, as the spec was not
	// checked against it.
	for _, t := range []string{"parted", "sgdisk", "mkfs.ext4", "mkfs.vfat", "zpool", "zfs", "mdadm", "efibootmgr", "cryptsetup"} {
		m.Tools[t] = !p.Kexec.ImageKnown || slices.Contains(p.Kexec.Image.Tools, t)
	}
	if !m.Tools["mdadm"] {
		// Without mdadm and its udev rules nothing assembles the old arrays:
		// their members are only partitions with an md superblock.
		var arrays []string
		for _, md := range m.MDArrays {
			arrays = append(arrays, md.Name)
		}
		m.MDArrays = nil
		drop := func(holders []string) []string {
			return slices.DeleteFunc(slices.Clone(holders), func(h string) bool { return slices.Contains(arrays, h) })
		}
		for i := range m.Disks {
			d := &m.Disks[i]
			d.Holders = drop(d.Holders)
			for j := range d.Partitions {
				d.Partitions[j].Holders = drop(d.Partitions[j].Holders)
			}
		}
	}
	return &m
}

// InstallerVersions are the Nix and ZFS versions the simulated installer
// reports: the lowest the image table allows (the release's own needs for
// an image outside the table), as "major.minor.0".
func InstallerVersions(p *plan.Plan) map[string]string {
	nix, zfs := p.Kexec.Image.Nix.Min, p.Kexec.Image.ZFS.Min
	if !p.Kexec.ImageKnown {
		nix, zfs = "2.18", p.Release.ZFS
		if p.Release.MinNix != "" && !plan.VersionLess(p.Release.MinNix, nix) {
			nix = p.Release.MinNix
		}
	}
	return map[string]string{"nix": nix + ".0", "zfs": zfs + ".0"}
}

// kexecRun is the stand-in tarball's kexec/run: what the table says of the
// image, in the lines rescue-bootstrap.sh reads.
func (s *simulator) kexecRun() string {
	return plan.StandInKexecRunFor(s.plan.Kexec, "# nixplan simulate: kexec/run of "+orThis(s.plan.Kexec.Tag))
}

// consolePassword is what simulate types when a script asks for the
// console password.
const consolePassword = "simulated-console-password"

// OperatorInput is what simulate types into kexec-install.sh, in the order
// it asks: the host name before the erase, then, before the install
// detaches, the encryption passphrase twice and the console password twice,
// as far as the plan asks for them.
func OperatorInput(p *plan.Plan) string {
	answer := p.Host.Name + "\n"
	if p.Encryption != nil {
		answer += encryptionPassphrase + "\n" + encryptionPassphrase + "\n"
	}
	if p.ConsolePassword {
		answer += consolePassword + "\n" + consolePassword + "\n"
	}
	return answer
}

// encryptionPassphrase is what simulate types when kexec-install.sh asks for
// the encryption passphrase: a stand-in, like the console password.
const encryptionPassphrase = "simulated-encryption-passphrase"

// firstPID is the PID the first simulated script gets ($BASHPID); each run
// after it gets the next one.
const firstPID = 4242

// simulator holds what both scripts' runs share.
type simulator struct {
	plan     *plan.Plan
	bundle   *plan.Bundle
	tarball  []byte
	standIns map[string]string // sha256 of a stand-in's bytes -> the sha256 it stands for
	kexecd   bool
	// runs counts the script runs so far; detached are the runs started
	// with setsid, in order.
	runs     int
	detached []ScriptRun
}

// baseEnv is the environment every simulated script starts with, as root
// logged in by SSH; /proc/self/environ shows it.
var baseEnv = []string{
	"HOME=" + simulatedHome, "USER=root", "LOGNAME=root", "LC_ALL=C", "TMPDIR=/tmp",
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}

// seed makes the file system a script starts with: the machine's files,
// /proc/mounts from the fake's mounts, the bundle in /root, and files carried
// over from the rescue system.
func (s *simulator) seed(f *FakeMachine, carried map[string][]byte) *simFS {
	v := newSimFS()
	for name, data := range f.FakeFiles() {
		if strings.HasSuffix(name, "/") {
			v.mkdirAll(strings.TrimSuffix(name, "/"))
			continue
		}
		v.put(name, []byte(data), 0o444)
	}
	for _, d := range []string{"/tmp", "/root", "/etc", "/var", "/dev", "/proc", "/sys", "/mnt", "/run"} {
		v.mkdirAll(d)
	}
	m := f.Machine
	v.generated["/proc/self/environ"] = func() []byte {
		return []byte(strings.Join(baseEnv, "\x00") + "\x00")
	}
	v.generated["/proc/swaps"] = func() []byte {
		var b strings.Builder
		b.WriteString("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
		for _, dev := range f.Swaps {
			if n := f.find(dev); n != nil {
				dev = n.path
			}
			fmt.Fprintf(&b, "%s\tpartition\t4194300\t\t0\t\t-2\n", dev)
		}
		return []byte(b.String())
	}
	v.generated["/proc/mounts"] = func() []byte {
		var b strings.Builder
		b.WriteString("proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\nsysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n")
		add := func(dev string, mps []string) {
			for _, mp := range mps {
				if mp != "[SWAP]" {
					fmt.Fprintf(&b, "%s %s auto rw,relatime 0 0\n", dev, mp)
				}
			}
		}
		for _, d := range m.Disks {
			add(d.Path, d.Mountpoints)
			for _, p := range d.Partitions {
				add(p.Path, p.Mountpoints)
			}
		}
		for _, md := range m.MDArrays {
			add(md.Path, md.Mountpoints)
		}
		for _, mt := range f.Mounts {
			fmt.Fprintf(&b, "%s %s %s rw,relatime 0 0\n", mt.Source, mt.Target, mt.FSType)
		}
		return []byte(b.String())
	}
	for _, file := range s.bundle.Files {
		v.put(path.Join(simulatedHome, file.Name), file.Data, fs.FileMode(file.Mode))
	}
	// The description lists root's login keys by fingerprint only: a key of
	// the spec with that fingerprint is written as itself, any other as a
	// comment line that stands for it.
	if len(carried) == 0 && len(m.AuthorizedKeys) > 0 {
		files := map[string]*bytes.Buffer{}
		for _, k := range m.AuthorizedKeys {
			line := fmt.Sprintf("# a key with fingerprint %s (%s) stands here", k.Fingerprint, k.Comment)
			for _, want := range s.plan.AuthorizedKeys {
				if fp, err := machine.KeyFingerprint(want); err == nil && fp == k.Fingerprint {
					line = want
				}
			}
			if files[k.File] == nil {
				files[k.File] = &bytes.Buffer{}
			}
			files[k.File].WriteString(line + "\n")
		}
		for name, b := range files {
			v.put(name, b.Bytes(), 0o600)
		}
	}
	for name, data := range carried {
		v.put(name, data, 0o600)
	}
	return v
}

// scriptSim is one script's run.
type scriptSim struct {
	*simulator
	name  string
	fake  *FakeMachine
	fs    *simFS
	run   *ScriptRun
	runFn [2]uint // lines of the script's run function

	mu     sync.Mutex // guards run, fake and err: pipelines call handlers concurrently
	err    error
	stdout lockedBuffer
	stderr lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// scriptCall is one script to run: which, where, with what.
type scriptCall struct {
	name, system string
	fake         *FakeMachine
	fs           *simFS
	args         []string
	stdin        string
	// path is how the script is started ($0 and BASH_SOURCE): its name, as
	// `bash -p NAME` in /root, when empty.
	path string
	// detached: started by setsid, its output written to stdout and stderr
	// (the log) as well as kept.
	detached       bool
	stdout, stderr io.Writer
}

func (s *simulator) runScript(c scriptCall) (*ScriptRun, error) {
	name, fake, v, args, stdin := c.name, c.fake, c.fs, c.args, c.stdin
	file := s.bundle.File(name)
	if file == nil {
		return nil, fmt.Errorf("the bundle has no %s", name)
	}
	tree, err := plan.ScriptTree(name, file.Data)
	if err != nil {
		return nil, err
	}
	if c.path == "" {
		c.path = name
	}
	// The tree is shared; its copy only names the script as it was started.
	prog := *tree
	prog.Name = c.path
	ss := &scriptSim{simulator: s, name: name, fake: fake, fs: v,
		run: &ScriptRun{Script: name, Args: args, Stdin: stdin, System: c.system, Detached: c.detached, Phases: []Phase{{}}}}
	if ss.run.Args == nil {
		ss.run.Args = []string{}
	}
	// The scripts define run at the top level (templates.go).
	for _, st := range prog.Stmts {
		if fn, ok := st.Cmd.(*syntax.FuncDecl); ok && fn.Name.Value == "run" {
			ss.runFn = [2]uint{fn.Pos().Line(), fn.End().Line()}
		}
	}
	if ss.runFn[0] == 0 {
		return nil, &Error{Script: name, Line: 1, Msg: "no run function at the top level: commands that change the machine could not be told apart"}
	}
	parentWrote := v.wrote
	v.wrote = func(p string, data []byte, note string) {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		st := Step{Wrote: &WrittenFile{Path: p, Size: int64(len(data)), SHA256: sha256Hex(data), Note: note}}
		// A file written again and again with nothing in between (a log a
		// line at a time) shows once, as it was last.
		ph := &ss.run.Phases[len(ss.run.Phases)-1]
		if n := len(ph.Steps); n > 0 && ph.Steps[n-1].Wrote != nil && ph.Steps[n-1].Wrote.Path == p {
			ph.Steps[n-1] = st
			return
		}
		ss.addStep(st)
	}
	// A detached run returns to the run that started it.
	defer func() { v.wrote = parentWrote }()

	s.runs++
	env := expand.ListEnviron(append(slices.Clone(baseEnv),
		// bash sets BASH_SOURCE and BASHPID; the interpreter does not.
		"BASH_SOURCE="+c.path, fmt.Sprintf("BASHPID=%d", firstPID+s.runs-1))...)
	var stdout, stderr io.Writer = &ss.stdout, &ss.stderr
	if c.detached {
		stdout, stderr = io.MultiWriter(c.stdout, &ss.stdout), io.MultiWriter(c.stderr, &ss.stderr)
	}
	r, err := interp.New(
		interp.Env(env),
		interp.StdIO(strings.NewReader(stdin), stdout, stderr),
		interp.CallHandler(ss.call),
		interp.ExecHandlers(func(interp.ExecHandlerFunc) interp.ExecHandlerFunc { return ss.exec }),
		interp.OpenHandler(func(ctx context.Context, p string, flag int, _ os.FileMode) (io.ReadWriteCloser, error) {
			return v.open(abs(interp.HandlerCtx(ctx).Dir, p), flag)
		}),
		interp.StatHandler(func(ctx context.Context, p string, _ bool) (fs.FileInfo, error) {
			return v.stat(abs(interp.HandlerCtx(ctx).Dir, p))
		}),
		interp.AccessHandler(func(ctx context.Context, p string, mode interp.AccessMode) error {
			info, err := v.stat(abs(interp.HandlerCtx(ctx).Dir, p))
			if err != nil {
				return err
			}
			if mode&interp.AccessExec != 0 && !info.IsDir() && info.Mode()&0o111 == 0 {
				return &os.PathError{Op: "access", Path: p, Err: fs.ErrPermission}
			}
			return nil
		}),
		interp.ReadDirHandler2(func(ctx context.Context, p string) ([]fs.DirEntry, error) {
			return v.readDir(abs(interp.HandlerCtx(ctx).Dir, p))
		}),
	)
	if err != nil {
		return nil, err
	}
	r.Dir = simulatedHome
	r.Params = args
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = r.Run(ctx, &prog)
	ss.mu.Lock()
	engineErr := ss.err
	ss.mu.Unlock()
	if engineErr != nil {
		return nil, engineErr
	}
	status := 0
	if err != nil {
		code, ok := interp.IsExitStatus(err)
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		status = int(code)
	}
	run := ss.run
	run.ExitStatus = status
	run.Output = ss.stdout.String()
	run.Errors = ss.stderr.String()
	if len(run.Phases[0].Steps) == 0 && run.Phases[0].Name == "" && len(run.Phases) > 1 {
		run.Phases = run.Phases[1:]
	}
	// die prints "NAME: error: MSG" and "NAME: hint: HINT" lines.
	for _, line := range strings.Split(run.Errors+run.Output, "\n") {
		if msg, ok := strings.CutPrefix(line, name+": error: "); ok && run.Message == "" {
			run.Message = msg
		} else if hint, ok := strings.CutPrefix(line, name+": hint: "); ok && run.Message != "" {
			run.Hints = append(run.Hints, hint)
		}
	}
	if status != 0 && run.Message == "" {
		// No die: a command failed under set -e; its last words say why.
		run.Message = fmt.Sprintf("a command failed (exit status %d)", status)
		for _, out := range []string{run.Errors, run.Output} {
			if lines := textLines(out); len(lines) > 0 {
				run.Message = fmt.Sprintf("a command failed (exit status %d): %s", status, lines[len(lines)-1])
				break
			}
		}
	}
	if run.Hints == nil {
		run.Hints = []string{}
	}
	return run, nil
}

// addStep appends to the current phase; the caller holds ss.mu.
func (ss *scriptSim) addStep(st Step) {
	ph := &ss.run.Phases[len(ss.run.Phases)-1]
	ph.Steps = append(ph.Steps, st)
}

// fail records the first error that stops the simulation.
func (ss *scriptSim) fail(line uint, format string, args ...any) error {
	err := &Error{Script: ss.name, Line: int(line), Msg: fmt.Sprintf(format, args...)}
	ss.mu.Lock()
	if ss.err == nil {
		ss.err = err
	}
	ss.mu.Unlock()
	return err
}

// call sees every simple command, builtins and functions included, after
// expansion: phase markers, the commands given to `run`, and `command -v`.
func (ss *scriptSim) call(ctx context.Context, args []string) ([]string, error) {
	hc := interp.HandlerCtx(ctx)
	line := hc.Pos.Line()
	if name, ok := phaseMarker(args); ok {
		ss.mu.Lock()
		ss.run.Phases = append(ss.run.Phases, Phase{Name: name})
		ss.mu.Unlock()
		return args, nil
	}
	switch args[0] {
	case "run":
		if len(args) < 2 {
			return args, nil
		}
		cmd := args[1:]
		quoted, err := quoteArgs(cmd)
		if err != nil {
			return nil, ss.fail(line, "%v", err)
		}
		ss.mu.Lock()
		ss.addStep(Step{Line: int(line), Argv: slices.Clone(cmd), Command: quoted, ChangesMachine: ChangesMachine(cmd)})
		ss.mu.Unlock()
	case "command":
		if len(args) >= 2 && args[1] == "-v" {
			// `command -v` looks in the real PATH: answer from the machine.
			if len(args) != 3 {
				return nil, ss.fail(line, "command -v with %d names; simulate answers one", len(args)-2)
			}
			if ss.present(args[2]) {
				return []string{"printf", "%s\n", "/usr/bin/" + args[2]}, nil
			}
			return []string{"false"}, nil
		}
	case "type", "hash", "which", "exec", "source", ".", "eval", "trap":
		if args[0] == "trap" && (len(args) == 1 || slices.Contains([]string{"EXIT", "ERR"}, args[len(args)-1])) {
			return args, nil
		}
		return nil, ss.fail(line, "%s is not something the simulation plays", args[0])
	}
	return args, nil
}

// phaseMarker recognises the line a script prints at the start of a phase:
// "==> NAME", printed by printf '==> %s\n' NAME (the scripts' begin_phase).
func phaseMarker(args []string) (string, bool) {
	if args[0] != "printf" || len(args) != 3 || args[1] != `==> %s\n` {
		return "", false
	}
	name := args[2]
	return name, name != "" && !strings.ContainsAny(name, " \n")
}

func quoteArgs(argv []string) (string, error) {
	words := make([]string, len(argv))
	for i, a := range argv {
		q, err := plan.ShellQuote(a)
		if err != nil {
			return "", err
		}
		words[i] = q
	}
	return strings.Join(words, " "), nil
}

// present says whether a command is in the machine's PATH: the description's
// tools say for the tools they list; any other command is there when the
// simulation can play it.
func (ss *scriptSim) present(name string) bool {
	if v, ok := ss.fake.Machine.Tools[name]; ok {
		return v
	}
	return ss.fake.Handles(name) || emulated[name] != nil || filters[name]
}

// exec runs every command that is not a builtin or function.
func (ss *scriptSim) exec(ctx context.Context, args []string) error {
	hc := interp.HandlerCtx(ctx)
	line := hc.Pos.Line()
	name := path.Base(args[0])
	if strings.Contains(args[0], "/") {
		info, err := ss.fs.stat(abs(hc.Dir, args[0]))
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			fmt.Fprintf(hc.Stderr, "bash: %s: No such file or directory\n", args[0])
			return interp.ExitStatus(127)
		}
	} else if has, listed := ss.fake.Machine.Tools[name]; listed && !has {
		// The description says the machine lacks it.
		fmt.Fprintf(hc.Stderr, "bash: %s: command not found\n", args[0])
		return interp.ExitStatus(127)
	}
	if ChangesMachine(args) {
		if line < ss.runFn[0] || line > ss.runFn[1] {
			quoted, err := quoteArgs(args)
			if err != nil {
				return ss.fail(line, "%v", err)
			}
			ss.mu.Lock()
			ss.addStep(Step{Line: int(line), Argv: slices.Clone(args), Command: quoted, ChangesMachine: true, OutsideRun: true})
			ss.mu.Unlock()
		}
		if err := ss.sideEffects(hc, args); err != nil {
			return err
		}
	}
	var status int
	switch {
	case ss.fake.Handles(name):
		ss.mu.Lock()
		status = ss.fake.Exec(args, hc.Stdout, hc.Stderr)
		ss.mu.Unlock()
	case emulated[name] != nil:
		var err error
		status, err = emulated[name](&cmdEnv{ss: ss, hc: hc, line: line}, args)
		if err != nil {
			return err
		}
	case filters[name]:
		var err error
		status, err = ss.filter(hc, line, args)
		if err != nil {
			return err
		}
	default:
		return ss.fail(line, "%s is a command the simulation does not know; teach plan/simulate/simulate_commands.go what it does, or keep it out of the templates", args[0])
	}
	if status != 0 {
		return interp.ExitStatus(uint8(status))
	}
	return nil
}

// sideEffects puts into the file system what commands that change the
// machine leave there for a later step to find.
func (ss *scriptSim) sideEffects(hc interp.HandlerContext, args []string) error {
	name := path.Base(args[0])
	switch name {
	case "run":
		ss.kexecd = true
	case "curl", "wget":
		out := optionValue(args, "--output", "-o", "--output-document", "-O")
		if out == "" || out == "/dev/null" {
			return nil
		}
		p := abs(hc.Dir, out)
		// The kexec tarball's stand-in, or one made for the URL.
		data := slices.Clone(ss.tarball)
		if url := args[len(args)-1]; url != ss.plan.Kexec.URL {
			data = standInFor(url)
		}
		if err := ss.fs.write(p, data, 0o644); err != nil {
			fmt.Fprintf(hc.Stderr, "%s: %v\n", name, err)
			return nil
		}
		ss.mu.Lock()
		ss.addStep(Step{Wrote: &WrittenFile{Path: p, Size: int64(len(data)), SHA256: ss.sha256Of(data), Note: "a stand-in for the download"}})
		ss.mu.Unlock()
	case "ssh-keygen":
		key := optionValue(args, "-f")
		if key == "" || slices.Contains(args, "-l") {
			return nil
		}
		typ := optionValue(args, "-t")
		p := abs(hc.Dir, key)
		ss.fs.write(p, []byte("nixplan simulate: a stand-in for a private host key\n"), 0o600)
		ss.fs.write(p+".pub", []byte("ssh-"+typ+" AAAAsimulated-host-key "+optionValue(args, "-C")+"\n"), 0o644)
	case "nixos-generate-config":
		root, out := optionValue(args, "--root"), optionValue(args, "--dir")
		if out == "" {
			out = "/etc/nixos"
		}
		dir := path.Join(abs(hc.Dir, root), out)
		ss.fs.mkdir(dir, true)
		ss.fs.write(dir+"/hardware-configuration.nix", []byte("# nixplan simulate: a stand-in for nixos-generate-config's output\n{ ... }: { }\n"), 0o644)
		if _, err := ss.fs.stat(dir + "/configuration.nix"); err != nil {
			ss.fs.write(dir+"/configuration.nix", []byte("# nixplan simulate: a stand-in for nixos-generate-config's output\n{ ... }: { }\n"), 0o644)
		}
	case "nix-build", "nix":
		// A build of cryptsetup (kexec-install.sh's fetch_cryptsetup) leaves
		// its out-link, and the installer has cryptsetup from then on.
		link := CryptsetupOutLink(args)
		if link == "" {
			return nil
		}
		bin := path.Join(abs(hc.Dir, link), "bin")
		ss.fs.mkdir(bin, true)
		ss.fs.write(bin+"/cryptsetup", []byte("# nixplan simulate: a stand-in for the cryptsetup built from nixpkgs\n"), 0o755)
		ss.mu.Lock()
		ss.fake.Machine.Tools["cryptsetup"] = true
		ss.mu.Unlock()
	}
	return nil
}

// sha256Of is what sha256sum prints for bytes: a stand-in's reports the hash
// it stands for.
func (s *simulator) sha256Of(b []byte) string {
	sum := sha256Hex(b)
	if pinned, ok := s.standIns[sum]; ok {
		return pinned
	}
	return sum
}

// optionValue returns the value of the first of the named options, given as
// "-o VALUE", "--output VALUE" or "--output=VALUE".
// CryptsetupOutLink is the out-link of a build of cryptsetup, the one
// kexec-install.sh's fetch_cryptsetup makes: argv of `nix-build '<nixpkgs>'
// -A cryptsetup --out-link L` or of `nix build --out-link L
// FLAKE#cryptsetup`; "" for any other command.
func CryptsetupOutLink(argv []string) string {
	built := optionValue(argv, "-A", "--attr") == "cryptsetup"
	for _, a := range argv[1:] {
		if strings.HasSuffix(a, "#cryptsetup") {
			built = true
		}
	}
	if !built {
		return ""
	}
	return optionValue(argv, "--out-link", "-o")
}

func optionValue(args []string, names ...string) string {
	for i := 1; i < len(args); i++ {
		for _, n := range names {
			if args[i] == n && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(args[i], n+"="); ok && strings.HasPrefix(n, "--") {
				return v
			}
		}
	}
	return ""
}

// Transcript writes the simulation as text: for each script, its phases
// with their commands (script:line, then the command shell-quoted) and files
// written, then how it ended.
func (s *Simulation) Transcript(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "nixplan simulate: %s on %s\n", s.Host, s.Machine)
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, r := range s.Scripts {
		b.WriteString("\n")
		cmd := "bash -p " + r.Script
		if r.Detached {
			cmd = "bash -p " + path.Join(simulatedHome, r.Script)
		}
		if len(r.Args) > 0 {
			q, _ := quoteArgs(r.Args)
			cmd += " " + q
		}
		where := "the rescue system"
		if r.System == "installer" {
			where = "the NixOS installer"
		}
		if r.Detached {
			fmt.Fprintf(&b, "%s    (on %s, started by setsid from the run above, detached from its session; its output goes to the log)\n", cmd, where)
		} else {
			fmt.Fprintf(&b, "%s    (in /root on %s)\n", cmd, where)
		}
		for _, ph := range r.Phases {
			if ph.Name == "" {
				b.WriteString("==> (before the first phase)\n")
			} else {
				fmt.Fprintf(&b, "==> %s\n", ph.Name)
			}
			for _, st := range ph.Steps {
				switch {
				case st.Wrote != nil:
					f := st.Wrote
					if f.Size < 0 {
						fmt.Fprintf(&b, "  wrote %s (%s)\n", f.Path, f.Note)
						continue
					}
					note := ""
					if f.Note != "" {
						note = "; " + f.Note
					}
					fmt.Fprintf(&b, "  wrote %s (%d bytes, sha256 %s%s)\n", f.Path, f.Size, f.SHA256, note)
				case st.OutsideRun:
					fmt.Fprintf(&b, "  %s:%d  %s    (not through run: --dry-run would not show it)\n", r.Script, st.Line, st.Command)
				default:
					fmt.Fprintf(&b, "  %s:%d  %s\n", r.Script, st.Line, st.Command)
				}
			}
		}
		if r.ExitStatus == 0 {
			fmt.Fprintf(&b, "%s: finished (exit status 0)\n", r.Script)
			continue
		}
		fmt.Fprintf(&b, "%s: stopped %s with exit status %d\n", r.Script, wherePhase(r.StoppedIn()), r.ExitStatus)
		fmt.Fprintf(&b, "%s: error: %s\n", r.Script, r.Message)
		for _, h := range r.Hints {
			fmt.Fprintf(&b, "%s: hint: %s\n", r.Script, h)
		}
	}
	b.WriteString("\n")
	if s.ExitStatus == 0 {
		fmt.Fprintf(&b, "result: both scripts finished; %d commands change the machine\n", len(s.MachineCommands()))
	} else {
		last := s.Scripts[len(s.Scripts)-1]
		fmt.Fprintf(&b, "result: %s stopped %s (exit status %d): %s\n", last.Script, wherePhase(last.StoppedIn()), s.ExitStatus, s.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wherePhase says where a script stopped: in a phase, or in the checks
// before its first phase.
func wherePhase(name string) string {
	if name == "" {
		return "before the first phase"
	}
	return "in the " + name + " phase"
}

// standInFor is what simulate downloads in place of a URL's contents.
func standInFor(url string) []byte {
	return []byte("nixplan simulate: a stand-in for " + url + "\n")
}

func orThis(tag string) string {
	if tag == "" {
		return "this image"
	}
	return tag
}
