package main

// Pod networking. Every pod gets a network namespace of its own with one address; a bridge
// joins them, and it lives in a namespace of the test bed's too (the "host" namespace, where
// end-to-end clients run), never in the machine's own: nothing here adds an address, bridge or
// route to it. Names carry a prefix derived from the state directory, so that two test beds on
// one machine do not meet, and a restarted kubelet clears what a crashed one left. The
// kubernetes Service's IP is an address of the host namespace (apiserver.go relays it to the API
// server), as are the load balancer addresses services.go gives out, and every pod routes the
// Service range to the bridge. The bridge's address (the network's first) is the Nodes' address
// and every pod's hostIP: node ports listen there.

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

type network struct {
	prefix string
	// HostNS holds the bridge (its address is the network's first) and the e2e clients.
	HostNS string
	base   uint32
	bits   int
	// The kubernetes Service's address (on the host namespace's lo) and the Service range.
	serviceIP    string
	serviceRange string
	mu           sync.Mutex
	used         map[uint32]string // address index -> pod namespace
	next         uint32
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func newNetwork(stateDir, cidr, serviceIP, serviceRange string) (*network, error) {
	_, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	_, services, err := net.ParseCIDR(serviceRange)
	if err != nil {
		return nil, fmt.Errorf("service range: %w", err)
	}
	if sip := net.ParseIP(serviceIP); sip == nil || sip.To4() == nil || !services.Contains(sip) {
		return nil, fmt.Errorf("service IP %q is not an IPv4 address in %s", serviceIP, serviceRange)
	}
	if services.Contains(ipnet.IP) || ipnet.Contains(services.IP) {
		return nil, fmt.Errorf("the service range %s overlaps the pod network %s", serviceRange, cidr)
	}
	ones, _ := ipnet.Mask.Size()
	abs, _ := filepath.Abs(stateDir)
	sum := sha256.Sum256([]byte(abs))
	prefix := fmt.Sprintf("tb%x", sum[:3])
	n := &network{
		prefix:       prefix,
		HostNS:       prefix + "-host",
		base:         binary.BigEndian.Uint32(ipnet.IP.To4()),
		bits:         ones,
		serviceIP:    serviceIP,
		serviceRange: services.String(),
		used:         map[uint32]string{},
		next:         2,
	}
	n.clearStale()
	steps := [][]string{
		{"netns", "add", n.HostNS},
		{"-n", n.HostNS, "link", "set", "lo", "up"},
		{"-n", n.HostNS, "addr", "add", n.serviceIP + "/32", "dev", "lo"},
		// A fixed address: a bridge otherwise takes the lowest address of its ports, which
		// changes as pods come and go, and the pods' ARP entries for their gateway (the way to
		// the Service IP) then point nowhere until they expire, some 30 s of lost packets.
		{"-n", n.HostNS, "link", "add", "br0", "address", fmt.Sprintf("02:%02x:%02x:%02x:00:01", sum[0], sum[1], sum[2]), "type", "bridge"},
		{"-n", n.HostNS, "addr", "add", fmt.Sprintf("%s/%d", n.addr(1), ones), "dev", "br0"},
		{"-n", n.HostNS, "link", "set", "br0", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			n.close()
			return nil, err
		}
	}
	return n, nil
}

// clearStale deletes namespaces (and their DNS files) a previous kubelet of this state
// directory left behind.
func (n *network) clearStale() {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), n.prefix+"-") {
			_ = ip("netns", "del", e.Name())
		}
	}
	etc, _ := os.ReadDir("/etc/netns")
	for _, e := range etc {
		if strings.HasPrefix(e.Name(), n.prefix+"-") {
			_ = os.RemoveAll(filepath.Join("/etc/netns", e.Name()))
		}
	}
}

// nodeIP is the bridge's address in the host namespace: every Node's address, pods' hostIP,
// where node ports listen (services.go). Pods and host-namespace clients reach it.
func (n *network) nodeIP() string {
	return n.addr(1)
}

// nsPath is the host namespace's path, for listenIn and dialIn.
func (n *network) nsPath() string {
	return filepath.Join("/run/netns", n.HostNS)
}

// addLocal and removeLocal add and remove an address (a load balancer's, services.go) on the
// host namespace's lo, as the kubernetes Service's IP is: pods route the Service range there.
func (n *network) addLocal(addr string) error {
	return ip("-n", n.HostNS, "addr", "add", addr+"/32", "dev", "lo")
}

func (n *network) removeLocal(addr string) error {
	return ip("-n", n.HostNS, "addr", "del", addr+"/32", "dev", "lo")
}

func (n *network) addr(index uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n.base+index)
	return net.IP(b[:]).String()
}

// add makes a pod's namespace: its own loopback, and eth0 with the next free address, paired
// with a port of the bridge in the host namespace. Returns the namespace and the address.
func (n *network) add() (string, string, error) {
	n.mu.Lock()
	limit := uint32(1)<<(32-n.bits) - 2
	index := n.next
	for n.used[index] != "" || index < 2 {
		index++
		if index > limit {
			index = 2
		}
		if index == n.next {
			n.mu.Unlock()
			return "", "", fmt.Errorf("no free pod address")
		}
	}
	ns := fmt.Sprintf("%s-p%d", n.prefix, index)
	n.used[index] = ns
	n.next = index + 1
	n.mu.Unlock()
	peer := fmt.Sprintf("%sv%d", n.prefix[:4], index)
	steps := [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		// Both ends are made inside the test bed's namespaces, never in the machine's own.
		{"-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", n.HostNS},
		{"-n", ns, "addr", "add", fmt.Sprintf("%s/%d", n.addr(index), n.bits), "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "route", "add", n.serviceRange, "via", n.addr(1), "dev", "eth0"},
		{"-n", n.HostNS, "link", "set", peer, "master", "br0"},
		{"-n", n.HostNS, "link", "set", peer, "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			n.remove(ns)
			return "", "", err
		}
	}
	return ns, n.addr(index), nil
}

// remove deletes a pod's namespace (its veth pair goes with it) and frees its address.
func (n *network) remove(ns string) {
	_ = ip("netns", "del", ns)
	_ = os.RemoveAll(filepath.Join("/etc/netns", ns))
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, name := range n.used {
		if name == ns {
			delete(n.used, i)
		}
	}
}

// namespaces lists the host namespace and every pod namespace.
func (n *network) namespaces() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []string{n.HostNS}
	for _, ns := range n.used {
		out = append(out, ns)
	}
	return out
}

func (n *network) close() {
	for _, ns := range n.namespaces() {
		n.remove(ns)
	}
}
