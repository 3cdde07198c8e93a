package plan_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
)

// harnessHostSeed is the seed of the ed25519 host key the harness's
// ssh-keygen makes, so that what the install derives from it can be known.
var harnessHostSeed = sha256.Sum256([]byte("nixplan harness host key"))

// sshEd25519Line is the authorized_keys form of the public key of seed.
func sshEd25519Line(seed []byte, comment string) string {
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	var wire []byte
	for _, field := range [][]byte{[]byte("ssh-ed25519"), pub} {
		wire = binary.BigEndian.AppendUint32(wire, uint32(len(field)))
		wire = append(wire, field...)
	}
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(wire) + " " + comment
}

// bech32 encodes data with the prefix hrp (BIP 173), for the identities
// age-keygen reads.
func bech32(hrp string, data []byte) string {
	const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	var groups []byte
	acc, bits := 0, 0
	for _, b := range data {
		acc, bits = acc<<8|int(b), bits+8
		for bits >= 5 {
			bits -= 5
			groups = append(groups, byte(acc>>bits&31))
		}
		acc &= 1<<bits - 1
	}
	if bits > 0 {
		groups = append(groups, byte(acc<<(5-bits)&31))
	}
	var values []byte
	for _, c := range hrp {
		values = append(values, byte(c>>5))
	}
	values = append(values, 0)
	for _, c := range hrp {
		values = append(values, byte(c&31))
	}
	values = append(append(values, groups...), 0, 0, 0, 0, 0, 0)
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range gen {
			if top>>i&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	chk ^= 1
	out := []byte(hrp + "1")
	for _, g := range groups {
		out = append(out, charset[g])
	}
	for i := 5; i >= 0; i-- {
		out = append(out, charset[chk>>(5*i)&31])
	}
	return string(out)
}

// ageRecipientOf is the age recipient of the host whose ed25519 key has
// seed, as age itself computes it: age-keygen -y of the X25519 identity
// whose scalar is the one Ed25519 derives from the seed (sha512(seed)[:32],
// RFC 8032 section 5.1.5), the identity ssh-to-age -private-key makes
// (Mic92/ssh-to-age 2643a7f, convert.go). It also checks that crypto/ecdh
// agrees, which is what makes that the recipient of the public key.
func ageRecipientOf(t *testing.T, ageKeygen string, seed []byte) string {
	t.Helper()
	h := sha512.Sum512(seed)
	scalar := h[:32]
	identity := strings.ToUpper(bech32("age-secret-key-", scalar))
	cmd := exec.Command(ageKeygen, "-y")
	cmd.Stdin = strings.NewReader(identity + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("age-keygen -y: %v\n%s", err, out)
	}
	recipient := strings.TrimSpace(string(out))
	priv, err := ecdh.X25519().NewPrivateKey(scalar)
	if err != nil {
		t.Fatal(err)
	}
	if mine := bech32("age", priv.PublicKey().Bytes()); mine != recipient {
		t.Fatalf("age-keygen -y says %s, crypto/ecdh %s", recipient, mine)
	}
	return recipient
}

// ageFunctions are kexec-install.sh's age_recipient and the field
// arithmetic it uses, as rendered.
func ageFunctions(t *testing.T) string {
	t.Helper()
	script := string(renderFile(t, "../examples/ovh-kimsufi.toml").File(plan.KexecInstallFile).Data)
	start := strings.Index(script, "# age_recipient PUB")
	last := strings.Index(script, "\nfe_reduce() {")
	if start < 0 || last < start {
		t.Fatal("kexec-install.sh has no age_recipient and fe_reduce")
	}
	end := last + strings.Index(script[last:], "\n}\n") + 3
	return script[start:end]
}

// TestAgeRecipient runs kexec-install.sh's age_recipient under bash on
// ed25519 host keys and compares what it prints with what age-keygen -y
// prints for the same host's identity; a key of another type or a line
// that is no key prints nothing and fails.
func TestAgeRecipient(t *testing.T) {
	bash := needTool(t, "bash", "bash")
	ageKeygen := needTool(t, "age-keygen", "age")
	functions := ageFunctions(t)
	dir := t.TempDir()
	run := func(line string) (string, error) {
		pub := filepath.Join(dir, "ssh_host_ed25519_key.pub")
		if err := os.WriteFile(pub, []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bash, "-c", "set -euo pipefail\n"+functions+"\nage_recipient \"$1\"", "bash", pub).Output()
		return string(out), err
	}
	seeds := [][]byte{make([]byte, 32), harnessHostSeed[:]}
	for i := range 6 {
		s := sha256.Sum256([]byte{byte(i)})
		seeds = append(seeds, s[:])
	}
	for _, seed := range seeds {
		line := sshEd25519Line(seed, "root@host")
		want := ageRecipientOf(t, ageKeygen, seed)
		if got, err := run(line); err != nil || got != want+"\n" {
			t.Errorf("age_recipient of %s: %q (%v), want %s", line, got, err, want)
		}
	}
	for _, line := range []string{
		"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDK root@host",
		"ssh-ed25519 AAAAharness-host-key root@host",
		"ssh-ed25519 " + base64.StdEncoding.EncodeToString([]byte("\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x1fshort")),
	} {
		if out, err := run(line); err == nil || out != "" {
			t.Errorf("age_recipient of %q: %q, %v; want nothing and a failure", line, out, err)
		}
	}
}
