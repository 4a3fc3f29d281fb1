package filesclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"google.golang.org/grpc/codes"
)

// Download writes a file's content (or a Range of it) to w and returns the file's metadata. A
// whole-file download is checked against the SHA-256 the service recorded (ErrIntegrity if it
// differs). When the stream breaks (UNAVAILABLE, a reset connection, a stream that ends short) it
// resumes from the bytes already written, up to MaxAttempts tries in all.
func (c *Client) Download(ctx context.Context, fileID string, w io.Writer, opts ...DownloadOption) (*filesv1.File, error) {
	if err := checkFileID(fileID); err != nil {
		return nil, err
	}
	s, err := newDownloadSettings(opts)
	if err != nil {
		return nil, err
	}
	d := &download{c: c, id: fileID, w: w, s: s, total: s.length}
	if !s.ranged {
		d.hash = sha256.New()
	}
	for attempt := 1; ; attempt++ {
		err := d.stream(ctx)
		if err == nil {
			break
		}
		if attempt >= s.maxAttempts || !d.resumable(err) || ctx.Err() != nil {
			return nil, err
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, err
		}
	}
	if d.hash != nil {
		if got := hex.EncodeToString(d.hash.Sum(nil)); got != d.file.GetSha256() {
			return nil, integrityError("download "+fileID, d.file.GetSha256(), got, d.requestID)
		}
	}
	return d.file, nil
}

// DownloadFile downloads into path through a temporary file in the same directory, renamed over
// path only once every byte has arrived and been verified: a failed download leaves no file.
func (c *Client) DownloadFile(ctx context.Context, fileID, path string, opts ...DownloadOption) (*filesv1.File, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.part")
	if err != nil {
		return nil, fmt.Errorf("files: download: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	file, err := c.Download(ctx, fileID, tmp, opts...)
	if err != nil {
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("files: download: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("files: download: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("files: download: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("files: download: %w", err)
	}
	done = true
	return file, nil
}

// download is one Download's state across its streams.
type download struct {
	c         *Client
	id        string
	w         io.Writer
	s         *downloadSettings
	hash      hash.Hash
	file      *filesv1.File
	written   int64
	total     int64 // bytes this download delivers; -1 until known
	progress  *progress
	requestID string
	// writeErr is set when w failed: that is the caller's problem, never resumed.
	writeErr error
}

// errShortStream is a stream that ended cleanly before every byte arrived.
var errShortStream = errors.New("the download stream ended early")

// stream runs one DownloadFile call from the current position to the end (or until it breaks).
func (d *download) stream(ctx context.Context) error {
	if d.total >= 0 && d.written == d.total && d.file != nil {
		return nil
	}
	req := &filesv1.DownloadFileRequest{FileId: d.id, Offset: d.s.offset + d.written}
	if d.s.length >= 0 {
		rest := d.s.length - d.written
		req.Length = &rest
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctx, requestID := withRequestID(ctx)
	d.requestID = requestID
	stream, err := d.c.rpc.DownloadFile(ctx, req)
	if err != nil {
		return toError(err, requestID)
	}
	first, err := stream.Recv()
	if err != nil {
		if err == io.EOF {
			return &Error{Code: codes.Internal, Message: "the download stream ended before the file's metadata", RequestID: requestID}
		}
		return toError(err, requestID, stream.Trailer())
	}
	if err := d.begin(first.GetFile(), requestID); err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return toError(err, requestID, stream.Trailer())
		}
		chunk := msg.GetChunk()
		if d.written+int64(len(chunk)) > d.total {
			return &Error{Code: codes.Internal, Message: fmt.Sprintf("the service sent more than the %d bytes asked for", d.total), RequestID: requestID}
		}
		if _, err := d.w.Write(chunk); err != nil {
			d.writeErr = fmt.Errorf("files: download: writing: %w", err)
			return d.writeErr
		}
		if d.hash != nil {
			d.hash.Write(chunk)
		}
		d.written += int64(len(chunk))
		d.progress.add(int64(len(chunk)))
	}
	if d.written < d.total {
		return fmt.Errorf("files: download %s: %w after %d of %d bytes", d.id, errShortStream, d.written, d.total)
	}
	return nil
}

// begin takes the file from a stream's first message; a resumed stream must name the same file.
func (d *download) begin(file *filesv1.File, requestID string) error {
	if file == nil {
		return &Error{Code: codes.Internal, Message: "the download stream's first message carries no file", RequestID: requestID}
	}
	if d.file != nil {
		if file.GetBytes() != d.file.GetBytes() || file.GetSha256() != d.file.GetSha256() {
			return &Error{Code: codes.Internal, Message: "the file changed while it was being downloaded", RequestID: requestID}
		}
		return nil
	}
	d.file = file
	if d.total < 0 {
		d.total = max(file.GetBytes()-d.s.offset, 0)
	} else {
		d.total = max(min(d.total, file.GetBytes()-d.s.offset), 0)
	}
	d.progress = newProgress(d.s.progress, d.total)
	return nil
}

// resumable: a broken stream or an unreachable service, never the caller's writer failing or a
// refusal by the service.
func (d *download) resumable(err error) bool {
	if d.writeErr != nil {
		return false
	}
	if errors.Is(err, errShortStream) {
		return true
	}
	switch codeOf(err) {
	case codes.Unavailable:
		return true
	case codes.Internal:
		// grpc-go's words for an HTTP/2 stream reset in transit, as opposed to the service's own INTERNAL.
		e, ok := errorsAs(err)
		return ok && strings.Contains(e.Message, "RST_STREAM")
	}
	return false
}
