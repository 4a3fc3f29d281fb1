// Command files-go-client drives the FilesService over gRPC with grpc-go and the generated code in
// gen/go: a 32 MiB client-streaming upload, ranged and full server-streaming downloads (SHA-256
// compared every time), get, list and delete. test/e2e/go-client.test.ts runs it against a live
// server; any mismatch exits non-zero with a message. The last stdout line is a JSON summary.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	filesv1 "github.com/example/s3-files-service/gen/go/files/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const (
	fileSize  = 32 << 20
	chunkSize = 256 << 10
)

func main() {
	addr := flag.String("addr", "", "server address, host:port")
	flag.Parse()
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "usage: files-go-client -addr host:port")
		os.Exit(2)
	}
	summary, err := run(*addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(summary)
	fmt.Println(string(out))
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func run(addr string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	client := filesv1.NewFilesServiceClient(conn)

	data := make([]byte, fileSize)
	if _, err := rand.Read(data); err != nil {
		return nil, err
	}
	sum := hexSum(data)

	// Client streaming: metadata first, then the bytes in chunks.
	up, err := client.UploadFile(ctx)
	if err != nil {
		return nil, fmt.Errorf("UploadFile: %w", err)
	}
	size := int64(len(data))
	meta := &filesv1.UploadFileMetadata{
		Filename:  "go-client.bin",
		Purpose:   filesv1.FilePurpose_FILE_PURPOSE_ASSISTANTS,
		MimeType:  "application/octet-stream",
		SizeBytes: &size,
		Sha256:    &sum,
	}
	if err := up.Send(&filesv1.UploadFileRequest{Payload: &filesv1.UploadFileRequest_Metadata{Metadata: meta}}); err != nil {
		return nil, fmt.Errorf("UploadFile: send metadata: %w", err)
	}
	chunks := 0
	for off := 0; off < len(data); off += chunkSize {
		end := min(off+chunkSize, len(data))
		if err := up.Send(&filesv1.UploadFileRequest{Payload: &filesv1.UploadFileRequest_Chunk{Chunk: data[off:end]}}); err != nil {
			return nil, fmt.Errorf("UploadFile: send chunk at %d: %w", off, err)
		}
		chunks++
	}
	res, err := up.CloseAndRecv()
	if err != nil {
		return nil, fmt.Errorf("UploadFile: close: %w", err)
	}
	file := res.GetFile()
	switch {
	case file == nil:
		return nil, errors.New("UploadFile: response has no file")
	case !strings.HasPrefix(file.GetId(), "file-"):
		return nil, fmt.Errorf("UploadFile: id %q", file.GetId())
	case file.GetBytes() != size, file.GetSha256() != sum, file.GetFilename() != "go-client.bin",
		file.GetPurpose() != filesv1.FilePurpose_FILE_PURPOSE_ASSISTANTS, file.GetStatus() != filesv1.FileStatus_FILE_STATUS_PROCESSED:
		return nil, fmt.Errorf("UploadFile: unexpected file %v (want %d bytes, sha256 %s)", file, size, sum)
	}

	// Server streaming: a range, an open-ended range and the whole file.
	ranges := []struct {
		offset int64
		length *int64
	}{
		{offset: 5<<20 + 3, length: proto.Int64(7<<20 + 11)},
		{offset: fileSize - 1000},
		{offset: 0},
	}
	for _, r := range ranges {
		got, meta, err := download(ctx, client, &filesv1.DownloadFileRequest{FileId: file.GetId(), Offset: r.offset, Length: r.length})
		if err != nil {
			return nil, err
		}
		end := int64(len(data))
		if r.length != nil {
			end = r.offset + *r.length
		}
		want := data[r.offset:end]
		if !proto.Equal(meta, file) {
			return nil, fmt.Errorf("DownloadFile(offset %d): first message file %v, want %v", r.offset, meta, file)
		}
		if len(got) != len(want) || hexSum(got) != hexSum(want) {
			return nil, fmt.Errorf("DownloadFile(offset %d): got %d bytes sha256 %s, want %d bytes sha256 %s",
				r.offset, len(got), hexSum(got), len(want), hexSum(want))
		}
	}

	got, err := client.GetFile(ctx, &filesv1.GetFileRequest{FileId: file.GetId()})
	if err != nil {
		return nil, fmt.Errorf("GetFile: %w", err)
	}
	if !proto.Equal(got.GetFile(), file) {
		return nil, fmt.Errorf("GetFile: %v, want %v", got.GetFile(), file)
	}

	// The server is fresh: the upload is the only file.
	list, err := client.ListFiles(ctx, &filesv1.ListFilesRequest{Limit: proto.Int32(100), Purpose: filesv1.FilePurpose_FILE_PURPOSE_ASSISTANTS})
	if err != nil {
		return nil, fmt.Errorf("ListFiles: %w", err)
	}
	if len(list.GetData()) != 1 || !proto.Equal(list.GetData()[0], file) || list.GetHasMore() ||
		list.GetFirstId() != file.GetId() || list.GetLastId() != file.GetId() {
		return nil, fmt.Errorf("ListFiles: %v, want exactly %s", list, file.GetId())
	}

	del, err := client.DeleteFile(ctx, &filesv1.DeleteFileRequest{FileId: file.GetId()})
	if err != nil {
		return nil, fmt.Errorf("DeleteFile: %w", err)
	}
	if del.GetId() != file.GetId() || !del.GetDeleted() {
		return nil, fmt.Errorf("DeleteFile: %v", del)
	}
	if _, err := client.GetFile(ctx, &filesv1.GetFileRequest{FileId: file.GetId()}); status.Code(err) != codes.NotFound {
		return nil, fmt.Errorf("GetFile after delete: got %v, want NotFound", err)
	}
	if _, _, err := download(ctx, client, &filesv1.DownloadFileRequest{FileId: file.GetId()}); status.Code(err) != codes.NotFound {
		return nil, fmt.Errorf("DownloadFile after delete: got %v, want NotFound", err)
	}
	list, err = client.ListFiles(ctx, &filesv1.ListFilesRequest{})
	if err != nil {
		return nil, fmt.Errorf("ListFiles after delete: %w", err)
	}
	if len(list.GetData()) != 0 {
		return nil, fmt.Errorf("ListFiles after delete: %v, want none", list)
	}

	return map[string]any{"ok": true, "file_id": file.GetId(), "bytes": size, "sha256": sum, "upload_chunks": chunks}, nil
}

// download collects a DownloadFile stream: the file from the first message, the bytes of the rest.
func download(ctx context.Context, client filesv1.FilesServiceClient, req *filesv1.DownloadFileRequest) ([]byte, *filesv1.File, error) {
	stream, err := client.DownloadFile(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	var file *filesv1.File
	for i := 0; ; i++ {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), file, nil
		}
		if err != nil {
			return nil, nil, err
		}
		switch p := msg.GetPayload().(type) {
		case *filesv1.DownloadFileResponse_File:
			if i != 0 {
				return nil, nil, fmt.Errorf("DownloadFile(offset %d): file in message %d, want only in the first", req.GetOffset(), i)
			}
			file = p.File
		case *filesv1.DownloadFileResponse_Chunk:
			if i == 0 {
				return nil, nil, fmt.Errorf("DownloadFile(offset %d): first message is a chunk, want the file", req.GetOffset())
			}
			buf.Write(p.Chunk)
		default:
			return nil, nil, fmt.Errorf("DownloadFile(offset %d): message %d has no payload", req.GetOffset(), i)
		}
	}
}
