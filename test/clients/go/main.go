// Command files-go-client drives the FilesService over gRPC with grpc-go and the generated code in
// gen/go: a 32 MiB client-streaming upload, ranged and full server-streaming downloads (SHA-256
// compared every time), get, list and delete. test/e2e/go-client.test.ts runs it against a live
// server; any mismatch exits non-zero with a message. The last stdout line is a JSON summary.
//
// Plaintext by default. -ca FILE turns TLS on and trusts that CA (-tls: TLS with the system roots);
// -cert FILE -key FILE add a client certificate (mutual TLS); -server-name overrides the name the
// server certificate is checked against; -token sends "authorization: Bearer TOKEN" on every call.
// -upload-only uploads one file, prints its summary and leaves it on the server.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const (
	defaultFileSize = 32 << 20
	minFileSize     = 4 << 10
	chunkSize       = 256 << 10
)

type options struct {
	addr       string
	useTLS     bool
	caFile     string
	certFile   string
	keyFile    string
	serverName string
	token      string
	size       int
	uploadOnly bool
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "", "server address, host:port")
	flag.BoolVar(&o.useTLS, "tls", false, "connect with TLS, trusting the system roots (implied by -ca)")
	flag.StringVar(&o.caFile, "ca", "", "PEM CA certificate to trust; turns TLS on")
	flag.StringVar(&o.certFile, "cert", "", "PEM client certificate (mutual TLS; needs -key and TLS)")
	flag.StringVar(&o.keyFile, "key", "", "PEM private key of -cert")
	flag.StringVar(&o.serverName, "server-name", "", "name to verify the server certificate against (default: the host of -addr)")
	flag.StringVar(&o.token, "token", "", "bearer token (API key) sent on every call")
	flag.IntVar(&o.size, "size", defaultFileSize, "bytes to upload")
	flag.BoolVar(&o.uploadOnly, "upload-only", false, "upload one file, print it and keep it (no downloads, list or delete)")
	flag.Parse()
	o.useTLS = o.useTLS || o.caFile != ""
	switch {
	case o.addr == "":
		usage("-addr is required")
	case (o.certFile == "") != (o.keyFile == ""):
		usage("-cert and -key go together")
	case o.certFile != "" && !o.useTLS:
		usage("-cert needs TLS: give -ca or -tls")
	case o.serverName != "" && !o.useTLS:
		usage("-server-name needs TLS: give -ca or -tls")
	case o.size < minFileSize:
		usage(fmt.Sprintf("-size must be at least %d", minFileSize))
	}
	summary, err := run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(summary)
	fmt.Println(string(out))
}

func usage(problem string) {
	fmt.Fprintf(os.Stderr, "files-go-client: %s\nusage: files-go-client -addr host:port [-ca FILE | -tls] [-cert FILE -key FILE] [-server-name NAME] [-token TOKEN] [-size BYTES] [-upload-only]\n", problem)
	os.Exit(2)
}

// transportCredentials: plaintext, or TLS with the given CA (or the system roots) and client certificate.
func transportCredentials(o options) (credentials.TransportCredentials, error) {
	if !o.useTLS {
		return insecure.NewCredentials(), nil
	}
	config := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.serverName}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca: no PEM certificate in %s", o.caFile)
		}
		config.RootCAs = pool
	}
	if o.certFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("-cert/-key: %w", err)
		}
		config.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(config), nil
}

// bearer sends "authorization: Bearer <token>" with every call.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func run(o options) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	creds, err := transportCredentials(o)
	if err != nil {
		return nil, err
	}
	dialOptions := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if o.token != "" {
		dialOptions = append(dialOptions, grpc.WithPerRPCCredentials(bearer{token: o.token, secure: o.useTLS}))
	}
	conn, err := grpc.NewClient(o.addr, dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", o.addr, err)
	}
	defer conn.Close()
	client := filesv1.NewFilesServiceClient(conn)

	fileSize := int64(o.size)
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
		if errors.Is(err, io.EOF) {
			if _, recvErr := up.CloseAndRecv(); recvErr != nil {
				return nil, fmt.Errorf("UploadFile: %w", recvErr)
			}
		}
		return nil, fmt.Errorf("UploadFile: send metadata: %w", err)
	}
	chunks := 0
	for off := 0; off < len(data); off += chunkSize {
		end := min(off+chunkSize, len(data))
		if err := up.Send(&filesv1.UploadFileRequest{Payload: &filesv1.UploadFileRequest_Chunk{Chunk: data[off:end]}}); err != nil {
			// io.EOF: the server ended the call; its status comes from CloseAndRecv.
			if errors.Is(err, io.EOF) {
				if _, recvErr := up.CloseAndRecv(); recvErr != nil {
					return nil, fmt.Errorf("UploadFile: %w", recvErr)
				}
			}
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
	if o.uploadOnly {
		return map[string]any{"ok": true, "file_id": file.GetId(), "bytes": size, "sha256": sum, "upload_chunks": chunks, "kept": true}, nil
	}

	// Server streaming: a range, an open-ended range and the whole file.
	ranges := []struct {
		offset int64
		length *int64
	}{
		{offset: fileSize*5/32 + 3, length: proto.Int64(fileSize*7/32 + 11)}, // 5 MiB + 3 and 7 MiB + 11 of 32 MiB
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

	// The server (or at least this principal) is fresh: the upload is the only file.
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
