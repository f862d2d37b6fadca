package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

const chartDir = "helm/stoker"

// allOn turns on every optional part of the chart.
var allOn = map[string]any{
	"auth":           map[string]any{"tokens": []any{"token-one", "token-two"}, "metricsWithoutAuth": false},
	"tls":            map[string]any{"secret": "stoker-tls", "http": true},
	"cluster":        map[string]any{"zone": "rack-7", "zoneLocalOwners": true, "keySecret": "stoker-gossip"},
	"s3":             map[string]any{"endpoint": "https://s3.example.com", "credentialsSecret": "stoker-s3", "allow": []any{"s3://bucket/train/"}, "pathStyle": true},
	"cache":          map[string]any{"type": "ephemeral", "memoryCacheGiB": 32},
	"metrics":        map[string]any{"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prom"}}},
	"exampleTrainer": map[string]any{"enabled": true},
	"shm":            map[string]any{"hostPath": false},
}

// render renders the chart with the given values over its defaults, as
// helm template does, and returns the manifests by template name.
func render(t *testing.T, vals map[string]any) map[string]string {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: "stoker", Namespace: "ml", IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return out
}

// object is a rendered object, decoded strictly into its k8s.io/api type.
type object struct {
	kind, name string
	v          any
}

// serviceMonitor is the part of prometheus-operator's ServiceMonitor the
// chart writes (its Go types live in another module; decoding into this
// strictly still rejects any field the chart misspells).
type serviceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port              string                    `json:"port"`
			Path              string                    `json:"path"`
			Interval          string                    `json:"interval"`
			Scheme            string                    `json:"scheme"`
			BearerTokenSecret *corev1.SecretKeySelector `json:"bearerTokenSecret,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// decodeAll splits the manifests into objects and decodes each strictly
// (unknown fields are errors) into the type its apiVersion and kind name.
func decodeAll(t *testing.T, manifests map[string]string) []object {
	t.Helper()
	var names []string
	for n := range manifests {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []object
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for i, doc := range strings.Split(manifests[name], "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			js, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatalf("%s #%d: not YAML: %v\n%s", name, i, err, doc)
			}
			if string(js) == "null" {
				continue
			}
			var head struct{ APIVersion, Kind string }
			if err := json.Unmarshal(js, &head); err != nil {
				t.Fatal(err)
			}
			var v any
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 DaemonSet":
				v = &appsv1.DaemonSet{}
			case "v1 Service":
				v = &corev1.Service{}
			case "v1 ServiceAccount":
				v = &corev1.ServiceAccount{}
			case "v1 Secret":
				v = &corev1.Secret{}
			case "batch/v1 Job":
				v = &batchv1.Job{}
			case "monitoring.coreos.com/v1 ServiceMonitor":
				v = &serviceMonitor{}
			default:
				t.Fatalf("%s: %s %s: no type to check it against", name, head.APIVersion, head.Kind)
			}
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("%s: %s does not decode strictly into its type: %v\n%s", name, head.Kind, err, doc)
			}
			var meta struct{ Metadata struct{ Name string } }
			_ = json.Unmarshal(js, &meta)
			out = append(out, object{kind: head.Kind, name: meta.Metadata.Name, v: v})
		}
	}
	return out
}

func find[T any](t *testing.T, objs []object) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.v.(T); ok {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T rendered", zero)
	return zero
}

// helm lint passes with the defaults and with every option on.
func TestChartLints(t *testing.T) {
	for name, vals := range map[string]map[string]any{"defaults": nil, "all on": allOn} {
		l := lint.RunAll(chartDir, vals, "ml")
		for _, m := range l.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("%s: helm lint: %s", name, m.Error())
			}
		}
	}
}

// The chart renders, with its defaults, a DaemonSet of stokerd on GPU
// nodes, a headless Service its pods join through, and a ServiceAccount;
// every object decodes strictly into its Kubernetes type, and every flag
// the DaemonSet passes is one stokerd has.
func TestChartDefaults(t *testing.T) {
	objs := decodeAll(t, render(t, nil))
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.kind]++
	}
	if fmt.Sprint(kinds) != "map[DaemonSet:1 Service:1 ServiceAccount:1]" {
		t.Fatalf("rendered %v", kinds)
	}
	ds := find[*appsv1.DaemonSet](t, objs)
	svc := find[*corev1.Service](t, objs)
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	if bad := unknownFlags(c.Args, commandFlags(t, "stokerd")); len(bad) > 0 {
		t.Errorf("the DaemonSet passes flags stokerd does not have: %v", bad)
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--memory-cache=8GiB", "--disk-cache=500GiB", "--unix=/run/stoker/stoker.sock", "--log-format=json",
		"--cluster-addr=$(POD_IP):7946", "--join=" + svc.Name + ".ml.svc:7946", "--node-name=$(NODE_NAME)", "--advertise=$(POD_IP):7470"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	// Sized from --memory-cache: 8 GiB and 1 GiB of overhead, requested
	// and limited alike.
	want := resource.MustParse("9Gi")
	if r, l := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]; r.Cmp(want) != 0 || l.Cmp(want) != 0 {
		t.Errorf("memory request %s, limit %s: want 9Gi for an 8 GiB memory tier", r.String(), l.String())
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v: want GET /healthz on the http port", name, p)
		}
	}
	if svc.Spec.ClusterIP != "None" || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("service %s: clusterIP %q, publishNotReadyAddresses %v: want headless, listing pods before they are ready", svc.Name, svc.Spec.ClusterIP, svc.Spec.PublishNotReadyAddresses)
	}
	if pod.NodeSelector["nvidia.com/gpu.present"] != "true" {
		t.Errorf("node selector %v: want GPU nodes", pod.NodeSelector)
	}
	ann := ds.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "7471" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v", ann)
	}
	hostPaths := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	if hostPaths["cache"] != "/var/cache/stoker" || hostPaths["socket"] != "/run/stoker" || hostPaths["shm"] != "/dev/shm" {
		t.Errorf("host paths %v: want the disk tier, the socket folder and /dev/shm on the node", hostPaths)
	}
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Errorf("pod security context %+v: want non-root uid 65532 (the image's user)", sc)
	}
	if u := ds.Spec.UpdateStrategy.RollingUpdate; u == nil || u.MaxUnavailable.String() != "1" {
		t.Errorf("update strategy %+v: want one node at a time", ds.Spec.UpdateStrategy)
	}
}

// With every option on, the secrets are mounted and named by the flags,
// the disk tier is a per-pod local volume, the ServiceMonitor scrapes over
// HTTPS with the token, and the example trainer mounts the node's socket
// and /dev/shm and reads through them.
func TestChartAllOptions(t *testing.T) {
	objs := decodeAll(t, render(t, allOn))
	ds := find[*appsv1.DaemonSet](t, objs)
	job := find[*batchv1.Job](t, objs)
	sm := find[*serviceMonitor](t, objs)
	secret := find[*corev1.Secret](t, objs)
	c := ds.Spec.Template.Spec.Containers[0]
	if bad := unknownFlags(c.Args, commandFlags(t, "stokerd")); len(bad) > 0 {
		t.Errorf("the DaemonSet passes flags stokerd does not have: %v", bad)
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--auth-token-file=/etc/stoker/auth/tokens", "--tls-cert=/etc/stoker/tls/tls.crt", "--tls-ca=/etc/stoker/tls/ca.crt",
		"--http-tls", "--cluster-key-file=/etc/stoker/gossip/key", "--zone=rack-7", "--zone-local-owners", "--allow-s3=s3://bucket/train/",
		"--s3-path-style", "--memory-cache=32GiB"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if strings.Contains(args, "--metrics-without-auth") {
		t.Error("--metrics-without-auth with metricsWithoutAuth false")
	}
	if secret.StringData["tokens"] != "token-one\ntoken-two\n" {
		t.Errorf("token secret %q", secret.StringData["tokens"])
	}
	if c.LivenessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("liveness probe scheme %s with --http-tls", c.LivenessProbe.HTTPGet.Scheme)
	}
	var cache *corev1.Volume
	for i, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == "cache" {
			cache = &ds.Spec.Template.Spec.Volumes[i]
		}
	}
	if cache == nil || cache.Ephemeral == nil || *cache.Ephemeral.VolumeClaimTemplate.Spec.StorageClassName != "local-nvme" {
		t.Errorf("cache volume %+v: want a generic ephemeral volume of the local storage class", cache)
	}
	if ep := sm.Spec.Endpoints; len(ep) != 1 || ep[0].Scheme != "https" || ep[0].BearerTokenSecret == nil || ep[0].Port != "http" {
		t.Errorf("service monitor endpoints %+v: want https with the token", ep)
	}
	if sm.Metadata.Labels["release"] != "prom" {
		t.Errorf("service monitor labels %v", sm.Metadata.Labels)
	}
	tc := job.Spec.Template.Spec.Containers[0]
	if bad := unknownFlags(tc.Args[1:], commandFlags(t, "stoker", "read")); len(bad) > 0 {
		t.Errorf("the example trainer passes flags stoker read does not have: %v", bad)
	}
	mounts := map[string]string{}
	for _, m := range tc.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	host := map[string]string{}
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.HostPath != nil {
			host[v.Name] = v.HostPath.Path
		}
	}
	if mounts["stoker-socket"] != "/run/stoker" || host["stoker-socket"] != "/run/stoker" || host["shm"] != "/dev/shm" {
		t.Errorf("trainer mounts %v of host paths %v: want the node's socket folder and /dev/shm", mounts, host)
	}
	if len(tc.Env) == 0 || tc.Env[0].Value != "unix:///run/stoker/stoker.sock" || !strings.Contains(strings.Join(tc.Args, " "), "--shm") {
		t.Errorf("trainer env %v args %v: want STOKER_SERVER on the node's socket and shared memory", tc.Env, tc.Args)
	}
	if *job.Spec.Template.Spec.SecurityContext.RunAsUser != *ds.Spec.Template.Spec.SecurityContext.RunAsUser {
		t.Error("the trainer does not run as stokerd's user: it could not map the shared-memory regions")
	}
}

// A bad value is refused at render time, naming it.
func TestChartRefusesBadCacheType(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := util.ToRenderValues(ch, map[string]any{"cache": map[string]any{"type": "nfs"}}, common.ReleaseOptions{Name: "stoker", Namespace: "ml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Render(ch, rv); err == nil || !strings.Contains(err.Error(), "cache.type") {
		t.Fatalf("render with cache.type nfs: %v, want an error naming cache.type", err)
	}
}
