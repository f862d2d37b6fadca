// Package deploy is Stoker's deployment kit and its tests: the container
// image (Dockerfile), the Helm chart (helm/stoker), the systemd unit, the
// Slurm prolog and epilog, the Grafana dashboard (grafana/stoker.json,
// checked against a real server's metrics by the server package's tests).
// It is a module of its own so that the Helm and Kubernetes libraries its
// tests use stay out of stokerd's build.
package deploy
