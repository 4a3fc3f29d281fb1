package filesclient_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"github.com/s3-files-service/s3-files-service/gen/go/filesclient"
)

// uploadFrom uploads data from one of the three sources.
func uploadFrom(t *testing.T, client *filesclient.Client, source string, data []byte, opts ...filesclient.UploadOption) *filesv1.File {
	t.Helper()
	ctx := testContext(t)
	var (
		file *filesv1.File
		err  error
	)
	switch source {
	case "bytes":
		file, err = client.UploadBytes(ctx, data, append([]filesclient.UploadOption{filesclient.Filename(uniqueName(t, ".bin"))}, opts...)...)
	case "path":
		path := filepath.Join(t.TempDir(), uniqueName(t, ".bin"))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err = client.UploadFile(ctx, path, opts...)
		if err == nil && file.GetFilename() != filepath.Base(path) {
			t.Errorf("UploadFile named the file %q, want the path's base name %q", file.GetFilename(), filepath.Base(path))
		}
	case "stream":
		// A plain io.Reader: no size, no Len, no Seek.
		file, err = client.Upload(ctx, struct{ *bytes.Reader }{bytes.NewReader(data)}, append([]filesclient.UploadOption{filesclient.Filename(uniqueName(t, ".bin"))}, opts...)...)
	default:
		t.Fatalf("unknown source %q", source)
	}
	if err != nil {
		t.Fatalf("upload from %s of %d bytes: %v", source, len(data), err)
	}
	if file.GetBytes() != int64(len(data)) || file.GetSha256() != sha(data) {
		t.Fatalf("upload from %s: the service recorded %d bytes with SHA-256 %s, want %d bytes with %s", source, file.GetBytes(), file.GetSha256(), len(data), sha(data))
	}
	return file
}

func TestRoundTripsAtTheEdges(t *testing.T) {
	client := dial(t, "FILES_TEST_TARGET")
	sizes := []int{0, 1, filesclient.ChunkSize, filesclient.ChunkSize + 1, 3*MiB + 5}
	for _, source := range []string{"bytes", "path", "stream"} {
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%s/%d", source, size), func(t *testing.T) {
				data := randomBytes(t, size)
				file := uploadFrom(t, client, source, data, userData)
				if file.GetPurpose() != filesv1.FilePurpose_FILE_PURPOSE_USER_DATA {
					t.Errorf("purpose %s, want USER_DATA", file.GetPurpose())
				}
				downloadBytes(t, client, file.GetId(), data)

				path := filepath.Join(t.TempDir(), "out.bin")
				got, err := client.DownloadFile(testContext(t), file.GetId(), path)
				if err != nil {
					t.Fatalf("DownloadFile: %v", err)
				}
				onDisk, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if sha(onDisk) != sha(data) || got.GetId() != file.GetId() {
					t.Fatalf("DownloadFile wrote %d bytes with SHA-256 %s, want %d with %s", len(onDisk), sha(onDisk), len(data), sha(data))
				}
				assertOnlyFile(t, filepath.Dir(path), "out.bin")
			})
		}
	}
}

// assertOnlyFile fails unless dir holds exactly the named file (or nothing, for ""): no temp files.
func assertOnlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if (name == "" && len(names) != 0) || (name != "" && (len(names) != 1 || names[0] != name)) {
		t.Fatalf("%s holds %q, want only %q", dir, names, name)
	}
}

func TestUploadMetadataAndProgress(t *testing.T) {
	client := dial(t, "FILES_TEST_TARGET")
	data := randomBytes(t, 2*MiB+10)
	var calls [][2]int64
	file, err := client.UploadBytes(testContext(t), data,
		filesclient.Filename("report.json"),
		filesclient.Purpose(filesv1.FilePurpose_FILE_PURPOSE_ASSISTANTS),
		filesclient.ExpiresAfter(2*time.Hour),
		filesclient.Progress(func(done, total int64) { calls = append(calls, [2]int64{done, total}) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	if file.GetFilename() != "report.json" || file.GetMimeType() != "application/json" {
		t.Errorf("filename %q, mime type %q: want report.json with the extension's type application/json", file.GetFilename(), file.GetMimeType())
	}
	if file.ExpiresAt == nil || file.GetExpiresAt()-file.GetCreatedAt() != 7200 {
		t.Errorf("expires_at %v, created_at %d: want two hours after creation", file.ExpiresAt, file.GetCreatedAt())
	}
	assertProgress(t, calls, int64(len(data)), int64(len(data)))

	explicit, err := client.UploadBytes(testContext(t), data, filesclient.Filename("report.json"), filesclient.MimeType("text/x-report"), userData)
	if err != nil {
		t.Fatal(err)
	}
	if explicit.GetMimeType() != "text/x-report" {
		t.Errorf("MimeType gave %q, want text/x-report", explicit.GetMimeType())
	}

	var downloaded [][2]int64
	downloadBytes(t, client, file.GetId(), data, filesclient.Progress(func(done, total int64) { downloaded = append(downloaded, [2]int64{done, total}) }))
	assertProgress(t, downloaded, int64(len(data)), int64(len(data)))

	var streamed [][2]int64
	_, err = client.Upload(testContext(t), bytes.NewReader(data), filesclient.Filename("s.bin"), userData,
		filesclient.Progress(func(done, total int64) { streamed = append(streamed, [2]int64{done, total}) }))
	if err != nil {
		t.Fatal(err)
	}
	assertProgress(t, streamed, int64(len(data)), -1)
}

// assertProgress checks that done only grew, ended at wantDone, and total was always wantTotal.
func assertProgress(t *testing.T, calls [][2]int64, wantDone, wantTotal int64) {
	t.Helper()
	if len(calls) == 0 {
		t.Fatal("the progress callback was never called")
	}
	var last int64
	for _, c := range calls {
		if c[0] < last || c[1] != wantTotal {
			t.Fatalf("progress calls %v: done must grow and total stay %d", calls, wantTotal)
		}
		last = c[0]
	}
	if last != wantDone {
		t.Fatalf("progress ended at %d of %d bytes: %v", last, wantDone, calls)
	}
}

func TestRangedDownloads(t *testing.T) {
	client := dial(t, "FILES_TEST_TARGET")
	data := randomBytes(t, 3*MiB+5)
	file := uploadFrom(t, client, "bytes", data, userData)
	cases := []struct {
		name string
		opt  filesclient.DownloadOption
		want []byte
	}{
		{"middle", filesclient.Range(MiB+3, 100), data[MiB+3 : MiB+103]},
		{"across chunks", filesclient.Range(100, 2*MiB), data[100 : 100+2*MiB]},
		{"to the end", filesclient.Offset(2 * MiB), data[2*MiB:]},
		{"past the end is cut", filesclient.Range(3*MiB, 10*MiB), data[3*MiB:]},
		{"empty", filesclient.Range(7, 0), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			got, err := client.Download(testContext(t), file.GetId(), &buf, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), c.want) {
				t.Fatalf("%d bytes with SHA-256 %s, want %d with %s", buf.Len(), sha(buf.Bytes()), len(c.want), sha(c.want))
			}
			if got.GetSha256() != sha(data) {
				t.Errorf("the file's SHA-256 %s, want the whole file's %s", got.GetSha256(), sha(data))
			}
		})
	}
}
