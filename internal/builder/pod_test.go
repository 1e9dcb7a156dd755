package builder

import (
	"slices"
	"testing"
)

func TestPodHidesTheTokenFromTheServerUnlessTold(t *testing.T) {
	g := FromTriad(fixtureTriad())
	hidden := Pod(g, g.Members[0], Options{Image: "img"})
	if slices.Contains(hidden.Spec.Containers[0].Command, "--hide-token=false") {
		t.Errorf("default command %v: the agent must hide the token", hidden.Spec.Containers[0].Command)
	}
	exposed := Pod(g, g.Members[0], Options{Image: "img", ExposeServerToken: true})
	cmd := exposed.Spec.Containers[0].Command
	i, sep := slices.Index(cmd, "--hide-token=false"), slices.Index(cmd, "--")
	if i < 0 || i > sep {
		t.Errorf("command %v: want --hide-token=false among the agent's flags", cmd)
	}
	if hidden.Annotations[AnnotationTemplateHash] == exposed.Annotations[AnnotationTemplateHash] {
		t.Error("switching the token off must roll the pods")
	}
}
