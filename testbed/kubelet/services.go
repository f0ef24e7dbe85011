package main

// Services of type NodePort and LoadBalancer, as kube-proxy and a cloud's load balancer would
// give them (TCP only).
//
// Node ports: every Node of this kubelet has one address, the bridge's in the host namespace
// (network.nodeIP; pods' hostIP too). For each port of a Service with a nodePort (NodePort,
// and LoadBalancer unless allocateLoadBalancerNodePorts is false) the kubelet listens there,
// on NODE_IP:NODE_PORT, and relays each connection to one of the Service port's ready
// endpoints: the addresses of the EndpointSlices labelled kubernetes.io/service-name whose
// port has the Service port's name (the controller-manager resolves named target ports), in
// turn, the next one when a connection cannot be made.
//
// Load balancers: a Service of type LoadBalancer without a loadBalancerClass and without
// status.loadBalancer.ingress gets an address from a pool in the upper part of the Service
// range (--load-balancer-range), which exists only in the test bed's namespaces: a /32 on the
// host namespace's lo, as the kubernetes Service's IP (pods route the Service range to the
// bridge). The kubelet listens on ADDRESS:PORT for each of the Service's ports, relaying as
// above, and sets status.loadBalancer.ingress to [{ip: ADDRESS, ipMode: VIP}]. A Service that
// already has a pool address as its ingress (a previous kubelet's) keeps it. When the Service
// goes or stops being of type LoadBalancer (the API server clears its status then), its
// listeners close, with the connections they relay, and the address leaves lo.
//
// One goroutine reconciles listeners and addresses with the Services (informer events, and
// every 5 s for what failed); connections read the EndpointSlices as they come.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// How long a relay waits for an endpoint to accept before it tries the next.
const endpointDialTimeout = 2 * time.Second

type proxy struct {
	client  kubernetes.Interface
	network *network
	pool    ipPool
	factory informers.SharedInformerFactory
	svcs    listersv1.ServiceLister
	slices  discoverylisters.EndpointSliceLister
	changed chan struct{}
	// Only the reconciling goroutine touches these.
	listeners map[string]*listener // "IP:PORT" -> its listener
	failed    map[string]string    // "IP:PORT" -> the listen error last logged
	lbs       map[string]lbOwner   // load balancer address -> its Service
}

// target is a Service port: the EndpointSlices' port of the same name.
type target struct{ namespace, service, port string }

type lbOwner struct {
	key string // NAMESPACE/NAME
	uid types.UID
}

// ipPool is the load balancer addresses, first to last.
type ipPool struct{ first, last uint32 }

// newPool parses --load-balancer-range; empty is the last quarter of the Service range, 256
// addresses at most (10.96.255.0/24 of 10.96.0.0/16). Its first and last addresses are not
// handed out.
func newPool(cidr, serviceRange string) (ipPool, error) {
	_, services, err := net.ParseCIDR(serviceRange)
	if err != nil || services.IP.To4() == nil {
		return ipPool{}, fmt.Errorf("service range %q is not an IPv4 CIDR", serviceRange)
	}
	sOnes, _ := services.Mask.Size()
	sFirst := binary.BigEndian.Uint32(services.IP.To4())
	sLast := sFirst + uint32(uint64(1)<<(32-sOnes)-1)
	if cidr == "" {
		size := min(uint64(1)<<(32-sOnes)/4, 256)
		if size < 4 {
			return ipPool{}, fmt.Errorf("service range %s is too small for load balancer addresses", serviceRange)
		}
		return ipPool{sLast - uint32(size) + 2, sLast - 1}, nil
	}
	_, pool, err := net.ParseCIDR(cidr)
	if err != nil || pool.IP.To4() == nil {
		return ipPool{}, fmt.Errorf("load balancer range %q is not an IPv4 CIDR", cidr)
	}
	ones, _ := pool.Mask.Size()
	first := binary.BigEndian.Uint32(pool.IP.To4())
	last := first + uint32(uint64(1)<<(32-ones)-1)
	if first < sFirst || last > sLast {
		return ipPool{}, fmt.Errorf("load balancer range %s is not inside the service range %s (pods route only that)", cidr, serviceRange)
	}
	if last-first >= 2 {
		first, last = first+1, last-1
	}
	return ipPool{first, last}, nil
}

func (p ipPool) contains(addr string) bool {
	ip := net.ParseIP(addr).To4()
	if ip == nil {
		return false
	}
	v := binary.BigEndian.Uint32(ip)
	return v >= p.first && v <= p.last
}

func (p ipPool) String() string {
	return fmt.Sprintf("%s-%s", ipv4(p.first), ipv4(p.last))
}

func ipv4(v uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return net.IP(b[:]).String()
}

func newProxy(client kubernetes.Interface, n *network, pool ipPool) *proxy {
	p := &proxy{client: client, network: n, pool: pool, changed: make(chan struct{}, 1),
		listeners: map[string]*listener{}, failed: map[string]string{}, lbs: map[string]lbOwner{}}
	p.factory = informers.NewSharedInformerFactory(client, 0)
	svcs := p.factory.Core().V1().Services()
	endpointSlices := p.factory.Discovery().V1().EndpointSlices()
	// Endpoints are read when a connection comes; only Services change what listens.
	_, _ = svcs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.poke() },
		UpdateFunc: func(any, any) { p.poke() },
		DeleteFunc: func(any) { p.poke() },
	})
	_ = endpointSlices.Informer()
	p.svcs, p.slices = svcs.Lister(), endpointSlices.Lister()
	return p
}

func (p *proxy) poke() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *proxy) run(ctx context.Context) {
	p.factory.Start(ctx.Done())
	p.factory.WaitForCacheSync(ctx.Done())
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		p.sync(ctx)
		select {
		case <-ctx.Done():
		case <-p.changed:
			// Let a burst of changes settle into one pass.
			time.Sleep(50 * time.Millisecond)
		case <-tick.C:
		}
	}
	for addr, l := range p.listeners {
		l.close()
		delete(p.listeners, addr)
	}
	// The load balancer addresses go with the host namespace (network.close); the Services
	// keep them as their ingress, for the next kubelet.
}

// lbEligible: a Service this load balancer serves.
func lbEligible(s *corev1.Service) bool {
	return s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.LoadBalancerClass == nil
}

func isTCP(port corev1.ServicePort) bool {
	return port.Protocol == "" || port.Protocol == corev1.ProtocolTCP
}

// sync makes the listeners and load balancer addresses what the Services ask for.
func (p *proxy) sync(ctx context.Context) {
	svcs, err := p.svcs.List(labels.Everything())
	if err != nil {
		log.Printf("services: %v", err)
		return
	}
	sort.Slice(svcs, func(i, j int) bool {
		return svcs[i].Namespace+"/"+svcs[i].Name < svcs[j].Namespace+"/"+svcs[j].Name
	})
	lbIPs, released := p.allocate(svcs)

	want := map[string]target{}
	nodeIP := p.network.nodeIP()
	for _, s := range svcs {
		nodePorts := s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer
		lbIP := lbIPs[s.Namespace+"/"+s.Name]
		for _, port := range s.Spec.Ports {
			if !isTCP(port) {
				continue
			}
			t := target{s.Namespace, s.Name, port.Name}
			if nodePorts && port.NodePort != 0 {
				want[net.JoinHostPort(nodeIP, strconv.Itoa(int(port.NodePort)))] = t
			}
			if lbIP != "" {
				want[net.JoinHostPort(lbIP, strconv.Itoa(int(port.Port)))] = t
			}
		}
	}
	for addr, l := range p.listeners {
		if _, ok := want[addr]; !ok {
			l.close()
			delete(p.listeners, addr)
		}
	}
	for addr := range p.failed {
		if _, ok := want[addr]; !ok {
			delete(p.failed, addr)
		}
	}
	// After their listeners have closed.
	for _, addr := range released {
		if err := p.network.removeLocal(addr); err != nil {
			log.Printf("load balancer: %v", err)
		}
	}
	for addr, t := range want {
		if l, ok := p.listeners[addr]; ok {
			l.target.Store(&t)
			continue
		}
		l, err := p.listen(addr, t)
		if err != nil {
			if p.failed[addr] != err.Error() {
				log.Printf("service %s/%s: listening on %s: %v", t.namespace, t.service, addr, err)
				p.failed[addr] = err.Error()
			}
			continue
		}
		delete(p.failed, addr)
		p.listeners[addr] = l
	}
	// Once they listen, the Services learn their addresses.
	for _, s := range svcs {
		if ip := lbIPs[s.Namespace+"/"+s.Name]; ip != "" {
			p.publish(ctx, s, ip)
		}
	}
}

// allocate gives each eligible Service a load balancer address (keeping the ones they have)
// and frees those of Services that are gone or no longer eligible. Returns NAMESPACE/NAME ->
// address, and the addresses freed (to be removed from lo once nothing listens there).
func (p *proxy) allocate(svcs []*corev1.Service) (map[string]string, []string) {
	byKey := map[string]*corev1.Service{}
	clusterIPs := map[string]bool{p.network.serviceIP: true}
	for _, s := range svcs {
		byKey[s.Namespace+"/"+s.Name] = s
		for _, ip := range s.Spec.ClusterIPs {
			clusterIPs[ip] = true
		}
	}
	var released []string
	owned := map[string]string{}
	for ip, o := range p.lbs {
		s := byKey[o.key]
		if s == nil || s.UID != o.uid || !lbEligible(s) {
			delete(p.lbs, ip)
			released = append(released, ip)
			continue
		}
		owned[o.key] = ip
	}
	claim := func(s *corev1.Service, ip string) bool {
		if err := p.network.addLocal(ip); err != nil {
			log.Printf("load balancer for %s/%s: %v", s.Namespace, s.Name, err)
			return false
		}
		key := s.Namespace + "/" + s.Name
		p.lbs[ip] = lbOwner{key, s.UID}
		owned[key] = ip
		return true
	}
	// First the addresses Services already have (from a previous kubelet), so that no new
	// one is given out twice.
	for _, s := range svcs {
		key := s.Namespace + "/" + s.Name
		if !lbEligible(s) || owned[key] != "" {
			continue
		}
		for _, ing := range s.Status.LoadBalancer.Ingress {
			_, taken := p.lbs[ing.IP]
			if p.pool.contains(ing.IP) && !taken && !slices.Contains(released, ing.IP) && claim(s, ing.IP) {
				break
			}
		}
	}
	// Not the ones just released either: they leave lo only after this pass.
	for _, ip := range released {
		clusterIPs[ip] = true
	}
	free := func(ip string) bool {
		_, taken := p.lbs[ip]
		return p.pool.contains(ip) && !taken && !clusterIPs[ip]
	}
	for _, s := range svcs {
		key := s.Namespace + "/" + s.Name
		if !lbEligible(s) || owned[key] != "" || len(s.Status.LoadBalancer.Ingress) > 0 {
			continue
		}
		// The address asked for (the deprecated spec.loadBalancerIP), if it is the pool's.
		ip := s.Spec.LoadBalancerIP
		if !free(ip) {
			ip = ""
			for v := p.pool.first; v <= p.pool.last && v != 0; v++ {
				if free(ipv4(v)) {
					ip = ipv4(v)
					break
				}
			}
		}
		if ip == "" {
			log.Printf("load balancer for %s: no free address in %s", key, p.pool)
			continue
		}
		claim(s, ip)
	}
	return owned, released
}

// publish sets a Service's status.loadBalancer.ingress to its address, unless it says so.
func (p *proxy) publish(ctx context.Context, s *corev1.Service, ip string) {
	ing := s.Status.LoadBalancer.Ingress
	if len(ing) == 1 && ing[0].IP == ip && ing[0].Hostname == "" && ing[0].IPMode != nil &&
		*ing[0].IPMode == corev1.LoadBalancerIPModeVIP && len(ing[0].Ports) == 0 {
		return
	}
	vip := corev1.LoadBalancerIPModeVIP
	s = s.DeepCopy()
	s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip, IPMode: &vip}}
	_, err := p.client.CoreV1().Services(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{})
	// A conflict or a Service gone comes back through the informer.
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		log.Printf("load balancer for %s/%s: status: %v", s.Namespace, s.Name, err)
	}
}

// endpoints lists the ready endpoints (IP:PORT) of a Service port, sorted.
func (p *proxy) endpoints(t target) ([]string, error) {
	list, err := p.slices.EndpointSlices(t.namespace).List(
		labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: t.service}))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, sl := range list {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		port := int32(-1)
		for _, sp := range sl.Ports {
			name := ""
			if sp.Name != nil {
				name = *sp.Name
			}
			if name == t.port && sp.Port != nil && (sp.Protocol == nil || *sp.Protocol == corev1.ProtocolTCP) {
				port = *sp.Port
				break
			}
		}
		if port < 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			// No condition means ready (the API's advice to consumers).
			if (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) || len(ep.Addresses) == 0 {
				continue
			}
			addr := net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))
			if !seen[addr] {
				seen[addr] = true
				out = append(out, addr)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// listener is one IP:PORT in the host namespace and the connections it relays.
type listener struct {
	l      net.Listener
	target atomic.Pointer[target]
	next   atomic.Uint32 // round robin over the endpoints
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{} // closed when the accept loop has ended
}

func (p *proxy) listen(addr string, t target) (*listener, error) {
	nl, err := listenIn(p.network.nsPath(), addr)
	if err != nil {
		return nil, err
	}
	l := &listener{l: nl, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	l.target.Store(&t)
	go func() {
		defer close(l.done)
		for {
			conn, err := nl.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				// Out of file descriptors, say: wait for some to be freed.
				log.Printf("listener %s: %v", addr, err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if l.track(conn) {
				go p.relay(l, conn)
			}
		}
	}()
	return l, nil
}

// track records a connection to be closed with the listener; false (and closed) when it is
// closed already.
func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *listener) untrack(cs ...net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		delete(l.conns, c)
	}
}

// close stops listening and ends every connection relayed, and returns once nothing accepts.
func (l *listener) close() {
	l.l.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
	l.mu.Unlock()
	<-l.done
}

// relay connects a client to one of the target's endpoints, the next in turn, trying the
// others when it cannot; without any, the client's connection is closed.
func (p *proxy) relay(l *listener, client net.Conn) {
	defer l.untrack(client)
	t := l.target.Load()
	eps, err := p.endpoints(*t)
	if err != nil {
		log.Printf("service %s/%s: endpoints: %v", t.namespace, t.service, err)
	}
	start := int(l.next.Add(1))
	for i := range eps {
		ep := eps[(start+i)%len(eps)]
		server, err := dialIn(p.network.nsPath(), ep, endpointDialTimeout)
		if err != nil {
			log.Printf("service %s/%s port %q: endpoint %s: %v", t.namespace, t.service, t.port, ep, err)
			continue
		}
		if !l.track(server) {
			break
		}
		defer l.untrack(server)
		splice(client, server)
		return
	}
	client.Close()
}
