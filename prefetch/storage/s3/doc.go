// Package s3 is the storage.Source for s3:// URLs, through aws-sdk-go-v2:
// any S3-compatible store, with retries of throttling and broken bodies,
// a read idle timeout, and version tokens for stores without ETags.
// s3test runs a real S3 server (versitygw) for tests.
//
// s3 imports only storage of Stoker.
package s3
