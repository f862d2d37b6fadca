package tlsfiles_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/clients/tlsfiles"
	"github.com/stoker-data/stoker/clients/tlsfiles/tlstest"
)

func TestLoadRefusesIncompleteSets(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	f := tlstest.Write(t, dir, "x", ca.Issue(t, "x"), ca)
	tlstest.WriteFile(t, filepath.Join(dir, "empty.pem"), []byte("no PEM here\n"))
	for _, tc := range []struct {
		name          string
		ca, cert, key string
		want          string
	}{
		{"nothing", "", "", "", "no CA, certificate or key"},
		{"cert without key", f.CA, f.Cert, "", "give both"},
		{"key without cert", "", "", f.Key, "give both"},
		{"missing file", filepath.Join(dir, "absent.pem"), "", "", "absent.pem"},
		{"CA without PEM", filepath.Join(dir, "empty.pem"), "", "", "no PEM certificate"},
		{"key of another certificate", "", f.Cert, f.CA, "x.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsfiles.Load(tc.ca, tc.cert, tc.key, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
