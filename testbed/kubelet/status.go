package main

// The pod's status as the API server shows it, and the containers' environment.

import (
	"context"
	"fmt"
	"log"
	"regexp"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type intOrString = intstr.IntOrString

// writeStatus writes the pod's status whenever something changed, until ctx ends (and once
// more then).
func (w *worker) writeStatus(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			w.pushStatus(context.Background())
			return
		case <-w.dirty:
		}
		w.pushStatus(ctx)
	}
}

func (w *worker) pushStatus(ctx context.Context) {
	for attempt := 0; attempt < 5; attempt++ {
		w.mu.Lock()
		name, namespace := w.pod.Name, w.pod.Namespace
		w.mu.Unlock()
		pod, err := w.r.client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if err == nil {
			pod.Status = w.status(pod)
			_, err = w.r.client.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		}
		if err == nil || ctx.Err() != nil {
			return
		}
		if !apierrors.IsConflict(err) {
			log.Printf("pod %s/%s: status: %v", namespace, name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *worker) status(pod *corev1.Pod) corev1.PodStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := metav1.Now()
	st := pod.Status
	// The Node's address (the bridge's in the host namespace), where node ports listen.
	st.HostIP = w.r.network.nodeIP()
	st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	st.PodIP = w.podIP
	st.PodIPs = []corev1.PodIP{{IP: w.podIP}}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	allReady, anyRunning, allDone, allSucceeded := len(w.containers) > 0, false, true, true
	statuses := make([]corev1.ContainerStatus, 0, len(w.containers))
	for _, c := range w.containers {
		cs := corev1.ContainerStatus{
			Name:         c.spec.Name,
			Image:        c.spec.Image,
			ImageID:      "testbed://" + c.spec.Image,
			Ready:        c.ready,
			RestartCount: c.restarts,
		}
		started := c.running
		cs.Started = &started
		switch {
		case c.running:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: c.startedAt}
			cs.ContainerID = fmt.Sprintf("testbed://%d", c.cmd.Process.Pid)
			anyRunning = true
		case c.waiting != "" || c.last == nil:
			reason := c.waiting
			if reason == "" {
				reason = "ContainerCreating"
			}
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason}
		default:
			cs.State.Terminated = c.last.DeepCopy()
		}
		if c.last != nil {
			cs.LastTerminationState.Terminated = c.last.DeepCopy()
		}
		restarting := c.waiting == "CrashLoopBackOff"
		done := !c.running && c.last != nil && !restarting && c.waiting == ""
		allDone = allDone && done
		allSucceeded = allSucceeded && done && c.last.ExitCode == 0
		allReady = allReady && c.ready
		statuses = append(statuses, cs)
	}
	st.ContainerStatuses = statuses
	switch {
	case allDone && allSucceeded:
		st.Phase = corev1.PodSucceeded
	case allDone:
		st.Phase = corev1.PodFailed
	case anyRunning || len(statuses) > 0:
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	setCondition(&st, corev1.PodInitialized, true, now)
	setCondition(&st, corev1.ContainersReady, allReady, now)
	setCondition(&st, corev1.PodReady, allReady, now)
	setCondition(&st, corev1.PodScheduled, true, now)
	return st
}

func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, ok bool, now metav1.Time) {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
	}
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != status {
				st.Conditions[i].Status = status
				st.Conditions[i].LastTransitionTime = now
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: status, LastTransitionTime: now})
}

// env is a container's environment: the pod's variables in order (values may refer to earlier
// ones as $(NAME)), downward-API fields, ConfigMap and Secret keys, envFrom, and a PATH.
func (w *worker) env(pod *corev1.Pod, c corev1.Container) (map[string]string, error) {
	ctx := context.Background()
	core := w.r.client.CoreV1()
	env := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	// The kubernetes Service's variables, which a real kubelet gives every container whatever
	// enableServiceLinks says: in-cluster clients (client-go, kube-rs) find the API server by them.
	api := w.r.network.serviceIP
	for k, v := range map[string]string{
		"KUBERNETES_SERVICE_HOST":       api,
		"KUBERNETES_SERVICE_PORT":       "443",
		"KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"KUBERNETES_PORT":               "tcp://" + api + ":443",
		"KUBERNETES_PORT_443_TCP":       "tcp://" + api + ":443",
		"KUBERNETES_PORT_443_TCP_PROTO": "tcp",
		"KUBERNETES_PORT_443_TCP_PORT":  "443",
		"KUBERNETES_PORT_443_TCP_ADDR":  api,
	} {
		env[k] = v
	}
	hostname := pod.Spec.Hostname
	if hostname == "" {
		hostname = pod.Name
	}
	env["HOSTNAME"] = hostname
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := core.ConfigMaps(pod.Namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
					continue
				}
				return nil, err
			}
			for k, v := range cm.Data {
				env[from.Prefix+k] = v
			}
		case from.SecretRef != nil:
			s, err := core.Secrets(pod.Namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if from.SecretRef.Optional != nil && *from.SecretRef.Optional {
					continue
				}
				return nil, err
			}
			for k, v := range s.Data {
				env[from.Prefix+k] = string(v)
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = expand([]string{e.Value}, env)[0]
			continue
		}
		v, err := w.valueFrom(ctx, pod, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		env[e.Name] = v
	}
	return env, nil
}

func (w *worker) valueFrom(ctx context.Context, pod *corev1.Pod, src *corev1.EnvVarSource) (string, error) {
	core := w.r.client.CoreV1()
	switch {
	case src.FieldRef != nil:
		return w.field(pod, src.FieldRef.FieldPath)
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := core.ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := cm.Data[ref.Key]; ok {
				return v, nil
			}
			err = fmt.Errorf("ConfigMap %s has no key %s", ref.Name, ref.Key)
		}
		if ref.Optional != nil && *ref.Optional {
			return "", nil
		}
		return "", err
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := core.Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := s.Data[ref.Key]; ok {
				return string(v), nil
			}
			err = fmt.Errorf("Secret %s has no key %s", ref.Name, ref.Key)
		}
		if ref.Optional != nil && *ref.Optional {
			return "", nil
		}
		return "", err
	case src.ResourceFieldRef != nil:
		return "0", nil
	}
	return "", fmt.Errorf("unsupported valueFrom")
}

var labelRef = regexp.MustCompile(`^metadata\.(labels|annotations)\['(.+)'\]$`)

func (w *worker) field(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return w.podIP, nil
	case "status.hostIP", "status.hostIPs":
		return w.r.network.nodeIP(), nil
	}
	if m := labelRef.FindStringSubmatch(path); m != nil {
		if m[1] == "labels" {
			return pod.Labels[m[2]], nil
		}
		return pod.Annotations[m[2]], nil
	}
	return "", fmt.Errorf("unsupported fieldRef %s", path)
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// expand replaces $(NAME) with the variable's value, as Kubernetes does in command, args and
// env values; an unknown one stays as it is.
func expand(args []string, env map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = varRef.ReplaceAllStringFunc(a, func(m string) string {
			if v, ok := env[m[2:len(m)-1]]; ok {
				return v
			}
			return m
		})
	}
	return out
}

func flatten(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
