// Package pipeline turns a stream's samples into ready batches on the
// server: per output, a field of each sample is decoded (JPEG, PNG, WebP,
// .npy, JSON, an integer or text), images are resized, cropped, flipped
// and normalized, and the batch's results are collated into one dense
// tensor per output, written straight into the caller's buffer (a
// shared-memory lease, or a reused buffer sent over TCP).
//
// Every random op draws from a generator keyed by (seed, epoch, the
// sample's position in the epoch's order, the op's index): a sample's
// augmentation is the same whatever the world size, the worker count, a
// resume or the node that made it.
//
// JPEGs are decoded by libjpeg-turbo through cgo when built with
// -tags libjpeg (only the rows and columns the crop needs, scaled in the
// DCT domain when the output is much smaller); otherwise by Go's
// image/jpeg. Resampling follows Pillow's antialiased bilinear filter,
// integer for integer. A Pool of workers, one per core, does the work of
// every stream; each worker reuses its buffers, and the bytes images
// decode to are bounded by the pool's budget.
//
// It imports only the wire format (the request's Pipeline message) of
// Stoker: never the server, the cache or the clients.
package pipeline
