// Package shm is the shared-memory mechanism of stokerd's local delivery:
// a Registry of the open regions, each a file in the shm folder
// (stoker-PID-ID.shm) mapped shared with one local client; a Region hands
// out Leases of its bytes in order, as a ring, and takes them back by id
// out of order, from release calls or from the release ring the client
// writes in the region's first RingBytes. The Registry counts regions,
// leases and bytes for the server's Stats and metrics, and sweeps the
// files of dead servers.
//
// It knows bytes and lease ids only: what goes in a lease (samples,
// batches, extents, the memory tier) is the server's, which imports it. It
// imports nothing of Stoker: never the server, the wire format, the cache
// or the clients.
package shm
