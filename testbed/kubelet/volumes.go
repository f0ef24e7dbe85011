package main

// Volumes. PersistentVolumeClaims get a PersistentVolume each, provisioned here as a directory
// under STATE/volumes (a hostPath volume pre-bound to the claim; the controller-manager's
// PersistentVolume controller completes the binding, after which the scheduler places the
// pod); a released one is deleted with its directory, as reclaimPolicy Delete says. A
// container sees its volumes at their mount paths through bind mounts in the mount namespace
// `ip netns exec` gives it (made by this binary's `mount-exec` mode just before the container's
// command), so nothing is mounted in the machine's own mount namespace. A mount path that does
// not exist on the machine is created for the pod and removed again when empty.

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const provisionedBy = "sluice.test/testbed-kubelet"

// provision creates a PersistentVolume for every pending claim, and deletes released ones it
// made, with their data.
func provision(ctx context.Context, client kubernetes.Interface, stateDir string) {
	factory := informers.NewSharedInformerFactory(client, 30*time.Second)
	claims := factory.Core().V1().PersistentVolumeClaims().Informer()
	volumes := factory.Core().V1().PersistentVolumes().Informer()
	_, _ = claims.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { provisionFor(ctx, client, stateDir, obj.(*corev1.PersistentVolumeClaim)) },
		UpdateFunc: func(_, obj any) { provisionFor(ctx, client, stateDir, obj.(*corev1.PersistentVolumeClaim)) },
	})
	_, _ = volumes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { reclaim(ctx, client, obj.(*corev1.PersistentVolume)) },
		UpdateFunc: func(_, obj any) { reclaim(ctx, client, obj.(*corev1.PersistentVolume)) },
	})
	factory.Start(ctx.Done())
	<-ctx.Done()
}

func provisionFor(ctx context.Context, client kubernetes.Interface, stateDir string, pvc *corev1.PersistentVolumeClaim) {
	if pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending || pvc.DeletionTimestamp != nil {
		return
	}
	name := "pv-" + string(pvc.UID)
	dir := filepath.Join(stateDir, "volumes", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Printf("pvc %s/%s: %v", pvc.Namespace, pvc.Name, err)
		return
	}
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	hostPathType := corev1.HostPathDirectory
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": provisionedBy}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              class,
			VolumeMode:                    pvc.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &hostPathType},
			},
		},
	}
	if _, err := client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		log.Printf("pvc %s/%s: provisioning: %v", pvc.Namespace, pvc.Name, err)
	}
}

func reclaim(ctx context.Context, client kubernetes.Interface, pv *corev1.PersistentVolume) {
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != provisionedBy || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Spec.HostPath == nil {
		return
	}
	if err := os.RemoveAll(pv.Spec.HostPath.Path); err != nil {
		log.Printf("pv %s: removing its data: %v", pv.Name, err)
		return
	}
	err := client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		log.Printf("pv %s: %v", pv.Name, err)
	}
}

// mounts resolves a container's volume mounts to SOURCE:TARGET[:ro] bind specifications,
// preparing ConfigMap, Secret and emptyDir contents under the pod's directory, and claiming
// the targets (made on the machine when missing, removed when no pod uses them any more).
func (w *worker) mounts(ctx context.Context, pod *corev1.Pod, c corev1.Container) ([]string, error) {
	var binds []string
	for _, m := range c.VolumeMounts {
		var vol *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == m.Name {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol == nil {
			return nil, fmt.Errorf("volume %s is not in the pod", m.Name)
		}
		src, err := w.volumeSource(ctx, pod, vol)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", m.Name, err)
		}
		if src == "" {
			continue // not supported here (projected service account tokens): left out
		}
		if m.SubPath != "" {
			src = filepath.Join(src, m.SubPath)
			if err := os.MkdirAll(src, 0o755); err != nil {
				return nil, err
			}
		}
		if err := w.claim(m.MountPath); err != nil {
			return nil, err
		}
		spec := src + ":" + m.MountPath
		if m.ReadOnly {
			spec += ":ro"
		}
		binds = append(binds, spec)
	}
	return binds, nil
}

// Volume mount targets on the machine, shared by every Node's pods: how many pods use each,
// and which ones this kubelet made.
var targets = struct {
	sync.Mutex
	refs map[string]int
	made map[string]bool
}{refs: map[string]int{}, made: map[string]bool{}}

// claim records that this pod mounts at `path`, making the directory when it is missing.
func (w *worker) claim(path string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.claimed[path] {
		return nil
	}
	targets.Lock()
	defer targets.Unlock()
	if _, err := os.Stat(path); os.IsNotExist(err) {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return err
		}
		targets.made[path] = true
	}
	targets.refs[path]++
	if w.claimed == nil {
		w.claimed = map[string]bool{}
	}
	w.claimed[path] = true
	return nil
}

// releaseAll gives back the pod's mount targets; one the kubelet made goes when no pod uses it.
func (w *worker) releaseAll() {
	w.mu.Lock()
	paths := w.claimed
	w.claimed = nil
	w.mu.Unlock()
	targets.Lock()
	defer targets.Unlock()
	for path := range paths {
		targets.refs[path]--
		if targets.refs[path] <= 0 {
			delete(targets.refs, path)
			if targets.made[path] {
				delete(targets.made, path)
				_ = os.Remove(path)
			}
		}
	}
}

func (w *worker) volumeSource(ctx context.Context, pod *corev1.Pod, vol *corev1.Volume) (string, error) {
	core := w.r.client.CoreV1()
	dir := filepath.Join(w.dir, "volumes", vol.Name)
	switch {
	case vol.PersistentVolumeClaim != nil:
		pvc, err := core.PersistentVolumeClaims(pod.Namespace).Get(ctx, vol.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if pvc.Spec.VolumeName == "" {
			return "", fmt.Errorf("claim %s is not bound", pvc.Name)
		}
		pv, err := core.PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if pv.Spec.HostPath == nil {
			return "", fmt.Errorf("volume %s is not a host directory", pv.Name)
		}
		return pv.Spec.HostPath.Path, nil
	case vol.EmptyDir != nil:
		return dir, os.MkdirAll(dir, 0o755)
	case vol.HostPath != nil:
		return vol.HostPath.Path, nil
	case vol.ConfigMap != nil:
		cm, err := core.ConfigMaps(pod.Namespace).Get(ctx, vol.ConfigMap.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return dir, writeFiles(dir, cm.Data)
	case vol.Secret != nil:
		s, err := core.Secrets(pod.Namespace).Get(ctx, vol.Secret.SecretName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		data := map[string]string{}
		for k, v := range s.Data {
			data[k] = string(v)
		}
		return dir, writeFiles(dir, data)
	}
	return "", nil
}

func writeFiles(dir string, data map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// mountExec is the `mount-exec BIND... -- COMMAND ARGS...` mode: bind each SOURCE:TARGET[:ro]
// in the current mount namespace (the private one `ip netns exec` made), then become COMMAND.
func mountExec(args []string) {
	sep := -1
	for i, a := range args {
		if a == "--" {
			sep = i
			break
		}
	}
	if sep < 0 || sep == len(args)-1 {
		log.Fatal("mount-exec: want BIND... -- COMMAND ARGS...")
	}
	for _, spec := range args[:sep] {
		parts := strings.Split(spec, ":")
		if len(parts) < 2 {
			log.Fatalf("mount-exec: bad bind %q", spec)
		}
		src, dst := parts[0], parts[1]
		if err := syscall.Mount(src, dst, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			log.Fatalf("mount-exec: binding %s to %s: %v", src, dst, err)
		}
		if len(parts) > 2 && parts[2] == "ro" {
			flags := uintptr(syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY)
			if err := syscall.Mount("", dst, "", flags, ""); err != nil {
				log.Fatalf("mount-exec: %s read-only: %v", dst, err)
			}
		}
	}
	command := args[sep+1:]
	path := command[0]
	if !strings.Contains(path, "/") {
		found, err := lookPath(path)
		if err != nil {
			log.Fatalf("mount-exec: %v", err)
		}
		path = found
	}
	log.Fatalf("mount-exec: %v", syscall.Exec(path, command, os.Environ()))
}
