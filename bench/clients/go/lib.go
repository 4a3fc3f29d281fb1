package main

// The -lib mode (targets golib and golibstream): large transfers through the client library in
// gen/go/filesclient with its defaults, as a Go user would call it. An upload reads the payload
// from a file written once per size (a user's large upload comes from disk, and it is what lets
// the library declare the size and go in parallel parts); -stream sets the part threshold past
// any size, so every upload is one UploadFile stream.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"github.com/s3-files-service/s3-files-service/gen/go/filesclient"
)

type libClient struct {
	files    *filesclient.Client
	pool     [][]byte
	stream   bool
	dir      string
	payloads map[int64]string
}

func dialLib(addr, caFile string, stream bool) (*libClient, error) {
	opts := []filesclient.Option{}
	if caFile != "" {
		opts = append(opts, filesclient.WithTLS(caFile))
	}
	files, err := filesclient.Dial(context.Background(), addr, opts...)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "files-bench-golib-")
	if err != nil {
		return nil, err
	}
	return &libClient{files: files, pool: payloadPool(), stream: stream, dir: dir, payloads: map[int64]string{}}, nil
}

func (c *libClient) close() {
	c.files.Close()
	os.RemoveAll(c.dir)
}

func (c *libClient) handle(req *request) (any, error) {
	switch req.Op {
	case "upload":
		return c.upload(req.Size)
	case "download":
		return c.download(req.ID)
	case "delete":
		return map[string]any{}, c.files.Delete(context.Background(), req.ID)
	}
	return nil, fmt.Errorf("op %q: the library client does large transfers only", req.Op)
}

// payloadFile writes bench/payload.ts's `size`-byte payload to a file once, outside the timing.
func (c *libClient) payloadFile(size int64) (string, error) {
	if path, ok := c.payloads[size]; ok {
		return path, nil
	}
	path := filepath.Join(c.dir, fmt.Sprintf("payload-%d.bin", size))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := sendPayload(c.pool, size, func(block []byte) error { _, err := f.Write(block); return err }); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	c.payloads[size] = path
	return path, nil
}

func (c *libClient) upload(size int64) (any, error) {
	path, err := c.payloadFile(size)
	if err != nil {
		return nil, fmt.Errorf("writing the payload file: %w", err)
	}
	opts := []filesclient.UploadOption{filesclient.Purpose(filesv1.FilePurpose_FILE_PURPOSE_USER_DATA), filesclient.Filename("bench.bin")}
	if c.stream {
		opts = append(opts, filesclient.PartThreshold(math.MaxInt64))
	}
	t0 := time.Now()
	file, err := c.files.UploadFile(context.Background(), path, opts...)
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": file.GetId(), "bytes": file.GetBytes(), "sha256": file.GetSha256(), "seconds": time.Since(t0).Seconds()}, nil
}

// countingHash is the download's writer: the SHA-256 and the byte count of what arrived.
type countingHash struct {
	sum    [32]byte
	bytes  int64
	writes int
	h      interface {
		Write([]byte) (int, error)
		Sum([]byte) []byte
	}
}

func (w *countingHash) Write(p []byte) (int, error) {
	w.bytes += int64(len(p))
	w.writes++
	return w.h.Write(p)
}

func (c *libClient) download(id string) (any, error) {
	t0 := time.Now()
	w := &countingHash{h: sha256.New()}
	if _, err := c.files.Download(context.Background(), id, w); err != nil {
		return nil, err
	}
	return map[string]any{"bytes": w.bytes, "sha256": hex.EncodeToString(w.h.Sum(nil)), "chunks": w.writes, "seconds": time.Since(t0).Seconds()}, nil
}
