package filesclient_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"github.com/s3-files-service/s3-files-service/gen/go/filesclient"
	"google.golang.org/protobuf/proto"
)

// A download whose connection is killed mid-way resumes from the bytes already written, on a new
// connection, and still verifies the whole file's SHA-256.
func TestADownloadCutMidWayResumes(t *testing.T) {
	direct := dial(t, "FILES_TEST_TARGET")
	data := randomBytes(t, 10*MiB+3)
	file := uploadFrom(t, direct, "bytes", data, userData)

	proxy := startCutProxy(t, env(t, "FILES_TEST_TARGET"))
	rec := newRecorder()
	client := dialTarget(t, proxy.addr(), rec.option())
	t.Run("to a writer", func(t *testing.T) {
		rec.downloadOffsets = nil
		proxy.cutAfter(3 * MiB)
		var calls [][2]int64
		downloadBytes(t, client, file.GetId(), data, filesclient.Progress(func(done, total int64) { calls = append(calls, [2]int64{done, total}) }))
		if proxy.cutCount() != 1 {
			t.Fatalf("the proxy cut %d connections, want 1", proxy.cutCount())
		}
		assertResumed(t, rec.downloadOffsets, int64(len(data)))
		assertProgress(t, calls, int64(len(data)), int64(len(data)))
	})
	t.Run("a range", func(t *testing.T) {
		rec.downloadOffsets = nil
		proxy.cutAfter(2 * MiB)
		var buf bytes.Buffer
		if _, err := client.Download(testContext(t), file.GetId(), &buf, filesclient.Range(MiB+1, 6*MiB)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), data[MiB+1:7*MiB+1]) {
			t.Fatalf("the resumed range has %d bytes with SHA-256 %s, want %d with %s", buf.Len(), sha(buf.Bytes()), 6*MiB, sha(data[MiB+1:7*MiB+1]))
		}
		if len(rec.downloadOffsets) != 2 || rec.downloadOffsets[0] != MiB+1 || rec.downloadOffsets[1] <= MiB+1 {
			t.Fatalf("DownloadFile offsets %v: want the range's start, then a later one", rec.downloadOffsets)
		}
	})
	t.Run("to a path", func(t *testing.T) {
		rec.downloadOffsets = nil
		proxy.cutAfter(5 * MiB)
		dir := t.TempDir()
		if _, err := client.DownloadFile(testContext(t), file.GetId(), filepath.Join(dir, "f.bin")); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "f.bin"))
		if err != nil || sha(got) != sha(data) {
			t.Fatalf("DownloadFile after a cut wrote %d bytes with SHA-256 %s (%v), want %s", len(got), sha(got), err, sha(data))
		}
		assertResumed(t, rec.downloadOffsets, int64(len(data)))
		assertOnlyFile(t, dir, "f.bin")
	})
	t.Run("without retries the cut is an error and leaves no file", func(t *testing.T) {
		proxy.cutAfter(3 * MiB)
		dir := t.TempDir()
		_, err := client.DownloadFile(testContext(t), file.GetId(), filepath.Join(dir, "f.bin"), filesclient.MaxAttempts(1))
		if !errors.Is(err, filesclient.ErrUnavailable) {
			t.Fatalf("DownloadFile with one attempt across a cut: %v, want ErrUnavailable", err)
		}
		assertOnlyFile(t, dir, "")
	})
}

func assertResumed(t *testing.T, offsets []int64, size int64) {
	t.Helper()
	if len(offsets) != 2 || offsets[0] != 0 || offsets[1] <= 0 || offsets[1] >= size {
		t.Fatalf("DownloadFile offsets %v: want 0, then where the cut stream stopped", offsets)
	}
}

// Bytes changed on the way (by the client's interceptor) fail the SHA-256 check; DownloadFile
// then leaves the existing file at the path as it was, and no temp file.
func TestACorruptedDownloadIsAnIntegrityError(t *testing.T) {
	direct := dial(t, "FILES_TEST_TARGET")
	data := randomBytes(t, 2*MiB)
	file := uploadFrom(t, direct, "bytes", data, userData)

	rec := newRecorder()
	rec.editResponse = func(method string, msg proto.Message) {
		if m, ok := msg.(*filesv1.DownloadFileResponse); ok && len(m.GetChunk()) > 0 {
			m.GetPayload().(*filesv1.DownloadFileResponse_Chunk).Chunk[0] ^= 0xff
		}
	}
	client := dial(t, "FILES_TEST_TARGET", rec.option())
	var buf bytes.Buffer
	_, err := client.Download(testContext(t), file.GetId(), &buf)
	var e *filesclient.Error
	if !errors.Is(err, filesclient.ErrIntegrity) || !errors.As(err, &e) || e.RequestID == "" {
		t.Fatalf("Download of corrupted bytes: %v, want ErrIntegrity with a request id", err)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "kept.bin")
	if err := os.WriteFile(path, []byte("previous content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DownloadFile(testContext(t), file.GetId(), path); !errors.Is(err, filesclient.ErrIntegrity) {
		t.Fatalf("DownloadFile of corrupted bytes: %v, want ErrIntegrity", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "previous content" {
		t.Fatalf("the file at the path became %d bytes; a failed download must leave it alone", len(got))
	}
	assertOnlyFile(t, dir, "kept.bin")

	// A range is not checked against the whole file's SHA-256.
	buf.Reset()
	if _, err := client.Download(testContext(t), file.GetId(), &buf, filesclient.Range(0, 10)); err != nil {
		t.Fatalf("a ranged download: %v", err)
	}
}
