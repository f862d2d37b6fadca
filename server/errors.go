package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

// toStatus turns an error from the layers below into a gRPC status whose
// message keeps what failed and where (the shard or field). Only this
// package maps errors to codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !errors.As(err, new(*storage.Error)) {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, shuffle.ErrInvalid), errors.Is(err, storage.ErrBadURL):
		code = codes.InvalidArgument
	case errors.Is(err, storage.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, storage.ErrPermission):
		code = codes.PermissionDenied
	case errors.Is(err, storage.ErrCorrupt):
		code = codes.DataLoss
	case errors.Is(err, storage.ErrChanged):
		code = codes.Aborted
	case errors.Is(err, storage.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, storage.ErrTooLarge):
		code = codes.ResourceExhausted
	}
	return status.Error(code, err.Error())
}

// invalid is an InvalidArgument error naming the request field.
func invalid(field, msg string) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, msg)
}
