package main

// Name resolution inside the pods' namespaces, without a DNS server: `ip netns exec` puts
// /etc/netns/NS/hosts over /etc/hosts, and this keeps that file current for every namespace.
// It holds each pod's name `HOST.SUBDOMAIN.NS.svc.cluster.local` (a StatefulSet pod under its
// headless Service) and each Service's name, `NAME.NS.svc.cluster.local` with the shorter forms
// a pod in that namespace would use, mapped to the addresses of the pods it selects (ready ones,
// or all with publishNotReadyAddresses). There is no kube-proxy: a ClusterIP Service resolves to
// its pods' addresses as a headless one would. The kubernetes Service (no selector: its
// endpoint is the API server) resolves to its ClusterIP in every namespace, where
// apiserver.go answers. The files are rewritten in place, so that the bind mounts of running
// processes see the change.

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

const clusterDomain = "cluster.local"

type dns struct {
	client  kubernetes.Interface
	network *network
	mu      sync.Mutex
	// network namespace -> the Kubernetes namespace and hostname of its pod
	owners  map[string][2]string
	changed chan struct{}
	factory informers.SharedInformerFactory
	pods    listersv1.PodLister
	svcs    listersv1.ServiceLister
	// One rewrite at a time (files are rewritten in place).
	writeMu sync.Mutex
	// Closed once every file has been written from the API's view.
	written chan struct{}
}

func newDNS(client kubernetes.Interface, network *network, stateDir string) *dns {
	d := &dns{client: client, network: network, owners: map[string][2]string{}, changed: make(chan struct{}, 1),
		written: make(chan struct{})}
	d.owners[network.HostNS] = [2]string{"default", "e2e-client"}
	d.factory = informers.NewSharedInformerFactory(client, 0)
	pods := d.factory.Core().V1().Pods()
	svcs := d.factory.Core().V1().Services()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { d.poke() },
		UpdateFunc: func(any, any) { d.poke() },
		DeleteFunc: func(any) { d.poke() },
	}
	_, _ = pods.Informer().AddEventHandler(handler)
	_, _ = svcs.Informer().AddEventHandler(handler)
	d.pods, d.svcs = pods.Lister(), svcs.Lister()
	return d
}

// register says which pod a network namespace holds, and writes its files at once: `ip netns
// exec` binds them only if they exist when a process starts (later rewrites are in place).
func (d *dns) register(netns, namespace, hostname string) {
	d.mu.Lock()
	d.owners[netns] = [2]string{namespace, hostname}
	d.mu.Unlock()
	d.rewrite()
	d.poke()
}

func (d *dns) unregister(netns string) {
	d.mu.Lock()
	delete(d.owners, netns)
	d.mu.Unlock()
}

func (d *dns) poke() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

func (d *dns) run(ctx context.Context) {
	d.factory.Start(ctx.Done())
	d.factory.WaitForCacheSync(ctx.Done())
	d.rewrite()
	close(d.written)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.changed:
			// Let a burst of changes settle into one rewrite.
			time.Sleep(50 * time.Millisecond)
		case <-time.After(5 * time.Second):
		}
		d.rewrite()
	}
}

type entry struct{ ip, name string }

// records lists every name and its addresses, with the namespace each belongs to.
func (d *dns) records() (map[string][]entry, error) {
	pods, err := d.pods.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	svcs, err := d.svcs.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	byNS := map[string][]entry{}
	for _, p := range pods {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil || p.Spec.Hostname == "" || p.Spec.Subdomain == "" {
			continue
		}
		name := fmt.Sprintf("%s.%s", p.Spec.Hostname, p.Spec.Subdomain)
		byNS[p.Namespace] = append(byNS[p.Namespace], entry{p.Status.PodIP, name})
	}
	for _, s := range svcs {
		if len(s.Spec.Selector) == 0 {
			continue
		}
		selector := labels.SelectorFromSet(s.Spec.Selector)
		for _, p := range pods {
			if p.Namespace != s.Namespace || p.Status.PodIP == "" || p.DeletionTimestamp != nil || !selector.Matches(labels.Set(p.Labels)) {
				continue
			}
			if s.Spec.PublishNotReadyAddresses || podReady(p) {
				byNS[s.Namespace] = append(byNS[s.Namespace], entry{p.Status.PodIP, s.Name})
			}
		}
	}
	return byNS, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// rewrite writes every namespace's hosts and resolv.conf.
func (d *dns) rewrite() {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	byNS, err := d.records()
	if err != nil {
		log.Printf("dns: %v", err)
		return
	}
	d.mu.Lock()
	owners := make(map[string][2]string, len(d.owners))
	for k, v := range d.owners {
		owners[k] = v
	}
	d.mu.Unlock()
	for netns, owner := range owners {
		d.write(netns, owner, byNS)
	}
}

// write writes one namespace's hosts and resolv.conf.
func (d *dns) write(netns string, owner [2]string, byNS map[string][]entry) {
	{
		var lines []string
		for ns, entries := range byNS {
			for _, e := range entries {
				// A name below a namespace: NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local, and
				// NAME alone inside that namespace.
				names := []string{
					fmt.Sprintf("%s.%s.svc.%s", e.name, ns, clusterDomain),
					fmt.Sprintf("%s.%s.svc", e.name, ns),
					fmt.Sprintf("%s.%s", e.name, ns),
				}
				if ns == owner[0] {
					names = append(names, e.name)
				}
				lines = append(lines, fmt.Sprintf("%s\t%s", e.ip, strings.Join(names, " ")))
			}
		}
		sort.Strings(lines)
		api := fmt.Sprintf("%s\tkubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.%s\n",
			d.network.serviceIP, clusterDomain)
		content := "127.0.0.1\tlocalhost " + owner[1] + "\n::1\tlocalhost\n" + api + strings.Join(lines, "\n") + "\n"
		resolv := fmt.Sprintf("search %s.svc.%s svc.%s %s\nnameserver 127.0.0.1\noptions ndots:5 timeout:1 attempts:1\n",
			owner[0], clusterDomain, clusterDomain, clusterDomain)
		dir := filepath.Join("/etc/netns", netns)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Printf("dns: %v", err)
			return
		}
		writeInPlace(filepath.Join(dir, "hosts"), content)
		writeInPlace(filepath.Join(dir, "resolv.conf"), resolv)
	}
}

// writeInPlace rewrites a file keeping its inode (processes see it through a bind mount).
func writeInPlace(path, content string) {
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		log.Printf("dns: %v", err)
		return
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Printf("dns: %v", err)
	}
}
