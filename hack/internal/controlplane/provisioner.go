package controlplane

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

const (
	storageClassName = "standard"
	provisionerName  = "realcluster.licenseha.io/hostpath"
)

// Provisioner is the default StorageClass's dynamic provisioner.
type Provisioner = provisioner

// NewProvisioner provisions hostPath volumes under root; call Run after
// the informers of factory are started.
func NewProvisioner(cs kubernetes.Interface, root string, factory informers.SharedInformerFactory) *Provisioner {
	return newProvisioner(cs, root, factory)
}

// CreateStorageClass creates the default StorageClass "standard".
func (p *Provisioner) CreateStorageClass(ctx context.Context) error { return p.createStorageClass(ctx) }

// Run provisions and deletes volumes until ctx ends.
func (p *Provisioner) Run(ctx context.Context) { p.run(ctx) }

// provisioner is a minimal dynamic provisioner: every pending claim of the
// default StorageClass gets a hostPath PersistentVolume under the state
// directory, pre-bound to the claim (kube-controller-manager's PV controller
// completes the binding), and released volumes are deleted with their data.
type provisioner struct {
	cs      kubernetes.Interface
	root    string
	claims  corev1listers.PersistentVolumeClaimLister
	volumes corev1listers.PersistentVolumeLister
	trigger chan struct{}
}

func newProvisioner(cs kubernetes.Interface, root string, factory informers.SharedInformerFactory) *provisioner {
	p := &provisioner{cs: cs, root: root, trigger: make(chan struct{}, 1)}
	poke := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.poke() },
		UpdateFunc: func(any, any) { p.poke() },
		DeleteFunc: func(any) { p.poke() },
	}
	claims, volumes := factory.Core().V1().PersistentVolumeClaims(), factory.Core().V1().PersistentVolumes()
	_, _ = claims.Informer().AddEventHandler(poke)
	_, _ = volumes.Informer().AddEventHandler(poke)
	p.claims, p.volumes = claims.Lister(), volumes.Lister()
	return p
}

func (p *provisioner) poke() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

func (p *provisioner) createStorageClass(ctx context.Context) error {
	immediate := storagev1.VolumeBindingImmediate
	reclaim := corev1.PersistentVolumeReclaimDelete
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        storageClassName,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       provisionerName,
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &immediate,
	}
	_, err := p.cs.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// run provisions and deletes volumes as claims and volumes change.
func (p *provisioner) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.trigger:
		}
		if err := p.sync(ctx); err != nil && ctx.Err() == nil {
			log.Printf("provisioner: %v", err)
			time.AfterFunc(time.Second, p.poke)
		}
	}
}

func (p *provisioner) sync(ctx context.Context) error {
	claims, err := p.claims.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, c := range claims {
		if c.Spec.VolumeName == "" && c.Status.Phase == corev1.ClaimPending && c.DeletionTimestamp == nil &&
			c.Spec.StorageClassName != nil && *c.Spec.StorageClassName == storageClassName {
			if err := p.provision(ctx, c); err != nil {
				return err
			}
		}
	}
	volumes, err := p.volumes.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, v := range volumes {
		if v.Annotations["pv.kubernetes.io/provisioned-by"] == provisionerName &&
			v.Status.Phase == corev1.VolumeReleased && v.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete {
			if err := os.RemoveAll(v.Spec.HostPath.Path); err != nil {
				return err
			}
			if err := p.cs.CoreV1().PersistentVolumes().Delete(ctx, v.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

func (p *provisioner) provision(ctx context.Context, c *corev1.PersistentVolumeClaim) error {
	name := "pvc-" + string(c.UID)
	path := filepath.Join(p.root, name)
	if err := os.MkdirAll(path, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o777); err != nil {
		return err
	}
	dirType := corev1.HostPathDirectory
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": provisionerName},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: c.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   c.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              storageClassName,
			VolumeMode:                    c.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: c.Namespace, Name: c.Name, UID: c.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &dirType},
			},
		},
	}
	_, err := p.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("provisioning a volume for %s/%s: %w", c.Namespace, c.Name, err)
	}
	return nil
}
