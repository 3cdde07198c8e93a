package main

// install.sh in the VM suite: the bundle's driver runs on this machine as on
// the operator's laptop, with ssh and scp, the operator's key in an agent,
// and nixplan on PATH for its check --facts.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	nixplanBinOnce sync.Once
	nixplanBinDir  string
	nixplanBinErr  error
)

// nixplanBin builds nixplan once per run, for install.sh's PATH.
func nixplanBin() (string, error) {
	nixplanBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nixplan-vm-bin")
		if err != nil {
			nixplanBinErr = err
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "nixplan"), ".").CombinedOutput()
		if err != nil {
			nixplanBinErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		nixplanBinDir = dir
	})
	return nixplanBinDir, nixplanBinErr
}

// rescueKey is the rescue system's ed25519 host key, as the operator would
// read it from the provider (install.sh --rescue-key).
func (v *vm) rescueKey() (string, error) {
	for _, k := range v.imgs.HostKeys {
		if strings.HasPrefix(k, "ssh-ed25519 ") {
			return k, nil
		}
	}
	return "", fmt.Errorf("the rescue image has no ed25519 host key: %v", v.imgs.HostKeys)
}

// runDriver runs the bundle's install.sh from specDir against the VM, with
// input on its standard input (no terminal), and returns what it printed.
// The operator's key is in an ssh-agent of the run's own, which is how
// install.sh expects a key with a passphrase to be typed once.
func (v *vm) runDriver(ctx context.Context, bundle, specDir, input string) (string, error) {
	bin, err := nixplanBin()
	if err != nil {
		return "", err
	}
	key, err := v.rescueKey()
	if err != nil {
		return "", err
	}
	sock := filepath.Join(v.dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		return "", fmt.Errorf("ssh-agent: %v", err)
	}
	defer func() { agent.Process.Kill(); agent.Wait() }()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 50 {
			return "", fmt.Errorf("ssh-agent made no socket %s", sock)
		}
		time.Sleep(100 * time.Millisecond)
	}
	env := append(os.Environ(), "SSH_AUTH_SOCK="+sock, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "TMPDIR="+v.dir)
	add := exec.Command("ssh-add", "-q", v.imgs.ClientKey)
	add.Env = env
	if out, err := add.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ssh-add: %v\n%s", err, out)
	}
	args := []string{filepath.Join(bundle, "install.sh"), "--address", "127.0.0.1", "--port", strconv.Itoa(v.port),
		"--rescue-key", key, "--wait", "300"}
	cmd := exec.CommandContext(ctx, "sh", args...)
	// From the spec's folder, as the README's workflow runs it: install.sh
	// finds the spec there for its nixplan check --facts.
	cmd.Dir = specDir
	cmd.Env = env
	cmd.Stdin = strings.NewReader(input)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	fmt.Fprintf(v.transcript, "$ sh install.sh %s\n", strings.Join(args[1:], " "))
	err = cmd.Run()
	fmt.Fprintf(v.transcript, "%s(install.sh: %v)\n", out.String(), err)
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("install.sh did not end in time: %v\n%s", ctx.Err(), lastLines(out.String(), 60))
	}
	return out.String(), err
}

// checkDriverState holds what install.sh kept beside the bundle: the facts,
// and one pinned key per stage, the installer's the rescue system's and the
// installed system's a new one.
func (v *vm) checkDriverState(bundle, host string) error {
	state := bundle + ".install"
	if st, err := os.Stat(filepath.Join(state, "facts.json")); err != nil || st.Size() == 0 {
		return fmt.Errorf("install.sh kept no facts.json in %s: %v", state, err)
	}
	keys, kh, err := pinnedKeys(bundle)
	if err != nil {
		return err
	}
	rescue, err := v.rescueKey()
	if err != nil {
		return err
	}
	switch {
	case keys[host+"-rescue"] != rescue:
		return fmt.Errorf("known_hosts pins %q for the rescue system, not its key %q:\n%s", keys[host+"-rescue"], rescue, kh)
	case keys[host+"-installer"] != rescue:
		return fmt.Errorf("known_hosts pins %q for the installer, not the rescue system's key it keeps:\n%s", keys[host+"-installer"], kh)
	case keys[host+"-installed"] == "" || keys[host+"-installed"] == rescue:
		return fmt.Errorf("known_hosts pins no key of its own for the installed system:\n%s", kh)
	}
	return nil
}

// checkPinnedInstalledKey holds the key install.sh pinned for the installed
// system to the one on its disk: the first login after the reboot meets it.
func (v *vm) checkPinnedInstalledKey(ctx context.Context, rootDevice, bundle, host string) error {
	keys, _, err := pinnedKeys(bundle)
	if err != nil {
		return err
	}
	pinned := keys[host+"-installed"]
	if _, err := v.must(ctx, "mkdir -p /run/check && mount -o ro "+rootDevice+" /run/check"); err != nil {
		return err
	}
	defer v.must(context.Background(), "umount /run/check")
	pub, err := v.must(ctx, "cat /run/check/etc/ssh/ssh_host_ed25519_key.pub")
	if err != nil {
		return err
	}
	f := strings.Fields(pub)
	if len(f) < 2 || f[0]+" "+f[1] != pinned {
		return fmt.Errorf("install.sh pinned %q for the installed system; its disk holds %q", pinned, strings.TrimSpace(pub))
	}
	return nil
}

// pinnedKeys reads the known_hosts install.sh keeps beside the bundle: each
// alias's "TYPE KEY", and the file's text for messages.
func pinnedKeys(bundle string) (map[string]string, string, error) {
	kh, err := os.ReadFile(filepath.Join(bundle+".install", "known_hosts"))
	if err != nil {
		return nil, "", err
	}
	keys := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(kh)), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, "", fmt.Errorf("known_hosts line %q is not ALIAS TYPE KEY", line)
		}
		keys[f[0]] = f[1] + " " + f[2]
	}
	return keys, string(kh), nil
}
