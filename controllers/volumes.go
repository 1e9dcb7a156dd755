package controllers

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
)

// volumeBlocker checks the objects spec.server.volumes mounts: each must
// exist and carry group.LabelMountable=true, since the member pods run a
// command the group's author chooses and would read them. Only metadata is
// read. Nil when every mount is allowed.
func volumeBlocker(ctx context.Context, reader client.Reader, g builder.Group) (*blocker, error) {
	var problems []string
	for _, o := range builder.MountedObjects(g) {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: o.Kind})
		err := reader.Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: o.Name}, m)
		switch {
		case apierrors.IsNotFound(err):
			problems = append(problems, fmt.Sprintf("%s: %s %s not found", o.Field, o.Kind, o.Name))
		case err != nil:
			return nil, err
		case m.Labels[group.LabelMountable] != "true":
			problems = append(problems, fmt.Sprintf("%s: %s %s lacks the label %s=true", o.Field, o.Kind, o.Name, group.LabelMountable))
		}
	}
	if len(problems) == 0 {
		return nil, nil
	}
	return &blocker{reason: licensehav1.ReasonVolumeNotAllowed, failed: true,
		message: strings.Join(problems, "; ") + ". The operator writes no member pod until each mounted object exists and its owner labels it " +
			group.LabelMountable + "=true"}, nil
}

// mountedNames lists the names of the mounted objects of one kind, for the
// indexes that bring a group back when such an object changes.
func mountedNames(g builder.Group, kind string) []string {
	var names []string
	for _, o := range builder.MountedObjects(g) {
		if o.Kind == kind {
			names = append(names, o.Name)
		}
	}
	return names
}
