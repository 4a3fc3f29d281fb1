package filesclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"time"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// Client is a connection to the Files service. It is safe for concurrent use; Close it when done.
type Client struct {
	conn    *grpc.ClientConn
	rpc     filesv1.FilesServiceClient
	timeout time.Duration
}

// Dial connects to the service at target ("host:port") and checks that it answers (with the
// standard gRPC health service, which needs no credentials), so an unreachable address, a TLS
// mismatch or an untrusted certificate fails here with the reason rather than on the first call.
// The connection is plaintext unless a TLS option is given.
func Dial(ctx context.Context, target string, opts ...Option) (*Client, error) {
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	settings := dialSettings{timeout: DefaultTimeout}
	for _, opt := range opts {
		if err := opt(&settings); err != nil {
			return nil, err
		}
	}
	dialOptions, err := settings.grpcDialOptions()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(target, dialOptions...)
	if err != nil {
		return nil, invalidArgument("target %q: %v", target, err)
	}
	c := &Client{conn: conn, rpc: filesv1.NewFilesServiceClient(conn), timeout: settings.timeout}
	if err := c.checkReachable(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func checkTarget(target string) error {
	if target == "" {
		return invalidArgument("the target is empty: give the service's address as host:port")
	}
	if u, err := url.Parse(target); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		return invalidArgument("target %q is a URL: give host:port (and WithTLS for https)", target)
	}
	return nil
}

// checkReachable makes one health check. A server without the health service still proved it
// answers gRPC.
func (c *Client) checkReachable(ctx context.Context) error {
	ctx, cancel := c.metadataCall(ctx)
	defer cancel()
	err := c.invoke(ctx, func(ctx context.Context, opts ...grpc.CallOption) error {
		_, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{}, opts...)
		return err
	})
	if codeOf(err) == codes.Unimplemented {
		return nil
	}
	return err
}

// Close closes the connection; calls in flight fail.
func (c *Client) Close() error { return c.conn.Close() }

// Service is the generated client on the same connection, for what this package does not wrap.
// Its errors are plain gRPC status errors.
func (c *Client) Service() filesv1.FilesServiceClient { return c.rpc }

// Get returns a file's metadata.
func (c *Client) Get(ctx context.Context, fileID string) (*filesv1.File, error) {
	if err := checkFileID(fileID); err != nil {
		return nil, err
	}
	ctx, cancel := c.metadataCall(ctx)
	defer cancel()
	var res *filesv1.GetFileResponse
	err := c.invoke(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		res, err = c.rpc.GetFile(ctx, &filesv1.GetFileRequest{FileId: fileID}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetFile(), nil
}

// Delete removes a file's bytes and metadata.
func (c *Client) Delete(ctx context.Context, fileID string) error {
	if err := checkFileID(fileID); err != nil {
		return err
	}
	ctx, cancel := c.metadataCall(ctx)
	defer cancel()
	return c.invoke(ctx, func(ctx context.Context, opts ...grpc.CallOption) error {
		_, err := c.rpc.DeleteFile(ctx, &filesv1.DeleteFileRequest{FileId: fileID}, opts...)
		return err
	})
}

func checkFileID(fileID string) error {
	if strings.TrimSpace(fileID) == "" {
		return invalidArgument("the file id is empty")
	}
	return nil
}

// metadataCall applies the client's per-call timeout.
func (c *Client) metadataCall(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// invoke runs one unary call with a fresh request id and turns its error into an *Error.
func (c *Client) invoke(ctx context.Context, call func(context.Context, ...grpc.CallOption) error) error {
	ctx, id := withRequestID(ctx)
	var header, trailer metadata.MD
	err := call(ctx, grpc.Header(&header), grpc.Trailer(&trailer))
	return toError(err, id, trailer, header)
}

// withRequestID sends a new x-request-id, so that the id is known even when a call fails before
// the service answers (the service adopts a caller's id and names it in its log line).
func withRequestID(ctx context.Context) (context.Context, string) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	return metadata.AppendToOutgoingContext(ctx, requestIDHeader, id), id
}

// errorsAs is errors.As for *Error.
func errorsAs(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
