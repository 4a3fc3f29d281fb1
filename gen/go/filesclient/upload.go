package filesclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"mime"
	"os"
	"path/filepath"
	"sync"
	"time"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"google.golang.org/grpc/codes"
)

// UploadFile uploads the file at path. Its size and SHA-256 are declared to the service, which
// refuses the upload if the bytes it receives differ; above the part threshold it goes in
// parallel parts through the Uploads API. The filename defaults to the path's base name.
func (c *Client) UploadFile(ctx context.Context, path string, opts ...UploadOption) (*filesv1.File, error) {
	s, err := newUploadSettings(opts)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("files: upload: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("files: upload: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, invalidArgument("%s is not a regular file", path)
	}
	if s.filename == "" {
		s.filename = filepath.Base(path)
	}
	size := info.Size()
	if size > s.partThreshold {
		return c.uploadParts(ctx, s, readerAtSource{f}, size)
	}
	// A first pass for the SHA-256, so the service can check it; the file is at most the part
	// threshold here, and was just read into the page cache.
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return nil, fmt.Errorf("files: upload: reading %s: %w", path, err)
	}
	return c.streamUpload(ctx, s, &chunkReader{r: io.NewSectionReader(f, 0, size)}, size, hex.EncodeToString(h.Sum(nil)))
}

// UploadBytes uploads data, declaring its size and SHA-256; above the part threshold it goes in
// parallel parts. Filename is required. data is not modified, and must not be while this runs.
func (c *Client) UploadBytes(ctx context.Context, data []byte, opts ...UploadOption) (*filesv1.File, error) {
	s, err := newUploadSettings(opts)
	if err != nil {
		return nil, err
	}
	if s.filename == "" {
		return nil, invalidArgument("UploadBytes needs a filename: pass filesclient.Filename(...)")
	}
	size := int64(len(data))
	if size > s.partThreshold {
		return c.uploadParts(ctx, s, bytesSource(data), size)
	}
	sum := sha256.Sum256(data)
	return c.streamUpload(ctx, s, &sliceChunks{data: data}, size, hex.EncodeToString(sum[:]))
}

// Upload streams r to the service as one file, in ChunkSize chunks, until r ends. The size is not
// known in advance, so it always goes in one stream; the SHA-256 the service records is checked
// against the bytes read. Filename is required.
func (c *Client) Upload(ctx context.Context, r io.Reader, opts ...UploadOption) (*filesv1.File, error) {
	s, err := newUploadSettings(opts)
	if err != nil {
		return nil, err
	}
	if s.filename == "" {
		return nil, invalidArgument("Upload needs a filename: pass filesclient.Filename(...)")
	}
	if r == nil {
		return nil, invalidArgument("Upload needs a reader, not nil")
	}
	return c.streamUpload(ctx, s, &chunkReader{r: r}, -1, "")
}

// chunks yields an upload's chunks in order; io.EOF after the last.
type chunks interface {
	next() ([]byte, error)
}

// chunkReader reads ChunkSize chunks, each into a new buffer: grpc-go may still hold a sent
// message (stats handlers read it lazily), so a buffer is never reused.
type chunkReader struct{ r io.Reader }

func (c *chunkReader) next() ([]byte, error) {
	buf := make([]byte, ChunkSize)
	n, err := io.ReadFull(c.r, buf)
	if n > 0 {
		return buf[:n], nil
	}
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return nil, err
}

// sliceChunks cuts a byte slice into ChunkSize chunks without copying.
type sliceChunks struct {
	data []byte
	off  int
}

func (c *sliceChunks) next() ([]byte, error) {
	if c.off >= len(c.data) {
		return nil, io.EOF
	}
	end := min(c.off+ChunkSize, len(c.data))
	chunk := c.data[c.off:end]
	c.off = end
	return chunk, nil
}

// streamUpload sends one UploadFile stream: the metadata (with size and sha256 when known), then
// the chunks. Without a declared SHA-256 the bytes are hashed on the way and compared with the one
// the service recorded.
func (c *Client) streamUpload(ctx context.Context, s *uploadSettings, src chunks, size int64, declaredSHA string) (*filesv1.File, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctx, requestID := withRequestID(ctx)
	stream, err := c.rpc.UploadFile(ctx)
	if err != nil {
		return nil, toError(err, requestID)
	}
	meta := s.metadata()
	if size >= 0 {
		meta.SizeBytes = &size
	}
	if declaredSHA != "" {
		meta.Sha256 = &declaredSHA
	}
	progress := newProgress(s.progress, size)
	var h hash.Hash
	if declaredSHA == "" {
		h = sha256.New()
	}
	sent := stream.Send(&filesv1.UploadFileRequest{Payload: &filesv1.UploadFileRequest_Metadata{Metadata: meta}})
	for sent == nil {
		chunk, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("files: upload: reading the source: %w", err)
		}
		if h != nil {
			h.Write(chunk)
		}
		sent = stream.Send(&filesv1.UploadFileRequest{Payload: &filesv1.UploadFileRequest_Chunk{Chunk: chunk}})
		if sent == nil {
			progress.add(int64(len(chunk)))
		}
	}
	// A Send that meets io.EOF means the service ended the call (a refusal mid-stream, such as a
	// file over the size limit); CloseAndRecv returns its status.
	if sent != nil && sent != io.EOF {
		return nil, toError(sent, requestID, stream.Trailer())
	}
	res, err := stream.CloseAndRecv()
	if err != nil {
		return nil, toError(err, requestID, stream.Trailer())
	}
	file := res.GetFile()
	want := declaredSHA
	if h != nil {
		want = hex.EncodeToString(h.Sum(nil))
	}
	if err := c.checkUploaded(ctx, file, want, requestID); err != nil {
		return nil, err
	}
	return file, nil
}

// checkUploaded compares the SHA-256 the service recorded with the client's. On a mismatch the
// file is deleted, so that no corrupt file stays behind.
func (c *Client) checkUploaded(ctx context.Context, file *filesv1.File, sha string, requestID string) error {
	if file == nil {
		return &Error{Code: codes.Internal, Message: "the service answered the upload without a file", RequestID: requestID}
	}
	if file.GetSha256() == sha {
		return nil
	}
	c.deleteQuietly(ctx, file.GetId())
	return integrityError("upload "+file.GetId(), file.GetSha256(), sha, requestID)
}

// cleanupTimeout bounds the calls that undo a failed upload (delete, cancel), which run even when
// the caller's context has ended.
const cleanupTimeout = 30 * time.Second

func (s *uploadSettings) metadata() *filesv1.UploadFileMetadata {
	return &filesv1.UploadFileMetadata{
		Filename:     s.filename,
		Purpose:      s.purpose,
		MimeType:     s.contentType(),
		ExpiresAfter: s.expiresAfter,
	}
}

// contentType is the MimeType option, else the filename extension's registered type, else "" (the
// service's default).
func (s *uploadSettings) contentType() string {
	if s.mimeType != "" {
		return s.mimeType
	}
	return mime.TypeByExtension(filepath.Ext(s.filename))
}

// progress serialises ProgressFunc calls from parallel parts.
type progress struct {
	mu    sync.Mutex
	f     ProgressFunc
	done  int64
	total int64
}

func newProgress(f ProgressFunc, total int64) *progress {
	return &progress{f: f, total: total}
}

func (p *progress) add(n int64) {
	if p.f == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.f(p.done, p.total)
}
