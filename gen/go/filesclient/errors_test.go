package filesclient_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"github.com/s3-files-service/s3-files-service/gen/go/filesclient"
	"google.golang.org/grpc/codes"
)

const missingID = "file-00000000000000000000000000000000"

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// assertError checks err's kind, code and that it carries a message and a request id.
func assertError(t *testing.T, what string, err error, kind error, code codes.Code) *filesclient.Error {
	t.Helper()
	var e *filesclient.Error
	if !errors.Is(err, kind) || !errors.As(err, &e) {
		t.Fatalf("%s: %v, want an *Error matching %v", what, err, kind)
	}
	if e.Code != code || e.Message == "" || !requestIDPattern.MatchString(e.RequestID) {
		t.Fatalf("%s: code %s, message %q, request id %q: want %s, a message and a request id", what, e.Code, e.Message, e.RequestID, code)
	}
	return e
}

func TestNotFound(t *testing.T) {
	client := dial(t, "FILES_TEST_TARGET")
	ctx := testContext(t)
	_, err := client.Get(ctx, missingID)
	e := assertError(t, "Get of a missing file", err, filesclient.ErrNotFound, codes.NotFound)
	// The harness finds this id in the server's log line for the call.
	reportFact("not_found_request_id", e.RequestID)
	if !strings.Contains(e.Error(), e.RequestID) {
		t.Errorf("the message %q does not name the request id", e.Error())
	}

	assertError(t, "Delete of a missing file", client.Delete(ctx, missingID), filesclient.ErrNotFound, codes.NotFound)
	_, err = client.Download(ctx, missingID, &bytes.Buffer{})
	assertError(t, "Download of a missing file", err, filesclient.ErrNotFound, codes.NotFound)
	dir := t.TempDir()
	_, err = client.DownloadFile(ctx, missingID, filepath.Join(dir, "x"))
	assertError(t, "DownloadFile of a missing file", err, filesclient.ErrNotFound, codes.NotFound)
	assertOnlyFile(t, dir, "")

	// A deleted file is gone.
	file := uploadFrom(t, client, "bytes", []byte("short-lived"), userData)
	if err := client.Delete(ctx, file.GetId()); err != nil {
		t.Fatal(err)
	}
	_, err = client.Get(ctx, file.GetId())
	assertError(t, "Get after Delete", err, filesclient.ErrNotFound, codes.NotFound)
}

func TestUnauthenticated(t *testing.T) {
	env(t, "FILES_TEST_AUTH_TARGET")
	ctx := testContext(t)
	// The health check Dial makes needs no credentials, so both dial; every call then fails.
	for name, opts := range map[string][]filesclient.Option{
		"no token":    nil,
		"wrong token": {filesclient.WithToken("sk-fake-wrong-key-00000000000000")},
	} {
		t.Run(name, func(t *testing.T) {
			client := dial(t, "FILES_TEST_AUTH_TARGET", opts...)
			_, err := client.Get(ctx, missingID)
			assertError(t, "Get", err, filesclient.ErrUnauthenticated, codes.Unauthenticated)
			_, err = client.UploadBytes(ctx, []byte("x"), filesclient.Filename("x.txt"), userData)
			assertError(t, "UploadBytes", err, filesclient.ErrUnauthenticated, codes.Unauthenticated)
			_, err = client.Upload(ctx, strings.NewReader("x"), filesclient.Filename("x.txt"), userData)
			assertError(t, "Upload", err, filesclient.ErrUnauthenticated, codes.Unauthenticated)
			_, err = client.UploadBytes(ctx, make([]byte, 100), filesclient.Filename("x.txt"), userData, filesclient.PartThreshold(10), filesclient.PartSize(50))
			assertError(t, "UploadBytes in parts", err, filesclient.ErrUnauthenticated, codes.Unauthenticated)
			_, err = client.Download(ctx, missingID, &bytes.Buffer{})
			assertError(t, "Download", err, filesclient.ErrUnauthenticated, codes.Unauthenticated)
			yielded := 0
			for _, err := range client.List(ctx) {
				yielded++
				assertError(t, "List", err, filesclient.ErrUnauthenticated, codes.Unauthenticated)
			}
			if yielded != 1 {
				t.Fatalf("List yielded %d times, want the error once", yielded)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	client := dial(t, "FILES_TEST_SMALL_TARGET")
	limit := int(envInt(t, "FILES_TEST_SMALL_MAX_FILE_BYTES"))
	ctx := testContext(t)

	if _, err := client.UploadBytes(ctx, randomBytes(t, limit), filesclient.Filename("at-limit.bin"), userData); err != nil {
		t.Fatalf("a file of exactly max_file_bytes: %v", err)
	}
	// Declared size: refused at the metadata.
	_, err := client.UploadBytes(ctx, randomBytes(t, limit+1), filesclient.Filename("over.bin"), userData)
	e := assertError(t, "UploadBytes over the limit", err, filesclient.ErrTooLarge, codes.ResourceExhausted)
	if !strings.Contains(e.Message, "larger than") {
		t.Errorf("the message %q does not say what is too large", e.Message)
	}
	// Unknown size: refused mid-stream.
	_, err = client.Upload(ctx, bytes.NewReader(randomBytes(t, 2*limit+5)), filesclient.Filename("over-stream.bin"), userData)
	assertError(t, "Upload of a stream over the limit", err, filesclient.ErrTooLarge, codes.ResourceExhausted)
	// Nothing was kept but the file at the limit.
	var names []string
	for file, err := range client.List(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, file.GetFilename())
	}
	if len(names) != 1 || names[0] != "at-limit.bin" {
		t.Fatalf("the server holds %q, want only at-limit.bin", names)
	}
}

func TestInvalidArguments(t *testing.T) {
	client := dial(t, "FILES_TEST_TARGET")
	ctx := testContext(t)

	_, err := client.UploadBytes(ctx, []byte("x"), filesclient.Filename("x.txt"), filesclient.ExpiresAfter(10*time.Second))
	if !errors.Is(err, filesclient.ErrInvalidArgument) || !strings.Contains(err.Error(), "purpose") {
		t.Fatalf("an upload without a purpose: %v, want ErrInvalidArgument naming the purpose", err)
	}
	// The service checks the expiry's range and says so.
	_, err = client.UploadBytes(ctx, []byte("x"), filesclient.Filename("x.txt"), userData, filesclient.ExpiresAfter(10*time.Second))
	e := assertError(t, "ExpiresAfter(10s)", err, filesclient.ErrInvalidArgument, codes.InvalidArgument)
	if !strings.Contains(e.Message, "expires_after") {
		t.Errorf("the message %q does not name expires_after", e.Message)
	}
	_, err = client.UploadBytes(ctx, []byte("x"), filesclient.Filename("x.txt"), filesclient.Purpose(filesv1.FilePurpose_FILE_PURPOSE_BATCH_OUTPUT))
	assertError(t, "an output-only purpose", err, filesclient.ErrInvalidArgument, codes.InvalidArgument)

	file := uploadFrom(t, client, "bytes", []byte("0123456789"), userData)
	_, err = client.Download(ctx, file.GetId(), &bytes.Buffer{}, filesclient.Offset(11))
	assertError(t, "an offset past the end", err, filesclient.ErrInvalidArgument, codes.OutOfRange)
}

func TestDialFailsWithTheReason(t *testing.T) {
	ctx := testContext(t)
	_, err := filesclient.Dial(ctx, "http://127.0.0.1:1")
	if !errors.Is(err, filesclient.ErrInvalidArgument) || !strings.Contains(err.Error(), "host:port") {
		t.Fatalf("Dial of a URL: %v, want ErrInvalidArgument saying host:port", err)
	}
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	started := time.Now()
	dialCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = filesclient.Dial(dialCtx, closed)
	if !errors.Is(err, filesclient.ErrUnavailable) || !strings.Contains(err.Error(), "refused") || time.Since(started) > 10*time.Second {
		t.Fatalf("Dial of a closed port: %v after %s, want a prompt ErrUnavailable saying the connection was refused", err, time.Since(started))
	}
}
