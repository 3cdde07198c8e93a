package plan_test

import (
	"os"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
)

// TestCheckFleetComparesAddressesAsAddresses: one IPv6 address written two
// ways is one address; distinct hosts pass.
func TestCheckFleetComparesAddressesAsAddresses(t *testing.T) {
	a, _ := renderText(t, "a.toml", strings.ReplaceAll(exampleText(t, "soyoustart-raidz"), "sys-raidz", "host-a"))
	b, _ := renderText(t, "b.toml", strings.ReplaceAll(exampleText(t, "soyoustart-raidz"), "sys-raidz", "host-b"))
	if a.Network.IPv6 == nil {
		t.Fatal("the example has no IPv6")
	}
	// Apart from the IPv6 address, make b another server.
	b.Network.IPv4.Address, b.Host.ID, b.Storage.Identity, b.Storage.Disks = "203.0.113.99", "0badcafe", nil, []string{"/dev/sda"}
	b.Network.IPv6.Address = strings.Replace(a.Network.IPv6.Address, "::", ":0:0::", 1)
	if b.Network.IPv6.Address == a.Network.IPv6.Address {
		t.Fatalf("the spelling did not change: %s", a.Network.IPv6.Address)
	}
	ps, clashes := plan.CheckFleet([]plan.FleetMember{{File: "a.toml", Plan: a}, {File: "b.toml", Plan: b}})
	if len(ps) != 1 || ps[0].Key != "network.ipv6.address" || len(clashes) != 2 {
		t.Errorf("got %v (clashes %v), want one error on network.ipv6.address", ps, clashes)
	}
	b.Network.IPv6.Address = "2001:db8:ffff::1"
	if ps, clashes := plan.CheckFleet([]plan.FleetMember{{File: "a.toml", Plan: a}, {File: "b.toml", Plan: b}}); len(ps) != 0 || len(clashes) != 0 {
		t.Errorf("distinct hosts: got %v", ps)
	}
}

func exampleText(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("../examples/" + name + ".toml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
