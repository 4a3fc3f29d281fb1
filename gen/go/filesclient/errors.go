package filesclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The kinds of failure, for errors.Is. Every error a Client returns for a failed call is an *Error
// that matches one of these (or none, for codes without one, such as INTERNAL); a cancelled or
// expired call matches context.Canceled or context.DeadlineExceeded.
var (
	// ErrNotFound: no such file or upload (also another principal's, which the service hides).
	ErrNotFound = errors.New("not found")
	// ErrUnauthenticated: the token is missing or not accepted.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the caller is known but may not do this.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrTooLarge: the file (or one message) is over a limit of the service.
	ErrTooLarge = errors.New("too large")
	// ErrInvalidArgument: the request is malformed, such as an unknown purpose or a bad expiry.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: the service (or its storage) cannot be reached or is busy; a later try may work.
	ErrUnavailable = errors.New("unavailable")
	// ErrIntegrity: the bytes do not hash to the SHA-256 the service recorded.
	ErrIntegrity = errors.New("integrity check failed")
)

// requestIDHeader is the metadata key the service reads a caller's request id from and echoes it in.
const requestIDHeader = "x-request-id"

// Error is a failed call: its gRPC status code, the service's message and the request id that
// names the call in the service's logs. Match its kind with errors.Is(err, ErrNotFound) and the like.
type Error struct {
	Code      codes.Code
	Message   string
	RequestID string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "files: %s: %s", e.Code, e.Message)
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

// Unwrap returns the sentinel for the error's kind, so errors.Is works through wrapping.
func (e *Error) Unwrap() error { return e.kind() }

// GRPCStatus lets status.FromError and status.Code read the code and message.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

func (e *Error) kind() error {
	switch e.Code {
	case codes.NotFound:
		return ErrNotFound
	case codes.Unauthenticated:
		return ErrUnauthenticated
	case codes.PermissionDenied:
		return ErrPermissionDenied
	case codes.InvalidArgument, codes.OutOfRange:
		return ErrInvalidArgument
	case codes.Unavailable:
		return ErrUnavailable
	case codes.DataLoss:
		return ErrIntegrity
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	case codes.ResourceExhausted:
		// The service says RESOURCE_EXHAUSTED both for a file over a limit ("... is larger than the
		// limit of N bytes"; grpc-go's own message limit says "larger than max") and for being busy
		// with too many uploads, which a retry can cure.
		if isSizeLimit(e.Message) {
			return ErrTooLarge
		}
		return ErrUnavailable
	}
	return nil
}

func isSizeLimit(message string) bool {
	return strings.Contains(message, "larger than")
}

// invalidArgument is a request the library refuses before sending it.
func invalidArgument(format string, args ...any) *Error {
	return &Error{Code: codes.InvalidArgument, Message: fmt.Sprintf(format, args...)}
}

// integrityError reports a SHA-256 mismatch.
func integrityError(what, recorded, computed, requestID string) *Error {
	return &Error{
		Code:      codes.DataLoss,
		Message:   fmt.Sprintf("%s: the service recorded SHA-256 %s but the bytes hash to %s", what, recorded, computed),
		RequestID: requestID,
	}
}

// toError turns what grpc-go returned into an *Error carrying the request id: the one the service
// echoed in the call's trailers or headers, else the one this client sent. Context errors and
// io.EOF pass through unchanged, as do errors that are already an *Error.
func toError(err error, sentID string, mds ...metadata.MD) error {
	if err == nil || err == io.EOF {
		return err
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	id := sentID
	for _, md := range mds {
		if v := md.Get(requestIDHeader); len(v) > 0 && v[0] != "" {
			id = v[0]
			break
		}
	}
	return &Error{Code: st.Code(), Message: st.Message(), RequestID: id}
}

// codeOf is the gRPC code of err (codes.Unknown for errors without one).
func codeOf(err error) codes.Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return status.Code(err)
}
