package stoker_test

import (
	"context"
	"fmt"
	"log"

	"github.com/stoker-data/stoker/clients/stoker"
)

// A trainer dials a server that serves mutual TLS (stokerd --tls-cert,
// --tls-key, --tls-ca) with its CA bundle, certificate and key. The files
// are re-read when they change: the next connection uses a rotated
// certificate without a new Client.
func ExampleWithTLSFiles() {
	files, err := stoker.LoadTLSFiles("/etc/stoker/ca.pem", "/etc/stoker/trainer.pem", "/etc/stoker/trainer-key.pem", nil)
	if err != nil {
		log.Fatal(err)
	}
	c, err := stoker.Dial("stoker-node-1.example:7470", stoker.WithTLSFiles(files))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	st, err := c.Stats(context.Background())
	if err != nil {
		log.Fatal(err) // a TLS problem names itself: "certificate required", "unknown authority", "requires TLS"
	}
	fmt.Println(st.GetSamplesServed())
}
