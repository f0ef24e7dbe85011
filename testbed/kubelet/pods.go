package main

// Running the pods bound to a Node as local processes.
//
// Each pod gets a network namespace (net.go) and each container a process started there with
// `ip netns exec`, in its own process group, with the pod's command, args and env (values,
// downward-API fields, ConfigMap and Secret keys), output appended to
// STATE/pods/NS_NAME/CONTAINER.log. A container that exits is started again per the pod's
// restartPolicy, after a back-off that doubles from 1 s to 30 s. Readiness comes from the
// container's readiness probe (exec, httpGet, tcpSocket, run inside the pod's namespace), or
// from running when it has none; the pod's status (phase, IP, conditions, container states and
// restart counts) is written after every change. A pod marked for deletion runs its containers'
// preStop handlers, gets SIGTERM, SIGKILL once its grace period is over, loses its namespace,
// and is removed from the API server.

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const (
	backoffMin = time.Second
	backoffMax = 30 * time.Second
	// How long a stopping kubelet gives its pods' processes after SIGTERM.
	stopGrace = 5 * time.Second
)

type runner struct {
	client   kubernetes.Interface
	node     string
	stateDir string
	images   map[string]string
	network  *network
	dns      *dns
	mu       sync.Mutex
	workers  map[types.UID]*worker
	running  sync.WaitGroup
}

func newRunner(client kubernetes.Interface, node, stateDir string, images map[string]string, n *network, d *dns) *runner {
	return &runner{client: client, node: node, stateDir: stateDir, images: images, network: n, dns: d,
		workers: map[types.UID]*worker{}}
}

func (r *runner) run(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(r.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", r.node).String()
		}))
	handle := func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok {
			r.sync(ctx, pod)
		}
	}
	_, _ = factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	})
	factory.Start(ctx.Done())
	<-ctx.Done()
}

// sync hands the latest version of a pod to its worker, starting one for a new pod.
func (r *runner) sync(ctx context.Context, pod *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.workers[pod.UID]; ok {
		w.update(pod)
		return
	}
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		if pod.DeletionTimestamp != nil {
			// Never started here (or a previous kubelet's): nothing to stop.
			go r.remove(ctx, pod)
		}
		return
	}
	w := &worker{r: r, pod: pod.DeepCopy(), updates: make(chan struct{}, 1), dirty: make(chan struct{}, 1)}
	r.workers[pod.UID] = w
	r.running.Add(1)
	go func() {
		defer r.running.Done()
		w.run(ctx)
	}()
}

func (r *runner) done(uid types.UID) {
	r.mu.Lock()
	delete(r.workers, uid)
	r.mu.Unlock()
}

// remove deletes the pod object for good (the kubelet's last word on a terminated pod).
func (r *runner) remove(ctx context.Context, pod *corev1.Pod) {
	zero := int64(0)
	err := r.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		log.Printf("pod %s/%s: deleting: %v", pod.Namespace, pod.Name, err)
	}
}

// wait returns once every worker has stopped its pod's processes and ended (after the
// kubelet's context is cancelled).
func (r *runner) wait() {
	r.running.Wait()
}

type container struct {
	spec      corev1.Container
	env       map[string]string
	mountExec []string // `KUBELET mount-exec BIND... --`: runs a command among its volumes
	cmd       *exec.Cmd
	running   bool
	ready     bool
	restarts  int32
	startedAt metav1.Time
	last      *corev1.ContainerStateTerminated
	waiting   string
	exited    chan struct{}
}

type worker struct {
	r          *runner
	mu         sync.Mutex
	pod        *corev1.Pod
	updates    chan struct{}
	dirty      chan struct{}
	netns      string
	podIP      string
	dir        string
	containers []*container
	stopping   bool
	// Mount targets this pod uses (see claim).
	claimed map[string]bool
}

func (w *worker) update(pod *corev1.Pod) {
	w.mu.Lock()
	w.pod = pod.DeepCopy()
	w.mu.Unlock()
	select {
	case w.updates <- struct{}{}:
	default:
	}
}

func (w *worker) markDirty() {
	select {
	case w.dirty <- struct{}{}:
	default:
	}
}

func (w *worker) latest() *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod.DeepCopy()
}

func (w *worker) run(ctx context.Context) {
	pod := w.latest()
	defer w.r.done(pod.UID)
	w.dir = filepath.Join(w.r.stateDir, "pods", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		log.Printf("pod %s/%s: %v", pod.Namespace, pod.Name, err)
		return
	}
	ns, podIP, err := w.r.network.add()
	if err != nil {
		log.Printf("pod %s/%s: network: %v", pod.Namespace, pod.Name, err)
		return
	}
	w.netns, w.podIP = ns, podIP
	hostname := pod.Spec.Hostname
	if hostname == "" {
		hostname = pod.Name
	}
	w.r.dns.register(ns, pod.Namespace, hostname)
	defer func() {
		w.r.dns.unregister(ns)
		w.r.network.remove(ns)
		w.releaseAll()
	}()
	statusCtx, stopStatus := context.WithCancel(ctx)
	statusDone := make(chan struct{})
	go func() { defer close(statusDone); w.writeStatus(statusCtx) }()
	for _, spec := range pod.Spec.Containers {
		c := &container{spec: spec, exited: make(chan struct{})}
		w.containers = append(w.containers, c)
		go w.supervise(ctx, c)
		go w.probe(ctx, c)
	}
	w.markDirty()
	for {
		select {
		case <-ctx.Done():
			// The kubelet stops: so do the pod's processes (the pod stays in the API).
			w.stopProcesses(stopGrace)
			stopStatus()
			<-statusDone
			return
		case <-w.updates:
		}
		pod := w.latest()
		if pod.DeletionTimestamp == nil {
			continue
		}
		grace := 30 * time.Second
		if pod.DeletionGracePeriodSeconds != nil {
			grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
		}
		w.terminate(grace)
		stopStatus()
		<-statusDone
		w.r.remove(ctx, pod)
		return
	}
}

// terminate runs the preStop handlers, then SIGTERM; SIGKILL when the grace period is over.
func (w *worker) terminate(grace time.Duration) {
	deadline := time.Now().Add(grace)
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range w.containers {
		if c.spec.Lifecycle == nil || c.spec.Lifecycle.PreStop == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.mu.Lock()
			env, mountExec := c.env, c.mountExec
			w.mu.Unlock()
			if err := w.handler(c.spec.Lifecycle.PreStop, time.Until(deadline), env, mountExec); err != nil {
				log.Printf("pod %s: container %s: preStop: %v", w.netns, c.spec.Name, err)
			}
		}()
	}
	wg.Wait()
	w.stopProcesses(time.Until(deadline))
}

// stopProcesses sends SIGTERM to every container's process group, and SIGKILL after `grace`.
func (w *worker) stopProcesses(grace time.Duration) {
	w.mu.Lock()
	w.stopping = true
	running := []*container{}
	for _, c := range w.containers {
		if c.running && c.cmd != nil && c.cmd.Process != nil {
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
			running = append(running, c)
		}
	}
	w.mu.Unlock()
	timer := time.NewTimer(max(grace, 0))
	defer timer.Stop()
	for _, c := range running {
		select {
		case <-c.exited:
		case <-timer.C:
			w.mu.Lock()
			for _, k := range running {
				if k.running && k.cmd.Process != nil {
					_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
				}
			}
			w.mu.Unlock()
			for _, k := range running {
				<-k.exited
			}
			return
		}
	}
}

// supervise starts a container and starts it again after it exits, per the restart policy.
func (w *worker) supervise(ctx context.Context, c *container) {
	backoff := backoffMin
	for {
		exited := make(chan struct{})
		err := w.start(c, exited)
		ran := err == nil
		w.markDirty()
		if ran {
			started := time.Now()
			err = c.cmd.Wait()
			code := int32(0)
			if exitErr, ok := err.(*exec.ExitError); ok {
				code = int32(exitErr.ExitCode())
				if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.Signaled() {
					code = 128 + int32(status.Signal())
				}
			}
			w.mu.Lock()
			c.running, c.ready = false, false
			c.last = &corev1.ContainerStateTerminated{
				ExitCode: code, StartedAt: c.startedAt, FinishedAt: metav1.Now(),
				Reason: map[bool]string{true: "Completed", false: "Error"}[code == 0],
			}
			w.mu.Unlock()
			close(exited)
			if time.Since(started) > 2*backoffMax {
				backoff = backoffMin
			}
		} else {
			log.Printf("pod %s: container %s: %v", w.netns, c.spec.Name, err)
			close(exited)
		}
		w.mu.Lock()
		stopping := w.stopping
		policy := w.pod.Spec.RestartPolicy
		w.mu.Unlock()
		// One that never ran (its ConfigMap, say, or the namespace's kube-root-ca.crt is not
		// there yet) is tried again whatever the policy, keeps its waiting reason and is not
		// counted as a restart, as with a real kubelet.
		again := !ran || policy == corev1.RestartPolicyAlways || policy == "" ||
			(policy == corev1.RestartPolicyOnFailure && (c.last == nil || c.last.ExitCode != 0))
		if stopping || ctx.Err() != nil || !again {
			w.markDirty()
			return
		}
		w.mu.Lock()
		switch {
		case ran:
			c.restarts++
			c.waiting = "CrashLoopBackOff"
		case c.waiting == "":
			c.waiting = "CreateContainerError"
		}
		w.mu.Unlock()
		w.markDirty()
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, backoffMax)
	}
}

// start launches one container's process in the pod's namespace.
func (w *worker) start(c *container, exited chan struct{}) error {
	pod := w.latest()
	env, err := w.env(pod, c.spec)
	if err != nil {
		w.mu.Lock()
		c.waiting = "CreateContainerConfigError"
		c.exited = exited
		w.mu.Unlock()
		return err
	}
	argv := append(append([]string{}, c.spec.Command...), c.spec.Args...)
	argv = expand(argv, env)
	if len(argv) == 0 {
		return fmt.Errorf("no command: the test bed runs a container's command, not an image entrypoint")
	}
	// The image's directory comes first on the PATH: its binaries are found by name, by the
	// command and by anything the command runs.
	if dir, ok := w.r.images[imageName(c.spec.Image)]; ok {
		env["PATH"] = dir + ":" + env["PATH"]
	}
	binds, err := w.mounts(context.Background(), pod, c.spec)
	if err != nil {
		w.mu.Lock()
		c.waiting = "CreateContainerConfigError"
		c.exited = exited
		w.mu.Unlock()
		return err
	}
	var mountExec []string
	if len(binds) > 0 {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		mountExec = append(append([]string{self, "mount-exec"}, binds...), "--")
		argv = append(append([]string{}, mountExec...), argv...)
	}
	logFile, err := os.OpenFile(filepath.Join(w.dir, c.spec.Name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", w.netns}, argv...)...)
	cmd.Env = flatten(env)
	c.env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = c.spec.WorkingDir
	if cmd.Dir == "" {
		cmd.Dir = w.dir
	}
	// Its own process group (signals reach what it starts too), and killed if the kubelet
	// dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	w.mu.Lock()
	defer w.mu.Unlock()
	c.exited = exited
	c.mountExec = mountExec
	if w.stopping {
		return fmt.Errorf("pod is stopping")
	}
	if err := cmd.Start(); err != nil {
		c.waiting = "RunContainerError"
		return err
	}
	c.cmd, c.running, c.startedAt, c.waiting = cmd, true, metav1.Now(), ""
	return nil
}

func imageName(image string) string {
	name := image
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	return name
}

// probe runs the container's readiness probe for as long as the pod lives; a container
// without one is ready while it runs.
func (w *worker) probe(ctx context.Context, c *container) {
	p := c.spec.ReadinessProbe
	period := time.Second
	if p != nil && p.PeriodSeconds > 0 {
		period = time.Duration(p.PeriodSeconds) * time.Second
	}
	if p != nil {
		if !sleep(ctx, time.Duration(p.InitialDelaySeconds)*time.Second) {
			return
		}
	}
	successes, failures := 0, 0
	for {
		w.mu.Lock()
		running, stopping, ready := c.running, w.stopping, c.ready
		w.mu.Unlock()
		if stopping || ctx.Err() != nil {
			return
		}
		next := running
		if running && p != nil {
			timeout := time.Second
			if p.TimeoutSeconds > 0 {
				timeout = time.Duration(p.TimeoutSeconds) * time.Second
			}
			w.mu.Lock()
			env, mountExec := c.env, c.mountExec
			w.mu.Unlock()
			action := &corev1.LifecycleHandler{Exec: p.Exec, HTTPGet: p.HTTPGet, TCPSocket: p.TCPSocket}
			if w.handler(action, timeout, env, mountExec) == nil {
				successes, failures = successes+1, 0
			} else {
				successes, failures = 0, failures+1
			}
			need, fail := int(p.SuccessThreshold), int(p.FailureThreshold)
			if need < 1 {
				need = 1 // Kubernetes's default; the API server sets it on stored pods
			}
			if fail < 1 {
				fail = 3
			}
			next = ready
			if successes >= need {
				next = true
			} else if failures >= fail {
				next = false
			}
		}
		if next != ready {
			w.mu.Lock()
			c.ready = next && c.running
			w.mu.Unlock()
			w.markDirty()
		}
		if !sleep(ctx, period) {
			return
		}
	}
}

// handler runs an exec, httpGet or tcpSocket action inside the pod's namespace; an exec runs
// with the container's environment and volumes (mountExec) and in the pod's directory, as
// `kubectl exec` would.
func (w *worker) handler(h *corev1.LifecycleHandler, timeout time.Duration, env map[string]string, mountExec []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), max(timeout, time.Second))
	defer cancel()
	var argv []string
	switch {
	case h.Exec != nil:
		argv = append(append([]string{}, mountExec...), h.Exec.Command...)
	case h.HTTPGet != nil:
		host := h.HTTPGet.Host
		if host == "" {
			host = w.podIP
		}
		scheme := strings.ToLower(string(h.HTTPGet.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		port, err := w.port(h.HTTPGet.Port)
		if err != nil {
			return err
		}
		argv = []string{"curl", "-fsS", "-k", "-o", "/dev/null", "--max-time", fmt.Sprint(int(timeout.Seconds()) + 1),
			fmt.Sprintf("%s://%s:%d%s", scheme, host, port, h.HTTPGet.Path)}
	case h.TCPSocket != nil:
		host := h.TCPSocket.Host
		if host == "" {
			host = w.podIP
		}
		port, err := w.port(h.TCPSocket.Port)
		if err != nil {
			return err
		}
		argv = []string{"bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", host, port)}
	default:
		return fmt.Errorf("no action")
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", w.netns}, argv...)...)
	cmd.Dir = w.dir
	if env != nil {
		cmd.Env = flatten(env)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// port resolves a named or numbered container port.
func (w *worker) port(p intOrString) (int, error) {
	if p.StrVal == "" {
		return int(p.IntVal), nil
	}
	for _, c := range w.latest().Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}
