package filesclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// partSource gives the bytes of one part.
type partSource interface {
	// part returns the n bytes at off, in buf (which holds at least n bytes) or elsewhere.
	part(off int64, n int, buf []byte) ([]byte, error)
	// needsBuffer says whether part reads into buf (else buf may be nil).
	needsBuffer() bool
	// sha256 hashes the whole source in order, stopping early when ctx ends.
	sha256(ctx context.Context, size int64) (string, error)
}

type readerAtSource struct{ r io.ReaderAt }

func (s readerAtSource) part(off int64, n int, buf []byte) ([]byte, error) {
	got, err := s.r.ReadAt(buf[:n], off)
	if got == n {
		return buf[:n], nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("files: upload: reading bytes %d to %d: %w (did the file shrink?)", off, off+int64(n), err)
}

func (readerAtSource) needsBuffer() bool { return true }

func (s readerAtSource) sha256(ctx context.Context, size int64) (string, error) {
	h := sha256.New()
	buf := make([]byte, ChunkSize)
	r := io.NewSectionReader(s.r, 0, size)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := r.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", fmt.Errorf("files: upload: hashing the source: %w", err)
		}
	}
}

type bytesSource []byte

func (b bytesSource) part(off int64, n int, _ []byte) ([]byte, error) {
	return b[off : off+int64(n)], nil
}

func (bytesSource) needsBuffer() bool { return false }

func (b bytesSource) sha256(context.Context, int64) (string, error) {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// uploadParts sends a file of known size through the Uploads API: CreateUpload, parts sent by
// parallel workers (each retried on UNAVAILABLE and RESOURCE_EXHAUSTED with backoff), then
// CompleteUpload with the part ids in order. If any of it fails for good the Upload is cancelled
// and the first error is returned. The whole file is hashed alongside and compared with the
// SHA-256 the service records for the completed file.
func (c *Client) uploadParts(ctx context.Context, s *uploadSettings, src partSource, size int64) (*filesv1.File, error) {
	partSize := s.partSize
	if parts := (size + partSize - 1) / partSize; parts > maxPartsPerUpload {
		partSize = (size + maxPartsPerUpload - 1) / maxPartsPerUpload
		if partSize > MaxPartSize {
			return nil, invalidArgument("a file of %d bytes needs parts over the %d-byte message limit", size, MaxPartSize)
		}
	}
	upload, err := c.createUpload(ctx, s, size)
	if err != nil {
		return nil, err
	}

	hashCtx, stopHash := context.WithCancel(ctx)
	defer stopHash()
	hashed := make(chan hashResult, 1)
	go func() {
		sum, err := src.sha256(hashCtx, size)
		hashed <- hashResult{sum, err}
	}()

	partIDs, err := c.sendParts(ctx, s, src, upload.GetId(), size, partSize)
	if err != nil {
		c.cancelUpload(ctx, upload.GetId())
		return nil, err
	}
	completed, requestID, err := c.completeUpload(ctx, upload.GetId(), partIDs)
	if err != nil {
		c.cancelUpload(ctx, upload.GetId())
		return nil, err
	}
	local := <-hashed
	if local.err != nil {
		c.deleteQuietly(ctx, completed.GetFile().GetId())
		return nil, local.err
	}
	if err := c.checkUploaded(ctx, completed.GetFile(), local.sum, requestID); err != nil {
		return nil, err
	}
	return completed.GetFile(), nil
}

type hashResult struct {
	sum string
	err error
}

func (c *Client) createUpload(ctx context.Context, s *uploadSettings, size int64) (*filesv1.Upload, error) {
	ctx, cancel := c.metadataCall(ctx)
	defer cancel()
	var res *filesv1.CreateUploadResponse
	err := c.invoke(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		res, err = c.rpc.CreateUpload(ctx, &filesv1.CreateUploadRequest{
			Filename:     s.filename,
			Purpose:      s.purpose,
			Bytes:        size,
			MimeType:     s.contentType(),
			ExpiresAfter: s.expiresAfter,
		}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetUpload(), nil
}

// sendParts runs s.partConcurrency workers over the parts and returns their ids in file order,
// or the first error that retrying did not cure (the other workers stop at once).
func (c *Client) sendParts(ctx context.Context, s *uploadSettings, src partSource, uploadID string, size, partSize int64) ([]string, error) {
	count := int((size + partSize - 1) / partSize)
	ids := make([]string, count)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		failOnce sync.Once
		failure  error
	)
	fail := func(err error) {
		failOnce.Do(func() {
			failure = err
			stop()
		})
	}
	progress := newProgress(s.progress, size)
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range count {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range min(s.partConcurrency, count) {
		wg.Go(func() {
			var buf []byte
			if src.needsBuffer() {
				buf = make([]byte, partSize)
			}
			for i := range next {
				off := int64(i) * partSize
				n := int(min(partSize, size-off))
				data, err := src.part(off, n, buf)
				if err != nil {
					fail(err)
					return
				}
				part, err := c.addPart(ctx, s.maxAttempts, uploadID, data)
				if err != nil {
					fail(err)
					return
				}
				if part.GetBytes() != int64(n) {
					fail(&Error{Code: codes.Internal, Message: fmt.Sprintf("part %d of upload %s: the service stored %d bytes of %d", i, uploadID, part.GetBytes(), n)})
					return
				}
				ids[i] = part.GetId()
				progress.add(int64(n))
			}
		})
	}
	wg.Wait()
	if failure != nil {
		return nil, failure
	}
	// The caller's context may have ended between parts, leaving some unsent.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ids, nil
}

// addPart sends one part, retrying what a later try can cure.
func (c *Client) addPart(ctx context.Context, maxAttempts int, uploadID string, data []byte) (*filesv1.UploadPart, error) {
	for attempt := 1; ; attempt++ {
		part, err := c.addPartOnce(ctx, uploadID, data)
		if err == nil {
			return part, nil
		}
		if attempt >= maxAttempts || !retryablePartError(err) || ctx.Err() != nil {
			return nil, err
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, err
		}
	}
}

func (c *Client) addPartOnce(ctx context.Context, uploadID string, data []byte) (*filesv1.UploadPart, error) {
	ctx, cancel := c.metadataCall(ctx)
	defer cancel()
	var res *filesv1.AddUploadPartResponse
	err := c.invoke(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		res, err = c.rpc.AddUploadPart(ctx, &filesv1.AddUploadPartRequest{UploadId: uploadID, Data: data}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetPart(), nil
}

// completeUpload has no deadline of its own: the service assembles the parts before it answers,
// which takes time in proportion to the file.
func (c *Client) completeUpload(ctx context.Context, uploadID string, partIDs []string) (*filesv1.Upload, string, error) {
	ctx, requestID := withRequestID(ctx)
	var header, trailer metadata.MD
	res, err := c.rpc.CompleteUpload(ctx, &filesv1.CompleteUploadRequest{UploadId: uploadID, PartIds: partIDs}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		return nil, requestID, toError(err, requestID, trailer, header)
	}
	if res.GetUpload().GetFile() == nil {
		return nil, requestID, &Error{Code: codes.Internal, Message: "the completed upload " + uploadID + " has no file", RequestID: requestID}
	}
	return res.GetUpload(), requestID, nil
}

// cancelUpload is best effort: the error being returned is the one that matters.
func (c *Client) cancelUpload(ctx context.Context, uploadID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = c.invoke(ctx, func(ctx context.Context, opts ...grpc.CallOption) error {
		_, err := c.rpc.CancelUpload(ctx, &filesv1.CancelUploadRequest{UploadId: uploadID}, opts...)
		return err
	})
}

func (c *Client) deleteQuietly(ctx context.Context, fileID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = c.Delete(ctx, fileID)
}
