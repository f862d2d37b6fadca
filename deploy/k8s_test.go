package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The PyTorchJob example (a Kubeflow type, outside k8s.io/api) has worker
// pod templates that decode strictly into corev1.PodTemplateSpec and read
// through the node's socket and /dev/shm as stokerd's user.
func TestPyTorchJobExample(t *testing.T) {
	raw, err := os.ReadFile("k8s/pytorchjob-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	var job struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			PytorchReplicaSpecs map[string]struct {
				Replicas      int             `json:"replicas"`
				RestartPolicy string          `json:"restartPolicy"`
				Template      json.RawMessage `json:"template"`
			} `json:"pytorchReplicaSpecs"`
		} `json:"spec"`
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&job); err != nil {
		t.Fatal(err)
	}
	if job.APIVersion != "kubeflow.org/v1" || job.Kind != "PyTorchJob" || len(job.Spec.PytorchReplicaSpecs) == 0 {
		t.Fatalf("%s %s with %d replica specs", job.APIVersion, job.Kind, len(job.Spec.PytorchReplicaSpecs))
	}
	for role, spec := range job.Spec.PytorchReplicaSpecs {
		var tmpl corev1.PodTemplateSpec
		d := json.NewDecoder(bytes.NewReader(spec.Template))
		d.DisallowUnknownFields()
		if err := d.Decode(&tmpl); err != nil {
			t.Fatalf("%s template: %v", role, err)
		}
		c := tmpl.Spec.Containers[0]
		var server string
		for _, e := range c.Env {
			if e.Name == "STOKER_SERVER" {
				server = e.Value
			}
		}
		host := map[string]string{}
		for _, v := range tmpl.Spec.Volumes {
			if v.HostPath != nil {
				host[v.Name] = v.HostPath.Path
			}
		}
		if server != "unix:///run/stoker/stoker.sock" || host["stoker-socket"] != "/run/stoker" || host["shm"] != "/dev/shm" ||
			*tmpl.Spec.SecurityContext.RunAsUser != 65532 || !strings.Contains(strings.Join(c.Command, " "), "torchrun") {
			t.Errorf("%s: server %q, host paths %v, uid %d: want the node's socket and /dev/shm as uid 65532", role, server, host, *tmpl.Spec.SecurityContext.RunAsUser)
		}
	}
}
