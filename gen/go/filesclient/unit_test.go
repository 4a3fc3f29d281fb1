package filesclient

// Tests that need no server: the error kinds, option checks, backoff and chunking.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestErrorKinds(t *testing.T) {
	cases := []struct {
		code    codes.Code
		message string
		kind    error
	}{
		{codes.NotFound, "no file", ErrNotFound},
		{codes.Unauthenticated, "missing credential", ErrUnauthenticated},
		{codes.PermissionDenied, "no", ErrPermissionDenied},
		{codes.InvalidArgument, "bad purpose", ErrInvalidArgument},
		{codes.OutOfRange, "offset past the end", ErrInvalidArgument},
		{codes.Unavailable, "S3 is down", ErrUnavailable},
		{codes.ResourceExhausted, "The file is larger than the limit of 10 bytes", ErrTooLarge},
		{codes.ResourceExhausted, "grpc: trying to send message larger than max (9 vs. 8)", ErrTooLarge},
		{codes.ResourceExhausted, "The server is handling its maximum of 512 uploads; try again shortly", ErrUnavailable},
		{codes.DataLoss, "sha mismatch", ErrIntegrity},
		{codes.Canceled, "context canceled", context.Canceled},
		{codes.DeadlineExceeded, "deadline", context.DeadlineExceeded},
	}
	all := []error{ErrNotFound, ErrUnauthenticated, ErrPermissionDenied, ErrInvalidArgument, ErrUnavailable, ErrTooLarge, ErrIntegrity}
	for _, c := range cases {
		err := toError(status.Error(c.code, c.message), "sent-id")
		wrapped := fmt.Errorf("context: %w", err)
		if !errors.Is(wrapped, c.kind) {
			t.Errorf("%s %q: errors.Is(%v) is false", c.code, c.message, c.kind)
		}
		for _, other := range all {
			if other != c.kind && errors.Is(err, other) {
				t.Errorf("%s %q also matches %v", c.code, c.message, other)
			}
		}
		var e *Error
		if !errors.As(wrapped, &e) || e.Code != c.code || e.Message != c.message || e.RequestID != "sent-id" {
			t.Errorf("%s: errors.As gave %+v", c.code, e)
		}
		if status.Code(err) != c.code {
			t.Errorf("status.Code(%v) = %s, want %s", err, status.Code(err), c.code)
		}
	}
	if err := toError(status.Error(codes.Internal, "boom"), ""); errors.Is(err, ErrUnavailable) || status.Code(err) != codes.Internal {
		t.Errorf("INTERNAL: %v", err)
	}
}

func TestErrorRequestIDs(t *testing.T) {
	err := toError(status.Error(codes.NotFound, "no file"), "sent", metadata.Pairs("x-request-id", "echoed"))
	var e *Error
	if !errors.As(err, &e) || e.RequestID != "echoed" {
		t.Fatalf("the echoed id should win: %+v", e)
	}
	if got := e.Error(); got != "files: NotFound: no file (request id echoed)" {
		t.Errorf("Error() = %q", got)
	}
	if toError(io.EOF, "x") != io.EOF || toError(nil, "x") != nil || toError(context.Canceled, "x") != context.Canceled {
		t.Error("io.EOF, nil and context errors must pass through")
	}
	plain := errors.New("not a status")
	if toError(plain, "x") != plain {
		t.Error("an error without a status must pass through")
	}
}

func TestRetryablePartErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{toError(status.Error(codes.Unavailable, "down"), ""), true},
		{toError(status.Error(codes.ResourceExhausted, "try again shortly"), ""), true},
		{toError(status.Error(codes.ResourceExhausted, "message size 9 is larger than configured readMaxBytes 8"), ""), false},
		{toError(status.Error(codes.InvalidArgument, "bad"), ""), false},
		{toError(status.Error(codes.NotFound, "gone"), ""), false},
		{context.Canceled, false},
	} {
		if got := retryablePartError(c.err); got != c.want {
			t.Errorf("retryablePartError(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestBackoffGrowsWithJitterAndIsCapped(t *testing.T) {
	for n := 1; n <= 20; n++ {
		ceiling := min(firstBackoff<<min(n-1, 10), maxBackoff)
		for range 50 {
			d := backoff(n)
			if d < ceiling/2 || d > ceiling {
				t.Fatalf("backoff(%d) = %s, want between %s and %s", n, d, ceiling/2, ceiling)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleep on an ended context: %v", err)
	}
}

func TestOptionsAreCheckedBeforeAnyCall(t *testing.T) {
	c := &Client{} // no connection: every case must fail before using one
	ctx := context.Background()
	purpose := Purpose(filesv1.FilePurpose_FILE_PURPOSE_USER_DATA)
	uploads := map[string][]UploadOption{
		"purpose is required":        {Filename("a")},
		"PartSize must be between":   {purpose, Filename("a"), PartSize(0)},
		"PartSize must be between 1": {purpose, Filename("a"), PartSize(MaxPartSize + 1)},
		"PartConcurrency":            {purpose, Filename("a"), PartConcurrency(0)},
		"PartThreshold":              {purpose, Filename("a"), PartThreshold(-1)},
		"MaxAttempts":                {purpose, Filename("a"), MaxAttempts(0)},
		"whole number of seconds":    {purpose, Filename("a"), ExpiresAfter(1500 * time.Millisecond)},
		"needs a filename":           {purpose},
	}
	for want, opts := range uploads {
		_, err := c.UploadBytes(ctx, []byte("x"), opts...)
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("UploadBytes: %v, want ErrInvalidArgument saying %q", err, want)
		}
	}
	if _, err := c.Upload(ctx, nil, purpose, Filename("a")); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Upload(nil): %v", err)
	}
	if _, err := c.UploadFile(ctx, t.TempDir(), purpose); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("UploadFile of a directory: %v", err)
	}
	downloads := map[string][]DownloadOption{
		"Range needs":   {Range(-1, 5)},
		"Offset must":   {Offset(-3)},
		"MaxAttempts m": {MaxAttempts(-1)},
	}
	for want, opts := range downloads {
		_, err := c.Download(ctx, "file-x", io.Discard, opts...)
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), strings.TrimSuffix(want, " m")) {
			t.Errorf("Download: %v, want ErrInvalidArgument saying %q", err, want)
		}
	}
	if _, err := c.Download(ctx, "", io.Discard); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Download of an empty id: %v", err)
	}
	for _, err := range c.List(ctx, PageSize(0)) {
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "PageSize") {
			t.Errorf("List(PageSize(0)): %v", err)
		}
	}
	if _, err := Dial(ctx, "", WithToken("t")); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Dial of an empty target: %v", err)
	}
	if _, err := Dial(ctx, "127.0.0.1:1", WithTimeout(-time.Second)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Dial with a negative timeout: %v", err)
	}
}

func TestChunking(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 2*ChunkSize+3)
	for name, src := range map[string]chunks{
		"reader": &chunkReader{r: bytes.NewReader(data)},
		"slice":  &sliceChunks{data: data},
	} {
		var sizes []int
		for {
			chunk, err := src.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(chunk))
		}
		if fmt.Sprint(sizes) != fmt.Sprint([]int{ChunkSize, ChunkSize, 3}) {
			t.Errorf("%s: chunk sizes %v", name, sizes)
		}
	}
	if _, err := (&sliceChunks{}).next(); err != io.EOF {
		t.Errorf("an empty slice: %v, want io.EOF", err)
	}
}
