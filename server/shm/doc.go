// Package shm is the shared-memory mechanism of stokerd's local delivery:
// a Registry of the open regions, each a file in the shm folder
// (stoker-PID-ID.shm) mapped shared with one local client; a Region hands
// out Leases of its bytes next-fit from where the last one ended, around
// the live ones, and takes them back by id out of order, from release
// calls or from the release ring the client writes in the region's first
// RingBytes. The Registry counts regions, leases and bytes for the
// server's Stats and metrics, and sweeps the files of dead servers.
//
// Views that hold their leases. A client may keep a message's bytes as
// long as it likes (Python views that hold their lease): it writes the
// last step it has whole to the ring, so a lease of an earlier step that
// is not released is held by a view, and one of a later step is in
// flight. Why this is safe:
//
//   - No stream waits forever on a view: Alloc waits only when the
//     release of leases in flight could make room (the client releases
//     or takes those as it reads on), never for held views nor the
//     step's own leases; when only their release would do, or held views
//     take over half the region, it returns ErrHeld and the server sends
//     the message's bytes in the message. FuzzRegionAlloc checks that an
//     alloc waits only with a lease in flight.
//   - Held bytes are never reused: a lease is freed only by its id (ring
//     or call) or by the region's Close, and Close happens only once the
//     client is gone (below), so what a live view points at stays put.
//   - A region outlives its stream only while the client is there:
//     Drain waits for the leases in flight (so the client had every
//     message, and mapped the region), then Detach keeps a region with
//     held leases until they are released, until no process holds the
//     shared flock the client takes on the region file (it goes with the
//     client's last descriptor: a client that dies lets it go), or the
//     Registry closes. Its bytes count against the server's limits until
//     then.
//   - Held views pin memory-tier shards only within a bound: the server
//     asks Held before leaving fields in the tier and copies them into
//     the region when held views pin over half the region's size.
//
// It knows bytes and lease ids only: what goes in a lease (samples,
// batches, extents, the memory tier) is the server's, which imports it. It
// imports nothing of Stoker: never the server, the wire format, the cache
// or the clients.
package shm
