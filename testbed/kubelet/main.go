// Command kubelet is the test bed's process kubelet: it registers Nodes, keeps their Leases and
// Ready condition, and runs the Pods bound to them as local processes (pods.go), each in a
// network namespace of its own (net.go) where pod and Service names resolve (dns.go) and the
// API server answers at the kubernetes Service's address (apiserver.go). It also does what
// kube-proxy and a cloud's load balancer would for Services of type NodePort and LoadBalancer
// (services.go): node ports on the Nodes' one address (the bridge's, every pod's hostIP), and
// load balancer addresses from the Service range, all in the test bed's host namespace.
//
// It is test code for a machine without container runtimes: a container's image selects a
// directory of binaries (--image NAME=DIR) that comes first on its PATH; its command runs with
// the pod's args and env, and it shares the machine's file system apart from its volumes.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
)

// How often a Node's Lease and Ready condition are renewed (the node lifecycle controller
// marks a Node unreachable after 40 s without them).
const heartbeat = 10 * time.Second

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "mount-exec" {
		mountExec(os.Args[2:])
		return
	}
	var kubeconfig, stateDir, podCIDR, serviceIP, serviceRange, lbRange string
	var nodes, images listFlag
	flag.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API server")
	flag.StringVar(&stateDir, "state-dir", "", "directory for pod logs, volumes and DNS files")
	flag.StringVar(&podCIDR, "pod-network", "10.244.0.0/16", "addresses for pods (inside the test bed's namespaces only)")
	flag.StringVar(&serviceIP, "service-ip", "10.96.0.1", "the kubernetes Service's ClusterIP: the API server answers there on port 443")
	flag.StringVar(&serviceRange, "service-range", "10.96.0.0/16", "the API server's Service range: pods route it to the host namespace")
	flag.StringVar(&lbRange, "load-balancer-range", "", "addresses for Services of type LoadBalancer, inside the Service range (default: its last quarter, 256 addresses at most)")
	flag.Var(&nodes, "node", "a Node to run, NAME or NAME=ZONE (repeatable)")
	flag.Var(&images, "image", "NAME=DIR: containers of image NAME find DIR's binaries first on their PATH (repeatable)")
	flag.Parse()
	if kubeconfig == "" || stateDir == "" || len(nodes) == 0 {
		log.Fatal("--kubeconfig, --state-dir and at least one --node are required")
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	config.QPS, config.Burst = 50, 100
	client := kubernetes.NewForConfigOrDie(config)
	imageDirs := map[string]string{}
	for _, i := range images {
		name, dir, ok := strings.Cut(i, "=")
		if !ok {
			log.Fatalf("--image %q: want NAME=DIR", i)
		}
		imageDirs[name] = dir
	}

	if err := ensureStorageClass(context.Background(), client); err != nil {
		log.Fatalf("storage class %s: %v", storageClass, err)
	}
	pool, err := newPool(lbRange, serviceRange)
	if err != nil {
		log.Fatalf("--load-balancer-range: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	network, err := newNetwork(stateDir, podCIDR, serviceIP, serviceRange)
	if err != nil {
		log.Fatalf("pod network: %v", err)
	}
	defer network.close()
	if err := serveAPI(ctx, network.HostNS, net.JoinHostPort(serviceIP, "443"), config.Host); err != nil {
		network.close()
		log.Fatalf("the API server at %s: %v", serviceIP, err)
	}
	dns := newDNS(client, network, stateDir)
	go dns.run(ctx)
	go provision(ctx, client, stateDir)
	go newProxy(client, network, pool).run(ctx)
	var runners []*runner
	for _, n := range nodes {
		name, zone, _ := strings.Cut(n, "=")
		if err := register(ctx, client, name, zone, network.nodeIP()); err != nil {
			log.Fatalf("registering node %s: %v", name, err)
		}
		go keepAlive(ctx, client, name, network.nodeIP())
		r := newRunner(client, name, stateDir, imageDirs, network, dns)
		runners = append(runners, r)
		go r.run(ctx)
	}
	// Host-namespace clients started once this is printed find their names.
	select {
	case <-dns.written:
	case <-ctx.Done():
	}
	fmt.Printf("kubelet ready nodes=%s host-netns=%s\n", nodes.String(), network.HostNS)
	<-ctx.Done()
	for _, r := range runners {
		r.wait()
	}
}

// register creates or updates the Node: Ready, with room for plenty of pods, the zone label
// (topology.kubernetes.io/zone) rack awareness reads, and addr (the bridge's, which all this
// kubelet's Nodes share) as its InternalIP.
func register(ctx context.Context, client kubernetes.Interface, name, zone, addr string) error {
	labels := map[string]string{
		"kubernetes.io/hostname": name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
	}
	if zone != "" {
		labels["topology.kubernetes.io/zone"] = zone
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
		"ephemeral-storage":   resource.MustParse("1Ti"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status:     corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	created, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for k, v := range labels {
				if created.Labels == nil {
					created.Labels = map[string]string{}
				}
				created.Labels[k] = v
			}
			created, err = client.CoreV1().Nodes().Update(ctx, created, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return err
	}
	return heartbeatNode(ctx, client, name, addr, capacity)
}

// heartbeatNode writes the Node's status (Ready, with a fresh heartbeat), on its latest version
// (the node controllers change the Node too).
func heartbeatNode(ctx context.Context, client kubernetes.Interface, name, addr string, capacity corev1.ResourceList) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if capacity != nil {
			node.Status.Capacity, node.Status.Allocatable = capacity, capacity
		}
		return updateNodeStatus(ctx, client, node, addr)
	})
}

// updateNodeStatus sets the Ready condition (and the others, healthy) with a fresh heartbeat,
// and the Node's addresses.
func updateNodeStatus(ctx context.Context, client kubernetes.Interface, node *corev1.Node, addr string) error {
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: s, Reason: reason, LastHeartbeatTime: now, LastTransitionTime: now}
		for _, old := range node.Status.Conditions {
			if old.Type == t && old.Status == s {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	node.Status.Conditions = []corev1.NodeCondition{
		cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady"),
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID"),
	}
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: addr},
		{Type: corev1.NodeHostName, Address: node.Name},
	}
	node.Status.NodeInfo.KubeletVersion = "v1.37.2-testbed"
	node.Status.NodeInfo.OperatingSystem = "linux"
	node.Status.NodeInfo.Architecture = "amd64"
	_, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// keepAlive renews the Node's Lease in kube-node-lease and its Ready heartbeat.
func keepAlive(ctx context.Context, client kubernetes.Interface, name, addr string) {
	leases := client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	duration := int32(40)
	holder := name
	for {
		now := metav1.NewMicroTime(time.Now())
		lease, err := leases.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			node, nerr := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if nerr == nil {
				lease = &coordinationv1.Lease{
					ObjectMeta: metav1.ObjectMeta{
						Name: name,
						OwnerReferences: []metav1.OwnerReference{{
							APIVersion: "v1", Kind: "Node", Name: name, UID: node.UID,
						}},
					},
					Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &duration, RenewTime: &now},
				}
				_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
			}
		case err == nil:
			lease.Spec.RenewTime = &now
			lease.Spec.HolderIdentity = &holder
			lease.Spec.LeaseDurationSeconds = &duration
			_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil {
			log.Printf("node %s: renewing its lease: %v", name, err)
		}
		if err := heartbeatNode(ctx, client, name, addr, nil); err != nil && ctx.Err() == nil {
			log.Printf("node %s: heartbeat: %v", name, err)
		}
		if !sleep(ctx, heartbeat) {
			return
		}
	}
}

var lookPath = exec.LookPath

// sleep waits for d; false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
