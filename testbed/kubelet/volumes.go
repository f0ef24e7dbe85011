package main

// Volumes. PersistentVolumeClaims get a PersistentVolume each, provisioned here as a directory
// under STATE/volumes (a hostPath volume pre-bound to the claim; the controller-manager's
// PersistentVolume controller completes the binding, after which the scheduler places the pod);
// a released one is deleted with its directory, as reclaimPolicy Delete says. The kubelet keeps
// the default StorageClass, testbed, which allows expansion: a bound claim whose request grows
// gets the new size on its volume and in its status, as an external resizer and a kubelet would
// give it (online; a directory has no size). A container sees its volumes at their mount paths
// through bind mounts in the mount namespace `ip netns exec` gives it (made by this binary's
// `mount-exec` mode just before the container's command), so nothing is mounted in the machine's
// own mount namespace. A mount path that does not exist on the machine is created for the pod,
// with any missing parents, and removed again when no pod uses it. Projected volumes hold
// service-account tokens (TokenRequests bound to the pod), ConfigMap and Secret keys and
// downward-API fields: the ServiceAccount admission plugin gives every pod one
// (kube-api-access-*), which in-cluster clients read at
// /var/run/secrets/kubernetes.io/serviceaccount. Contents are written when a container starts
// and not refreshed: a token lives its expirationSeconds (1 h by default; a year for the
// admission plugin's, whose 3607 s the API server extends), longer than a test run.

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// provisionedBy is the provisioner the kubelet provisions as: the testbed StorageClass's, and
// the pv.kubernetes.io/provisioned-by annotation of the volumes it makes.
const provisionedBy = "sluice.test/testbed-kubelet"

// storageClass is the default StorageClass the kubelet keeps (ensureStorageClass).
const storageClass = "testbed"

// The annotations that make a StorageClass the default (the beta one is still honoured).
const (
	defaultClassAnnotation     = "storageclass.kubernetes.io/is-default-class"
	betaDefaultClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
)

// ensureStorageClass creates the default StorageClass, `testbed`, whose claims the kubelet
// provisions and expands (allowVolumeExpansion: the PersistentVolumeClaimResize admission
// plugin refuses to grow a claim of a class without it). One that exists is left as it is.
func ensureStorageClass(ctx context.Context, client kubernetes.Interface) error {
	expand := true
	reclaimPolicy := corev1.PersistentVolumeReclaimDelete
	binding := storagev1.VolumeBindingImmediate
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        storageClass,
			Annotations: map[string]string{defaultClassAnnotation: "true"},
		},
		Provisioner:          provisionedBy,
		ReclaimPolicy:        &reclaimPolicy,
		AllowVolumeExpansion: &expand,
		VolumeBindingMode:    &binding,
	}
	_, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// provision creates a PersistentVolume for every pending claim, grows the volumes of bound
// claims whose request grew (expand), and deletes released ones it made, with their data.
func provision(ctx context.Context, client kubernetes.Interface, stateDir string) {
	factory := informers.NewSharedInformerFactory(client, 30*time.Second)
	// The classes first: a claim without one waits for the default class, if there is one.
	classes := factory.Storage().V1().StorageClasses()
	classes.Informer()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	claims := factory.Core().V1().PersistentVolumeClaims().Informer()
	volumes := factory.Core().V1().PersistentVolumes().Informer()
	onClaim := func(pvc *corev1.PersistentVolumeClaim) {
		provisionFor(ctx, client, stateDir, classes.Lister(), pvc)
		expandFor(ctx, client, pvc)
	}
	_, _ = claims.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { onClaim(obj.(*corev1.PersistentVolumeClaim)) },
		UpdateFunc: func(_, obj any) { onClaim(obj.(*corev1.PersistentVolumeClaim)) },
	})
	_, _ = volumes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { reclaim(ctx, client, obj.(*corev1.PersistentVolume)) },
		UpdateFunc: func(_, obj any) { reclaim(ctx, client, obj.(*corev1.PersistentVolume)) },
	})
	factory.Start(ctx.Done())
	<-ctx.Done()
}

// provisionFor makes a pending claim's volume, of the claim's class (the PersistentVolume
// controller binds a claim only to a volume of its class). A claim without a class made
// before the default class existed gets that class from the PersistentVolume controller
// first, so it waits for it while there is a default class.
func provisionFor(ctx context.Context, client kubernetes.Interface, stateDir string, classes storagelisters.StorageClassLister, pvc *corev1.PersistentVolumeClaim) {
	if pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending || pvc.DeletionTimestamp != nil {
		return
	}
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	} else if hasDefaultClass(classes) {
		return
	}
	name := "pv-" + string(pvc.UID)
	dir := filepath.Join(stateDir, "volumes", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Printf("pvc %s/%s: %v", pvc.Namespace, pvc.Name, err)
		return
	}
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
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

// hasDefaultClass says whether a StorageClass is marked the default (as the
// DefaultStorageClass admission plugin and the PersistentVolume controller read it).
func hasDefaultClass(classes storagelisters.StorageClassLister) bool {
	all, err := classes.List(labels.Everything())
	if err != nil {
		return false
	}
	for _, c := range all {
		if c.Annotations[defaultClassAnnotation] == "true" ||
			c.Annotations[betaDefaultClassAnnotation] == "true" {
			return true
		}
	}
	return false
}

// expandFor grows the volume of a bound claim whose storage request exceeds its capacity, as an
// external resizer and the kubelet would for an online expansion: the claim's
// allocatedResources and a ControllerResizeInProgress status (and the Resizing condition)
// first, then the volume's capacity, then the claim's capacity with the resize status and
// conditions cleared. A directory has no size, so nothing else changes and the pod runs on.
// Each step reads the claim or volume afresh and retries on conflicts; a step that fails is
// tried again at the informer's next resync.
func expandFor(ctx context.Context, client kubernetes.Interface, pvc *corev1.PersistentVolumeClaim) {
	if !wantsExpansion(pvc) {
		return
	}
	claims := client.CoreV1().PersistentVolumeClaims(pvc.Namespace)
	pvs := client.CoreV1().PersistentVolumes()
	var size resource.Quantity
	var pvName string
	// updateClaimStatus applies change to the claim, if it still wants to grow, bound to a
	// volume this kubelet made; the first time (pick) the size is the claim's request then.
	updateClaimStatus := func(pick bool, change func(*corev1.PersistentVolumeClaim)) (bool, error) {
		todo := false
		err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			fresh, err := claims.Get(ctx, pvc.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if todo = fresh.UID == pvc.UID && wantsExpansion(fresh); !todo {
				return nil
			}
			pv, err := pvs.Get(ctx, fresh.Spec.VolumeName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if todo = pv.Annotations["pv.kubernetes.io/provisioned-by"] == provisionedBy && pv.Spec.HostPath != nil; !todo {
				return nil
			}
			if pick {
				size, pvName = fresh.Spec.Resources.Requests[corev1.ResourceStorage], pv.Name
			}
			change(fresh)
			_, err = claims.UpdateStatus(ctx, fresh, metav1.UpdateOptions{})
			return err
		})
		return todo, err
	}
	what := fmt.Sprintf("pvc %s/%s: expanding", pvc.Namespace, pvc.Name)
	todo, err := updateClaimStatus(true, func(c *corev1.PersistentVolumeClaim) {
		setStorage(&c.Status.AllocatedResources, size)
		if c.Status.AllocatedResourceStatuses == nil {
			c.Status.AllocatedResourceStatuses = map[corev1.ResourceName]corev1.ClaimResourceStatus{}
		}
		c.Status.AllocatedResourceStatuses[corev1.ResourceStorage] = corev1.PersistentVolumeClaimControllerResizeInProgress
		c.Status.Conditions = append(withoutResizeConditions(c.Status.Conditions), corev1.PersistentVolumeClaimCondition{
			Type: corev1.PersistentVolumeClaimResizing, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now(),
		})
	})
	if err != nil || !todo {
		if err != nil {
			log.Printf("%s: %v", what, err)
		}
		return
	}
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		pv, err := pvs.Get(ctx, pvName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if current := pv.Spec.Capacity[corev1.ResourceStorage]; current.Cmp(size) >= 0 {
			return nil
		}
		setStorage(&pv.Spec.Capacity, size)
		_, err = pvs.Update(ctx, pv, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		log.Printf("%s: volume %s: %v", what, pvName, err)
		return
	}
	_, err = updateClaimStatus(false, func(c *corev1.PersistentVolumeClaim) {
		setStorage(&c.Status.Capacity, size)
		setStorage(&c.Status.AllocatedResources, size)
		delete(c.Status.AllocatedResourceStatuses, corev1.ResourceStorage)
		if len(c.Status.AllocatedResourceStatuses) == 0 {
			c.Status.AllocatedResourceStatuses = nil
		}
		c.Status.Conditions = withoutResizeConditions(c.Status.Conditions)
	})
	if err != nil {
		log.Printf("%s: %v", what, err)
		return
	}
	log.Printf("pvc %s/%s: volume %s expanded to %s", pvc.Namespace, pvc.Name, pvName, size.String())
}

// wantsExpansion says whether a bound claim asks for more storage than it has.
func wantsExpansion(pvc *corev1.PersistentVolumeClaim) bool {
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" || pvc.DeletionTimestamp != nil {
		return false
	}
	want, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	have := pvc.Status.Capacity[corev1.ResourceStorage]
	return ok && want.Cmp(have) > 0
}

func setStorage(list *corev1.ResourceList, size resource.Quantity) {
	if *list == nil {
		*list = corev1.ResourceList{}
	}
	(*list)[corev1.ResourceStorage] = size
}

// withoutResizeConditions drops the conditions a resize goes through.
func withoutResizeConditions(conds []corev1.PersistentVolumeClaimCondition) []corev1.PersistentVolumeClaimCondition {
	var kept []corev1.PersistentVolumeClaimCondition
	for _, c := range conds {
		switch c.Type {
		case corev1.PersistentVolumeClaimResizing, corev1.PersistentVolumeClaimFileSystemResizePending,
			corev1.PersistentVolumeClaimControllerResizeError, corev1.PersistentVolumeClaimNodeResizeError:
			continue
		}
		kept = append(kept, c)
	}
	return kept
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
// preparing ConfigMap, Secret, downward-API, projected and emptyDir contents under the pod's
// directory, and claiming the targets (made on the machine when missing, removed when no pod
// uses them any more).
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
			continue // a kind of volume the test bed has no use for: left out
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
// and the directories this kubelet made for them (a target and its missing parents).
var targets = struct {
	sync.Mutex
	refs map[string]int
	made map[string]bool
}{refs: map[string]int{}, made: map[string]bool{}}

// claim records that this pod mounts at `path`, making the directory (and its parents) when it
// is missing.
func (w *worker) claim(path string) error {
	path = filepath.Clean(path)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.claimed[path] {
		return nil
	}
	targets.Lock()
	defer targets.Unlock()
	var missing []string // deepest first
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); !os.IsNotExist(err) || p == filepath.Dir(p) {
			break
		}
		missing = append(missing, p)
	}
	if len(missing) > 0 {
		if err := os.MkdirAll(path, 0o755); err != nil {
			for _, p := range missing {
				_ = os.Remove(p)
			}
			return err
		}
		for _, p := range missing {
			targets.made[p] = true
		}
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
		if targets.refs[path] > 0 {
			continue
		}
		delete(targets.refs, path)
		// Up from the target, the directories made for it, as long as no other target lies
		// at or below them (another pod may have found /var/run/secrets made and left it
		// unrecorded for itself).
		for p := path; targets.made[p] && !targetBelow(p); p = filepath.Dir(p) {
			if os.Remove(p) != nil {
				break
			}
			delete(targets.made, p)
		}
	}
}

// targetBelow says whether a claimed target is dir or lies under it (targets held).
func targetBelow(dir string) bool {
	for t := range targets.refs {
		if t == dir || strings.HasPrefix(t, dir+string(filepath.Separator)) {
			return true
		}
	}
	return false
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
	}
	files := map[string]file{}
	var err error
	switch {
	case vol.ConfigMap != nil:
		v := vol.ConfigMap
		err = w.configMapFiles(ctx, pod, v.Name, v.Items, v.Optional, v.DefaultMode, files)
	case vol.Secret != nil:
		v := vol.Secret
		err = w.secretFiles(ctx, pod, v.SecretName, v.Items, v.Optional, v.DefaultMode, files)
	case vol.DownwardAPI != nil:
		err = w.downwardFiles(pod, vol.DownwardAPI.Items, vol.DownwardAPI.DefaultMode, files)
	case vol.Projected != nil:
		mode := vol.Projected.DefaultMode
		for _, src := range vol.Projected.Sources {
			switch {
			case src.ServiceAccountToken != nil:
				err = w.tokenFile(ctx, pod, src.ServiceAccountToken, mode, files)
			case src.ConfigMap != nil:
				p := src.ConfigMap
				err = w.configMapFiles(ctx, pod, p.Name, p.Items, p.Optional, mode, files)
			case src.Secret != nil:
				p := src.Secret
				err = w.secretFiles(ctx, pod, p.Name, p.Items, p.Optional, mode, files)
			case src.DownwardAPI != nil:
				err = w.downwardFiles(pod, src.DownwardAPI.Items, mode, files)
			default:
				err = fmt.Errorf("a kind of projection the test bed does not make")
			}
			if err != nil {
				break
			}
		}
	default:
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return dir, writeFiles(dir, files)
}

// file is one file of a volume: its content and mode.
type file struct {
	data []byte
	mode os.FileMode
}

// fileMode is an item's mode, else the volume's default, else 0644 (as the API defaults it).
func fileMode(item, volume *int32) os.FileMode {
	switch {
	case item != nil:
		return os.FileMode(*item)
	case volume != nil:
		return os.FileMode(*volume)
	}
	return 0o644
}

// keyFiles adds the keys `items` name (each at its path), or every key under its own name.
func keyFiles(what string, data map[string][]byte, items []corev1.KeyToPath, optional bool, mode *int32, files map[string]file) error {
	if len(items) == 0 {
		for k, v := range data {
			files[k] = file{v, fileMode(nil, mode)}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("%s has no key %s", what, it.Key)
		}
		files[it.Path] = file{v, fileMode(it.Mode, mode)}
	}
	return nil
}

func (w *worker) configMapFiles(ctx context.Context, pod *corev1.Pod, name string, items []corev1.KeyToPath, optional *bool, mode *int32, files map[string]file) error {
	opt := optional != nil && *optional
	cm, err := w.r.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if opt && apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	data := map[string][]byte{}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	return keyFiles("ConfigMap "+name, data, items, opt, mode, files)
}

func (w *worker) secretFiles(ctx context.Context, pod *corev1.Pod, name string, items []corev1.KeyToPath, optional *bool, mode *int32, files map[string]file) error {
	opt := optional != nil && *optional
	s, err := w.r.client.CoreV1().Secrets(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if opt && apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	return keyFiles("Secret "+name, s.Data, items, opt, mode, files)
}

// downwardFiles adds the pod's fields; whole label and annotation maps as key="value" lines.
func (w *worker) downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, mode *int32, files map[string]file) error {
	for _, it := range items {
		var v string
		switch {
		case it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.labels":
			v = keyValueLines(pod.Labels)
		case it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.annotations":
			v = keyValueLines(pod.Annotations)
		case it.FieldRef != nil:
			var err error
			if v, err = w.field(pod, it.FieldRef.FieldPath); err != nil {
				return err
			}
		case it.ResourceFieldRef != nil:
			v = "0" // as for env: no resources are accounted here
		}
		files[it.Path] = file{[]byte(v), fileMode(it.Mode, mode)}
	}
	return nil
}

func keyValueLines(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for k, v := range m {
		lines = append(lines, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// tokenFile adds a token for the pod's service account, bound to the pod as a real kubelet's
// is (so it dies with the pod, and the API server gives the admission plugin's its long life).
func (w *worker) tokenFile(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection, mode *int32, files map[string]file) error {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tr, err := w.r.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for service account %s: %w", sa, err)
	}
	files[src.Path] = file{[]byte(tr.Status.Token), fileMode(nil, mode)}
	return nil
}

// writeFiles writes each file by renaming a complete copy into place: the volume's directory is
// bind-mounted, so a container that is running while another one of the pod starts (and writes
// the volume again) never reads half a file.
func writeFiles(dir string, files map[string]file) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, f := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), ".writing-")
		if err != nil {
			return err
		}
		_, err = tmp.Write(f.data)
		if err == nil {
			err = tmp.Chmod(f.mode)
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			_ = os.Remove(tmp.Name())
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
