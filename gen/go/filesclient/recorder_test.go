package filesclient_test

import (
	"context"
	"strings"
	"sync"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"github.com/s3-files-service/s3-files-service/gen/go/filesclient"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// recorder is a client interceptor that notes the calls a Client makes and, where a test asks,
// injects a fault on the client side: the one kind of fault (a failed part, a corrupted byte) the
// real server cannot be made to produce on demand.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int // by method name, e.g. "AddUploadPart"
	// partSizes lists each AddUploadPart attempt's data size; uploadIDs the uploads parts went to.
	partSizes []int
	uploadIDs map[string]bool
	// downloadOffsets lists each DownloadFile request's offset.
	downloadOffsets []int64

	// failCall, when set, may fail a unary call instead of sending it; n counts that method's calls from 1.
	failCall func(method string, n int, req any) error
	// editRequest, when set, may replace a request (unary, or a client-stream message) before it is sent.
	editRequest func(method string, req proto.Message) proto.Message
	// editResponse, when set, may change a server-stream message after it is received.
	editResponse func(method string, msg proto.Message)
}

func newRecorder() *recorder {
	return &recorder{calls: map[string]int{}, uploadIDs: map[string]bool{}}
}

func (r *recorder) option() filesclient.Option {
	return filesclient.WithDialOptions(grpc.WithChainUnaryInterceptor(r.unary), grpc.WithChainStreamInterceptor(r.stream))
}

func methodName(fullMethod string) string { return fullMethod[strings.LastIndex(fullMethod, "/")+1:] }

func (r *recorder) count(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[method]
}

func (r *recorder) note(method string, req any) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[method]++
	switch m := req.(type) {
	case *filesv1.AddUploadPartRequest:
		r.partSizes = append(r.partSizes, len(m.GetData()))
		r.uploadIDs[m.GetUploadId()] = true
	case *filesv1.DownloadFileRequest:
		r.downloadOffsets = append(r.downloadOffsets, m.GetOffset())
	}
	return r.calls[method]
}

func (r *recorder) unary(ctx context.Context, fullMethod string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	method := methodName(fullMethod)
	n := r.note(method, req)
	if r.failCall != nil {
		if err := r.failCall(method, n, req); err != nil {
			return err
		}
	}
	if r.editRequest != nil {
		if m, ok := req.(proto.Message); ok {
			req = r.editRequest(method, m)
		}
	}
	return invoker(ctx, fullMethod, req, reply, cc, opts...)
}

func (r *recorder) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, fullMethod string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, fullMethod, opts...)
	if err != nil {
		return nil, err
	}
	return &recordedStream{ClientStream: cs, r: r, method: methodName(fullMethod)}, nil
}

type recordedStream struct {
	grpc.ClientStream
	r      *recorder
	method string
	sent   int
}

func (s *recordedStream) SendMsg(m any) error {
	s.sent++
	if s.sent == 1 {
		s.r.note(s.method, m)
	}
	if s.r.editRequest != nil {
		if msg, ok := m.(proto.Message); ok {
			m = s.r.editRequest(s.method, msg)
		}
	}
	return s.ClientStream.SendMsg(m)
}

func (s *recordedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil && s.r.editResponse != nil {
		if msg, ok := m.(proto.Message); ok {
			s.r.editResponse(s.method, msg)
		}
	}
	return err
}
