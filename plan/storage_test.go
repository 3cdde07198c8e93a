package plan_test

import (
	"os"
	"regexp"
	"testing"
)

// TestStoragePlanIdentity: the storage plan's hash follows what the
// partition and format phases carry out and nothing else, and the pool
// comment derived from it is one OpenZFS accepts (32 printable characters).
func TestStoragePlanIdentity(t *testing.T) {
	base, _ := renderText(t, "host.toml", exampleSpec(t))
	comment := regexp.MustCompile(`^nixplan-[0-9a-f]{24}$`)
	if !comment.MatchString(base.Storage.PoolComment) || len(base.Storage.PoolComment) > 32 {
		t.Errorf("pool comment %q is not nixplan- and 24 hex digits within 32 characters", base.Storage.PoolComment)
	}
	for _, c := range []struct {
		name  string
		edits []string
		same  bool
	}{
		{"another host name", []string{`name = "blog-demo"`, `name = "blog-demo2"`}, true},
		{"another nameserver", []string{`nameservers = ["8.8.8.8"]`, `nameservers = ["9.9.9.9"]`}, true},
		{"another pool name", []string{`pool = "rpool"`, `pool = "tank"`}, false},
		{"another label", []string{`label = "msdos"`, `label = "gpt"`}, false},
		{"another boot size", []string{`boot_size = "511MiB"`, `boot_size = "1GiB" `}, false},
		{"swap", []string{`boot_size = "511MiB"`, "boot_size = \"511MiB\"\nswap_size = \"4GiB\""}, false},
		{"another disk name", []string{`devices = ["/dev/sda"]`, `devices = ["/dev/sdb"]`}, false},
	} {
		p, _ := renderText(t, "host.toml", exampleSpec(t, c.edits...))
		if got := p.Storage.PlanSHA256 == base.Storage.PlanSHA256; got != c.same {
			t.Errorf("%s: same storage plan %v, want %v", c.name, got, c.same)
		}
		if got := p.Storage.PoolComment == base.Storage.PoolComment; got != c.same {
			t.Errorf("%s: same pool comment %v, want %v", c.name, got, c.same)
		}
	}
	data, err := os.ReadFile("../examples/generic-ext4.toml")
	if err != nil {
		t.Fatal(err)
	}
	ext4, _ := renderText(t, "host.toml", string(data))
	if ext4.Storage.PoolComment != "" || ext4.Storage.PlanSHA256 == "" {
		t.Errorf("ext4 layout: pool comment %q, plan %q; want none and a plan", ext4.Storage.PoolComment, ext4.Storage.PlanSHA256)
	}
}
