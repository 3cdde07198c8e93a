package plan

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

// kexec/run is plain sh, so it can be read cheaply where the image's other
// facts (the route restorer lives in the compressed initrd's store) cannot.
// What it shows, and how both rescue-bootstrap.sh and `render
// --kexec-tarball` read it:
//   - the login keys it copies: the grep of extractPubKeys;
//   - whether it parses --kexec-extra-flags;
//   - init=/nix/store/…-nixos-system-HOSTNAME-RELEASE.DATE.REV/init: the
//     NixOS release and the nixpkgs date the image was built from, which
//     bound when it was built, and so whether it restores on-link gateways.

// The grep lines of kexec-run.sh's extractPubKeys (nixos-images,
// nix/kexec-installer/kexec-run.sh): ssh-* keys only before 7d89d7c
// (2023-11-08), ssh-, ecdsa- and sk- keys since.
const (
	KeyRuleSSH = `grep -o '\(ssh-[^ ]* .*\)'`
	KeyRuleAll = `grep -o '\(\(ssh\|ecdsa\|sk\)-[^ ]* .*\)'`
	// ExtraFlagsCase is the case label of kexec-run.sh's argument loop since
	// e2fd329 (2024-06-05).
	ExtraFlagsCase = "--kexec-extra-flags)"
)

// KexecTarballFiles are what a nixos-images kexec tarball holds
// (nix/kexec-installer/module.nix, kexecTarball).
var KexecTarballFiles = []string{"kexec/run", "kexec/bzImage", "kexec/initrd", "kexec/kexec", "kexec/ip"}

// initLabelRE finds the release and nixpkgs date in kexec/run's init path.
var initLabelRE = regexp.MustCompile(`nixos-system-[^/"']*-([0-9]{2}\.[0-9]{2})(pre[^./"']*)?\.([0-9]{8})\.[^/"']*/init`)

// KexecRun is what an image's kexec/run says about it. Empty fields are
// facts it does not show.
type KexecRun struct {
	// KeyPrefixes are the key types it copies; nil when no known rule is found.
	KeyPrefixes []string
	ExtraFlags  bool
	// Release and NixpkgsDate (YYYYMMDD) come from the init path.
	Release, NixpkgsDate string
}

// ReadKexecRun reads the facts from the text of kexec/run.
func ReadKexecRun(text string) KexecRun {
	var r KexecRun
	switch {
	case strings.Contains(text, KeyRuleAll):
		r.KeyPrefixes = []string{"ssh-", "ecdsa-sha2-", "sk-"}
	case strings.Contains(text, KeyRuleSSH):
		r.KeyPrefixes = []string{"ssh-"}
	}
	r.ExtraFlags = strings.Contains(text, ExtraFlagsCase)
	if m := initLabelRE.FindStringSubmatch(text); m != nil {
		r.Release, r.NixpkgsDate = m[1], m[3]
	}
	return r
}

// RestoresOnLinkGateway: the nixpkgs date proves a build from a tree with
// GatewayOnLink (see onLinkSince).
func (r KexecRun) RestoresOnLinkGateway() bool {
	return r.NixpkgsDate != "" && r.NixpkgsDate >= onLinkSince
}

// Describe says in a line what kexec/run shows.
func (r KexecRun) Describe() string {
	var parts []string
	if r.Release != "" {
		parts = append(parts, fmt.Sprintf("NixOS %s, nixpkgs of %s", r.Release, r.NixpkgsDate))
	} else {
		parts = append(parts, "no NixOS version in its init path")
	}
	if r.KeyPrefixes != nil {
		parts = append(parts, "copies "+strings.Join(r.KeyPrefixes, "*, ")+"* keys")
	} else {
		parts = append(parts, "copies keys by a rule nixplan does not know")
	}
	if r.ExtraFlags {
		parts = append(parts, "honours --kexec-extra-flags")
	} else {
		parts = append(parts, "ignores --kexec-extra-flags")
	}
	return strings.Join(parts, "; ")
}

// ImageProblem is a fact of the image that the spec depends on and kexec/run
// contradicts or does not show.
type ImageProblem struct{ Fact, Fix string }

// Check returns what in kexec/run contradicts the plan, or leaves unknown a
// fact whose wrong guess is a lockout after the kexec.
func (r KexecRun) Check(p *Plan) []ImageProblem {
	var out []ImageProblem
	switch {
	case r.KeyPrefixes == nil:
		out = append(out, ImageProblem{"kexec/run copies login keys by a rule nixplan does not know, so it cannot tell whether yours survive the kexec",
			"use a nixos-images kexec tarball, or read kexec/run's extractPubKeys yourself before you run it by hand"})
	case !slices.ContainsFunc(p.AuthorizedKeys, func(k string) bool {
		return slices.ContainsFunc(r.KeyPrefixes, func(pre string) bool { return strings.HasPrefix(k, pre) })
	}):
		out = append(out, ImageProblem{fmt.Sprintf("kexec/run copies only %s keys into the installer and the spec has none: you would be locked out after the kexec", strings.Join(r.KeyPrefixes, "*, ")+"*"),
			"add an ssh-ed25519 key to ssh.authorized_keys, or use an image whose kexec/run copies your key type"})
	}
	if p.Kexec.ExtraFlags != "" && !r.ExtraFlags {
		out = append(out, ImageProblem{"kexec/run does not parse --kexec-extra-flags, so kexec.extra_flags would be ignored",
			"leave kexec.extra_flags out, or use an image built since June 2024"})
	}
	if p.Network.IPv4.OnLink {
		switch {
		case r.NixpkgsDate == "":
			out = append(out, ImageProblem{"kexec/run's init path names no nixpkgs date, so nixplan cannot tell whether the installer restores the on-link gateway " + p.Network.IPv4.Gateway,
				"use a nixos-images tarball that restores on-link gateways (nixos-25.05 or later)"})
		case !r.RestoresOnLinkGateway():
			out = append(out, ImageProblem{fmt.Sprintf("the image was built from nixpkgs of %s, before nixos-images b62eb6e (2025-01-21) made the installer restore on-link gateways: %s would be unreachable after the kexec", r.NixpkgsDate, p.Network.IPv4.Address),
				"use a nixos-images tarball built since then (nixos-25.05 or later)"})
		}
	}
	return out
}

// ReadKexecTarball reads kexec/run from a kexec installer tarball and checks
// that the tarball has the layout kexec/run expects.
func ReadKexecTarball(path string) (KexecRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return KexecRun{}, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return KexecRun{}, fmt.Errorf("%s: not a gzip tarball: %w", path, err)
	}
	tr := tar.NewReader(gz)
	var run []byte
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return KexecRun{}, fmt.Errorf("%s: %w", path, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		seen[name] = true
		if name == "kexec/run" {
			if run, err = io.ReadAll(io.LimitReader(tr, 1<<20)); err != nil {
				return KexecRun{}, fmt.Errorf("%s: kexec/run: %w", path, err)
			}
		}
	}
	var missing []string
	for _, want := range KexecTarballFiles {
		if !seen[want] {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		return KexecRun{}, fmt.Errorf("%s is not a kexec installer tarball: it has no %s", path, strings.Join(missing, ", "))
	}
	return ReadKexecRun(string(run)), nil
}

// StandInKexecRun is a kexec/run for tests and simulate: the lines nixplan
// reads, as an image with these facts has them, after a first line that a
// test may use to run something else in its place. It is not the upstream
// script; nothing in it runs.
func StandInKexecRun(first, hostname, label string, keyRule string, extraFlags bool) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	b.WriteString(first + "\n")
	b.WriteString("# A stand-in for nixos-images' kexec/run: only the lines nixplan reads.\n")
	if extraFlags {
		b.WriteString("while [ $# -gt 0 ]; do\n  case \"$1\" in\n  " + ExtraFlagsCase + "\n    kexec_extra_flags=\"$2\"\n    shift\n    ;;\n  esac\n  shift\ndone\n")
	}
	fmt.Fprintf(&b, "init=\"/nix/store/00000000000000000000000000000000-nixos-system-%s-%s/init\"\n", hostname, label)
	b.WriteString("extractPubKeys() {\n  " + keyRule + " \"$1/.ssh/authorized_keys\" >> ssh/authorized_keys || true\n}\n")
	return b.String()
}

// StandInKexecRunFor is the stand-in kexec/run of an image in the table, as
// its last asset has it; for an image outside the table, one that shows
// nothing beyond the ssh-* rule.
func StandInKexecRunFor(k Kexec, first string) string {
	if !k.ImageKnown {
		return StandInKexecRun(first, "nixos", "unknown", KeyRuleSSH, false)
	}
	rule := KeyRuleSSH
	if k.Image.Copies("ecdsa-sha2-nistp256") {
		rule = KeyRuleAll
	}
	return StandInKexecRun(first, k.Image.Hostname, k.Image.LastLabel, rule, k.Image.ExtraFlags)
}
