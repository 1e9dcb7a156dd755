package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// volumeManager materialises a pod's volumes under <pod dir>/volumes and
// keeps the API-backed ones (configMap, secret, downwardAPI, projected) up
// to date.
type volumeManager struct {
	cs     kubernetes.Interface
	dir    string
	gid    int                    // the pod's fsGroup, -1 without one
	tokens map[string]cachedToken // by volume/path
}

type cachedToken struct {
	token   string
	refresh time.Time
}

func newVolumeManager(cs kubernetes.Interface, podDir string, fsGroup *int64) *volumeManager {
	gid := -1
	if fsGroup != nil {
		gid = int(*fsGroup)
	}
	return &volumeManager{cs: cs, dir: filepath.Join(podDir, "volumes"), gid: gid, tokens: map[string]cachedToken{}}
}

// setup creates every volume of the pod and returns their host paths.
func (vm *volumeManager) setup(ctx context.Context, pod *corev1.Pod) (map[string]string, error) {
	paths := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		path, err := vm.setupVolume(ctx, pod, v)
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		paths[v.Name] = path
	}
	return paths, nil
}

func (vm *volumeManager) setupVolume(ctx context.Context, pod *corev1.Pod, v corev1.Volume) (string, error) {
	dir := filepath.Join(vm.dir, v.Name)
	switch {
	case v.EmptyDir != nil:
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return "", err
		}
		return dir, os.Chmod(dir, 0o777)
	case v.HostPath != nil:
		return hostPathVolume(v.HostPath)
	case v.PersistentVolumeClaim != nil:
		return vm.claimPath(ctx, pod.Namespace, v.PersistentVolumeClaim.ClaimName)
	case v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Projected != nil:
		_, err := vm.render(ctx, pod, v)
		return dir, err
	}
	return "", fmt.Errorf("unsupported volume type (the local cluster supports emptyDir, hostPath, configMap, secret, downwardAPI, projected and persistentVolumeClaim)")
}

// refresh re-renders the API-backed volumes from the current objects.
func (vm *volumeManager) refresh(ctx context.Context, pod *corev1.Pod) error {
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil {
			if _, err := vm.render(ctx, pod, v); err != nil {
				return fmt.Errorf("volume %q: %w", v.Name, err)
			}
		}
	}
	return nil
}

func (vm *volumeManager) render(ctx context.Context, pod *corev1.Pod, v corev1.Volume) (bool, error) {
	p := payload{}
	var err error
	switch {
	case v.ConfigMap != nil:
		err = vm.configMapFiles(ctx, pod.Namespace, &v.ConfigMap.LocalObjectReference, v.ConfigMap.Items, v.ConfigMap.Optional, mode(v.ConfigMap.DefaultMode), p)
	case v.Secret != nil:
		ref := &corev1.LocalObjectReference{Name: v.Secret.SecretName}
		err = vm.secretFiles(ctx, pod.Namespace, ref, v.Secret.Items, v.Secret.Optional, mode(v.Secret.DefaultMode), p)
	case v.DownwardAPI != nil:
		err = downwardAPIFiles(pod, v.DownwardAPI.Items, mode(v.DownwardAPI.DefaultMode), p)
	case v.Projected != nil:
		err = vm.projectedFiles(ctx, pod, v.Name, v.Projected, p)
	}
	if err != nil {
		return false, err
	}
	return writeAtomic(filepath.Join(vm.dir, v.Name), p, vm.gid)
}

func mode(m *int32) os.FileMode {
	if m == nil {
		return 0o644
	}
	return os.FileMode(*m)
}

func itemMode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m)
}

func (vm *volumeManager) configMapFiles(ctx context.Context, ns string, ref *corev1.LocalObjectReference, items []corev1.KeyToPath, opt *bool, def os.FileMode, p payload) error {
	cm, err := vm.cs.CoreV1().ConfigMaps(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && opt != nil && *opt {
			return nil
		}
		return fmt.Errorf("ConfigMap %s: %w", ref.Name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return project(data, items, opt, def, "ConfigMap "+ref.Name, p)
}

func (vm *volumeManager) secretFiles(ctx context.Context, ns string, ref *corev1.LocalObjectReference, items []corev1.KeyToPath, opt *bool, def os.FileMode, p payload) error {
	s, err := vm.cs.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && opt != nil && *opt {
			return nil
		}
		return fmt.Errorf("Secret %s: %w", ref.Name, err)
	}
	return project(s.Data, items, opt, def, "Secret "+ref.Name, p)
}

// project copies all keys, or the listed items to their paths.
func project(data map[string][]byte, items []corev1.KeyToPath, opt *bool, def os.FileMode, what string, p payload) error {
	if len(items) == 0 {
		for k, v := range data {
			p[k] = fileContent{data: v, mode: def}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if opt != nil && *opt {
				continue
			}
			return fmt.Errorf("key %q not in %s", it.Key, what)
		}
		p[it.Path] = fileContent{data: v, mode: itemMode(it.Mode, def)}
	}
	return nil
}

func downwardAPIFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, def os.FileMode, p payload) error {
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = podFieldValue(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			v, err = resourceFieldValue(containerNamed(pod, it.ResourceFieldRef.ContainerName), it.ResourceFieldRef)
		}
		if err != nil {
			return err
		}
		p[it.Path] = fileContent{data: []byte(v), mode: itemMode(it.Mode, def)}
	}
	return nil
}

func containerNamed(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return &corev1.Container{}
}

func (vm *volumeManager) projectedFiles(ctx context.Context, pod *corev1.Pod, volume string, src *corev1.ProjectedVolumeSource, p payload) error {
	def := mode(src.DefaultMode)
	for _, s := range src.Sources {
		var err error
		switch {
		case s.ConfigMap != nil:
			err = vm.configMapFiles(ctx, pod.Namespace, &s.ConfigMap.LocalObjectReference, s.ConfigMap.Items, s.ConfigMap.Optional, def, p)
		case s.Secret != nil:
			err = vm.secretFiles(ctx, pod.Namespace, &s.Secret.LocalObjectReference, s.Secret.Items, s.Secret.Optional, def, p)
		case s.DownwardAPI != nil:
			err = downwardAPIFiles(pod, s.DownwardAPI.Items, def, p)
		case s.ServiceAccountToken != nil:
			var token string
			token, err = vm.serviceAccountToken(ctx, pod, volume, s.ServiceAccountToken)
			p[s.ServiceAccountToken.Path] = fileContent{data: []byte(token), mode: def}
		default:
			err = fmt.Errorf("unsupported projected source (clusterTrustBundle and podCertificate are not implemented)")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// serviceAccountToken requests a pod-bound token through the TokenRequest
// API and renews it after 80% of its lifetime, like the kubelet.
func (vm *volumeManager) serviceAccountToken(ctx context.Context, pod *corev1.Pod, volume string, src *corev1.ServiceAccountTokenProjection) (string, error) {
	key := volume + "/" + src.Path
	if t, ok := vm.tokens[key]; ok && time.Now().Before(t.refresh) {
		return t.token, nil
	}
	expiration := int64(3600)
	if src.ExpirationSeconds != nil {
		expiration = *src.ExpirationSeconds
	}
	req := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: &expiration,
		BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	resp, err := vm.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for ServiceAccount %s: %w", sa, err)
	}
	lifetime := time.Until(resp.Status.ExpirationTimestamp.Time)
	vm.tokens[key] = cachedToken{token: resp.Status.Token, refresh: time.Now().Add(lifetime * 8 / 10)}
	return resp.Status.Token, nil
}

func hostPathVolume(src *corev1.HostPathVolumeSource) (string, error) {
	t := corev1.HostPathUnset
	if src.Type != nil {
		t = *src.Type
	}
	switch t {
	case corev1.HostPathDirectoryOrCreate:
		return src.Path, os.MkdirAll(src.Path, 0o755)
	case corev1.HostPathFileOrCreate:
		if err := os.MkdirAll(filepath.Dir(src.Path), 0o755); err != nil {
			return "", err
		}
		f, err := os.OpenFile(src.Path, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return "", err
		}
		return src.Path, f.Close()
	}
	if _, err := os.Stat(src.Path); err != nil && t != corev1.HostPathUnset {
		return "", err
	}
	return src.Path, nil
}

// claimPath is the host directory of the PersistentVolume bound to a claim.
func (vm *volumeManager) claimPath(ctx context.Context, ns, claim string) (string, error) {
	pvc, err := vm.cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("PersistentVolumeClaim %s: %w", claim, err)
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return "", fmt.Errorf("PersistentVolumeClaim %s is not bound yet", claim)
	}
	pv, err := vm.cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if pv.Spec.HostPath == nil {
		return "", fmt.Errorf("PersistentVolume %s is not a hostPath volume", pv.Name)
	}
	return pv.Spec.HostPath.Path, nil
}
