package filesclient_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"github.com/s3-files-service/s3-files-service/gen/go/filesclient"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Lowered so that a few MiB cross it; the service takes parts of any size.
var smallParts = []filesclient.UploadOption{filesclient.PartThreshold(6 * MiB), filesclient.PartSize(5 * MiB)}

func TestUploadsAcrossThePartThreshold(t *testing.T) {
	env(t, "FILES_TEST_TARGET")
	cases := []struct {
		size      int
		wantParts []int // AddUploadPart sizes, sorted; none means one UploadFile stream
	}{
		{6 * MiB, nil},
		{6*MiB + 1, []int{MiB + 1, 5 * MiB}},
		{12*MiB + 7, []int{2*MiB + 7, 5 * MiB, 5 * MiB}},
	}
	for _, source := range []string{"bytes", "path"} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%d", source, c.size), func(t *testing.T) {
				rec := newRecorder()
				client := dial(t, "FILES_TEST_TARGET", rec.option())
				data := randomBytes(t, c.size)
				var calls [][2]int64
				opts := append(slices.Clone(smallParts), userData, filesclient.Progress(func(done, total int64) { calls = append(calls, [2]int64{done, total}) }))
				file := uploadFrom(t, client, source, data, opts...)
				sizes := slices.Sorted(slices.Values(rec.partSizes))
				if !slices.Equal(sizes, c.wantParts) {
					t.Fatalf("part sizes %v, want %v", sizes, c.wantParts)
				}
				wantStreams, wantCompletes := 1, 0
				if c.wantParts != nil {
					wantStreams, wantCompletes = 0, 1
				}
				if rec.count("UploadFile") != wantStreams || rec.count("CompleteUpload") != wantCompletes {
					t.Fatalf("%d UploadFile and %d CompleteUpload calls, want %d and %d", rec.count("UploadFile"), rec.count("CompleteUpload"), wantStreams, wantCompletes)
				}
				assertProgress(t, calls, int64(c.size), int64(c.size))
				downloadBytes(t, client, file.GetId(), data)
			})
		}
	}
}

// The default part size must fit one message under the server's default max_message_bytes (8 MiB),
// which a part of exactly 8 MiB does not: that one is refused as too large, and not retried.
func TestDefaultPartSizeFitsTheServersMessageLimit(t *testing.T) {
	rec := newRecorder()
	client := dial(t, "FILES_TEST_TARGET", rec.option())
	data := randomBytes(t, 17*MiB)
	file := uploadFrom(t, client, "bytes", data, userData, filesclient.PartThreshold(16*MiB))
	want := []int{17*MiB - 2*filesclient.DefaultPartSize, filesclient.DefaultPartSize, filesclient.DefaultPartSize}
	if got := slices.Sorted(slices.Values(rec.partSizes)); !slices.Equal(got, want) {
		t.Fatalf("part sizes %v, want %v", got, want)
	}
	downloadBytes(t, client, file.GetId(), data)

	rec = newRecorder()
	client = dial(t, "FILES_TEST_TARGET", rec.option())
	_, err := client.UploadBytes(testContext(t), randomBytes(t, 9*MiB), filesclient.Filename(uniqueName(t, ".bin")), userData,
		filesclient.PartThreshold(MiB), filesclient.PartSize(8*MiB), filesclient.PartConcurrency(1))
	if !errors.Is(err, filesclient.ErrTooLarge) {
		t.Fatalf("an 8 MiB part against the 8 MiB message limit: %v, want ErrTooLarge", err)
	}
	if rec.count("AddUploadPart") != 1 || rec.count("CancelUpload") != 1 {
		t.Fatalf("%d AddUploadPart and %d CancelUpload calls, want the refused part tried once and the upload cancelled", rec.count("AddUploadPart"), rec.count("CancelUpload"))
	}
}

func TestFailedPartsAreRetried(t *testing.T) {
	rec := newRecorder()
	rec.failCall = func(method string, n int, _ any) error {
		if method != "AddUploadPart" {
			return nil
		}
		switch n {
		case 1:
			return status.Error(codes.Unavailable, "injected: connection lost")
		case 2:
			return status.Error(codes.ResourceExhausted, "injected: The server is handling its maximum of 4 uploads; try again shortly")
		}
		return nil
	}
	client := dial(t, "FILES_TEST_TARGET", rec.option())
	data := randomBytes(t, 12*MiB+7)
	file := uploadFrom(t, client, "bytes", data, append(slices.Clone(smallParts), userData)...)
	if got := rec.count("AddUploadPart"); got != 3+2 {
		t.Fatalf("%d AddUploadPart calls, want 3 parts and 2 retries", got)
	}
	downloadBytes(t, client, file.GetId(), data)
}

func TestAPartThatKeepsFailingCancelsTheUpload(t *testing.T) {
	env(t, "FILES_TEST_TARGET")
	for _, c := range []struct {
		name     string
		code     codes.Code
		attempts int
		wantErr  error
	}{
		{"unavailable every time", codes.Unavailable, 2, filesclient.ErrUnavailable},
		{"not retryable", codes.InvalidArgument, 5, filesclient.ErrInvalidArgument},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := newRecorder()
			rec.failCall = func(method string, n int, _ any) error {
				if method == "AddUploadPart" {
					return status.Error(c.code, "injected failure")
				}
				return nil
			}
			client := dial(t, "FILES_TEST_TARGET", rec.option())
			name := uniqueName(t, ".bin")
			_, err := client.UploadBytes(testContext(t), randomBytes(t, 12*MiB+7), append(slices.Clone(smallParts),
				filesclient.Filename(name), userData, filesclient.MaxAttempts(c.attempts), filesclient.PartConcurrency(1))...)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("upload error %v, want %v", err, c.wantErr)
			}
			// One worker: the first part is tried MaxAttempts times (once if not retryable), then all stops.
			wantCalls := c.attempts
			if c.code != codes.Unavailable {
				wantCalls = 1
			}
			if got := rec.count("AddUploadPart"); got != wantCalls {
				t.Fatalf("%d AddUploadPart calls, want %d", got, wantCalls)
			}
			if rec.count("CompleteUpload") != 0 || rec.count("CancelUpload") != 1 || len(rec.uploadIDs) != 1 {
				t.Fatalf("%d CompleteUpload, %d CancelUpload calls for uploads %v: want the one upload cancelled", rec.count("CompleteUpload"), rec.count("CancelUpload"), rec.uploadIDs)
			}
			for id := range rec.uploadIDs {
				res, err := client.Service().GetUpload(testContext(t), &filesv1.GetUploadRequest{UploadId: id})
				if err != nil {
					t.Fatal(err)
				}
				if res.GetUpload().GetStatus() != filesv1.UploadStatus_UPLOAD_STATUS_CANCELLED {
					t.Fatalf("upload %s is %s, want CANCELLED", id, res.GetUpload().GetStatus())
				}
			}
			assertNoFileNamed(t, client, name)
		})
	}
}

// assertNoFileNamed lists every file the client sees and fails if one has this name.
func assertNoFileNamed(t *testing.T, client *filesclient.Client, name string) {
	t.Helper()
	seen := 0
	for file, err := range client.List(testContext(t)) {
		if err != nil {
			t.Fatal(err)
		}
		seen++
		if file.GetFilename() == name {
			t.Fatalf("file %s named %s exists after the failed upload", file.GetId(), name)
		}
	}
	if seen == 0 {
		t.Fatal("the list is empty, so it proves nothing: earlier tests' files should be there")
	}
}

// Bytes changed on the way (here by the client's interceptor) are caught: in parts, by comparing
// the SHA-256 the service recorded, which also deletes the bad file; in one stream with a declared
// SHA-256, by the service refusing it; from a reader, by the recorded SHA-256 again.
func TestCorruptedUploadsAreCaught(t *testing.T) {
	env(t, "FILES_TEST_TARGET")
	corrupt := func(method string, req proto.Message) proto.Message {
		switch m := req.(type) {
		case *filesv1.AddUploadPartRequest:
			c := proto.Clone(m).(*filesv1.AddUploadPartRequest)
			c.Data[len(c.Data)/2] ^= 0xff
			return c
		case *filesv1.UploadFileRequest:
			if m.GetChunk() == nil {
				return m
			}
			c := proto.Clone(m).(*filesv1.UploadFileRequest)
			c.GetPayload().(*filesv1.UploadFileRequest_Chunk).Chunk[0] ^= 0xff
			return c
		}
		return req
	}
	for _, c := range []struct {
		source  string
		size    int
		wantErr error
	}{
		{"bytes", 12*MiB + 7, filesclient.ErrIntegrity},
		{"bytes", 2 * MiB, filesclient.ErrInvalidArgument},
		{"stream", 2 * MiB, filesclient.ErrIntegrity},
	} {
		t.Run(fmt.Sprintf("%s/%d", c.source, c.size), func(t *testing.T) {
			rec := newRecorder()
			rec.editRequest = corrupt
			client := dial(t, "FILES_TEST_TARGET", rec.option())
			data := randomBytes(t, c.size)
			original := sha(data)
			name := uniqueName(t, ".bin")
			opts := append(slices.Clone(smallParts), filesclient.Filename(name), userData)
			var err error
			if c.source == "stream" {
				_, err = client.Upload(testContext(t), struct{ io.Reader }{bytes.NewReader(data)}, opts...)
			} else {
				_, err = client.UploadBytes(testContext(t), data, opts...)
			}
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("upload error %v, want %v", err, c.wantErr)
			}
			if sha(data) != original {
				t.Fatal("the caller's bytes were modified")
			}
			assertNoFileNamed(t, client, name)
		})
	}
}
