// Command files-bench-go is the bench's grpc-go client (target grpcgo): grpc-go with the generated
// code in gen/go, as a Go user of the service would call it. The harness (bench/line-client.ts)
// runs one process per measured server and drives it over a line protocol, one JSON object per
// line each way, so it can read the server's CPU between the phases of a measurement:
//
//	{"op":"upload","size":N,"sha256":H}     → {"id","bytes","sha256","seconds"}
//	{"op":"download","id":I}                → {"bytes","sha256","chunks","seconds"}
//	{"op":"delete","id":I}                  → {}
//	{"op":"small","concurrency":C,"seconds":S,"maxOps":N,"size":B}
//	                                        → {"ops","errors","firstError","latenciesMs","seconds"}
//	{"op":"retrieve","ids":[...]}           → {"latenciesMs","seconds","mismatches","firstMismatch"}
//	{"op":"list","limit":L,"maxPages":P}    → {"pages","rowsSeen","duplicates","latenciesMs","seconds"}
//
// A failed request answers {"error": "..."}; the process exits when stdin closes. The upload
// payload is bench/payload.ts's, byte for byte (see payloadPool), so the harness checks every
// download against the SHA-256 it computed itself.
//
// Client options, what a Go user moving large files would set and no more: grpc-go's defaults,
// except MaxCallRecvMsgSize/MaxCallSendMsgSize raised to 16 MiB (the default receive limit is
// 4 MiB; the server's download messages are up to max_message_bytes) and 16 MiB initial stream and
// connection windows (grpc.WithInitialWindowSize / WithInitialConnWindowSize; the defaults start at
// 64 KiB and grow by BDP estimation, which a fixed window turns off). One connection: plaintext, or
// TLS trusting the CA in -ca only (the harness's --tls).
//
// With -lib (and -stream), large transfers go through the client library instead: see lib.go.
package main

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	// blockSize is bench/payload.ts's BLOCK and bench/clients.ts's CHUNK_SIZE: one UploadFile chunk per block.
	blockSize  = 1 << 20
	poolBlocks = 4
	window     = 16 << 20
	maxMessage = 16 << 20
	// callTimeout bounds each small upload, GetFile and ListFiles call (as the harness does its own).
	callTimeout = 60 * time.Second
)

type request struct {
	Op          string   `json:"op"`
	Size        int64    `json:"size"`
	Sha256      string   `json:"sha256"`
	ID          string   `json:"id"`
	IDs         []string `json:"ids"`
	Concurrency int      `json:"concurrency"`
	Seconds     float64  `json:"seconds"`
	MaxOps      int64    `json:"maxOps"`
	Limit       int32    `json:"limit"`
	MaxPages    int      `json:"maxPages"`
}

func main() {
	addr := flag.String("addr", "", "server address, host:port")
	caFile := flag.String("ca", "", "TLS, trusting only the CA certificate (PEM) in this file; plaintext without it")
	lib := flag.Bool("lib", false, "large transfers through the client library (gen/go/filesclient) instead of the stubs")
	stream := flag.Bool("stream", false, "with -lib: every upload in one stream, never in parts")
	flag.Parse()
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "usage: files-bench-go -addr host:port [-ca ca.pem] [-lib [-stream]] (requests on stdin)")
		os.Exit(2)
	}
	var handle func(*request) (any, error)
	if *lib {
		c, err := dialLib(*addr, *caFile, *stream)
		if err != nil {
			fmt.Fprintf(os.Stderr, "dial %s: %v\n", *addr, err)
			os.Exit(1)
		}
		defer c.close()
		handle = c.handle
	} else {
		c, closeConn := dialStubs(*addr, *caFile)
		defer closeConn()
		handle = c.handle
	}
	serve(handle)
}

// dialStubs is the stubs client: grpc-go with the generated code and the options above.
func dialStubs(addr, caFile string) (*client, func()) {
	creds := insecure.NewCredentials()
	if caFile != "" {
		tlsCreds, err := credentials.NewClientTLSFromFile(caFile, "")
		if err != nil {
			fmt.Fprintf(os.Stderr, "-ca %s: %v\n", caFile, err)
			os.Exit(2)
		}
		creds = tlsCreds
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithInitialWindowSize(window),
		grpc.WithInitialConnWindowSize(window),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)),
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dial %s: %v\n", addr, err)
		os.Exit(1)
	}
	return &client{files: filesv1.NewFilesServiceClient(conn), pool: payloadPool()}, func() { conn.Close() }
}

// serve answers one request per line of stdin until it closes.
func serve(handle func(*request) (any, error)) {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20) // a retrieve request carries every id
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		var reply any
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			reply = map[string]string{"error": fmt.Sprintf("bad request: %v", err)}
		} else if r, err := handle(&req); err != nil {
			reply = map[string]string{"error": err.Error()}
		} else {
			reply = r
		}
		if err := enc.Encode(reply); err != nil {
			return
		}
		if err := out.Flush(); err != nil {
			return
		}
	}
}

type client struct {
	files filesv1.FilesServiceClient
	pool  [][]byte
}

func (c *client) handle(req *request) (any, error) {
	switch req.Op {
	case "upload":
		return c.upload(req.Size, req.Sha256)
	case "download":
		return c.download(req.ID)
	case "delete":
		_, err := c.files.DeleteFile(context.Background(), &filesv1.DeleteFileRequest{FileId: req.ID})
		return map[string]any{}, err
	case "small":
		return c.small(req.Concurrency, req.Seconds, req.MaxOps, req.Size), nil
	case "retrieve":
		return c.retrieve(req.IDs), nil
	case "list":
		return c.list(req.Limit, req.MaxPages)
	}
	return nil, fmt.Errorf("unknown op %q", req.Op)
}

// payloadPool is bench/payload.ts's pool: the first poolBlocks MiB of the AES-128-CTR keystream
// with key 16 × 0x42 and IV 0 (Go's CTR, like OpenSSL's, counts over the whole 128-bit block).
func payloadPool() [][]byte {
	key := make([]byte, 16)
	for i := range key {
		key[i] = 0x42
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	stream := cipher.NewCTR(block, make([]byte, aes.BlockSize))
	pool := make([][]byte, poolBlocks)
	for i := range pool {
		pool[i] = make([]byte, blockSize)
		stream.XORKeyStream(pool[i], pool[i])
	}
	return pool
}

// sendPayload hands send each payload block of a `size`-byte payload in turn: pool block
// index % poolBlocks with the index big-endian in its first 8 bytes. One buffer is reused: grpc-go
// has encoded a message by the time Send returns.
func (c *client) sendPayload(size int64, send func([]byte) error) error {
	return sendPayload(c.pool, size, send)
}

func sendPayload(pool [][]byte, size int64, send func([]byte) error) error {
	buf := make([]byte, blockSize)
	for index, at := int64(0), int64(0); at < size; index, at = index+1, at+blockSize {
		n := min(int64(blockSize), size-at)
		copy(buf[:n], pool[index%poolBlocks][:n])
		if n >= 8 {
			binary.BigEndian.PutUint64(buf[:8], uint64(index))
		}
		if err := send(buf[:n]); err != nil {
			return err
		}
	}
	return nil
}

func (c *client) upload(size int64, sum string) (any, error) {
	t0 := time.Now()
	up, err := c.files.UploadFile(context.Background())
	if err != nil {
		return nil, fmt.Errorf("UploadFile: %w", err)
	}
	meta := &filesv1.UploadFileMetadata{
		Filename:  "bench.bin",
		Purpose:   filesv1.FilePurpose_FILE_PURPOSE_USER_DATA,
		MimeType:  "application/octet-stream",
		SizeBytes: &size,
		Sha256:    &sum,
	}
	if err := up.Send(&filesv1.UploadFileRequest{Payload: &filesv1.UploadFileRequest_Metadata{Metadata: meta}}); err != nil {
		return nil, fmt.Errorf("UploadFile: send metadata: %w", err)
	}
	err = c.sendPayload(size, func(chunk []byte) error {
		return up.Send(&filesv1.UploadFileRequest{Payload: &filesv1.UploadFileRequest_Chunk{Chunk: chunk}})
	})
	// A failed Send means the stream ended; CloseAndRecv has the status that says why.
	res, closeErr := up.CloseAndRecv()
	if closeErr != nil {
		return nil, fmt.Errorf("UploadFile: %w", closeErr)
	}
	if err != nil {
		return nil, fmt.Errorf("UploadFile: send: %w", err)
	}
	file := res.GetFile()
	if file == nil {
		return nil, errors.New("UploadFile: response has no file")
	}
	return map[string]any{"id": file.GetId(), "bytes": file.GetBytes(), "sha256": file.GetSha256(), "seconds": time.Since(t0).Seconds()}, nil
}

func (c *client) download(id string) (any, error) {
	t0 := time.Now()
	stream, err := c.files.DownloadFile(context.Background(), &filesv1.DownloadFileRequest{FileId: id})
	if err != nil {
		return nil, fmt.Errorf("DownloadFile: %w", err)
	}
	hash := sha256.New()
	var bytes int64
	chunks := 0
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("DownloadFile: %w", err)
		}
		if chunk := msg.GetChunk(); chunk != nil {
			hash.Write(chunk)
			bytes += int64(len(chunk))
			chunks++
		}
	}
	return map[string]any{"bytes": bytes, "sha256": hex.EncodeToString(hash.Sum(nil)), "chunks": chunks, "seconds": time.Since(t0).Seconds()}, nil
}

// smallUpload is one 4 KiB-style upload: metadata and one chunk of fresh random bytes.
func (c *client) smallUpload(n int64, size int64) error {
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	up, err := c.files.UploadFile(ctx)
	if err != nil {
		return err
	}
	meta := &filesv1.UploadFileMetadata{
		Filename:  fmt.Sprintf("small-%d.bin", n),
		Purpose:   filesv1.FilePurpose_FILE_PURPOSE_ASSISTANTS,
		MimeType:  "application/octet-stream",
		SizeBytes: &size,
	}
	sendErr := up.Send(&filesv1.UploadFileRequest{Payload: &filesv1.UploadFileRequest_Metadata{Metadata: meta}})
	if sendErr == nil {
		sendErr = up.Send(&filesv1.UploadFileRequest{Payload: &filesv1.UploadFileRequest_Chunk{Chunk: data}})
	}
	res, err := up.CloseAndRecv()
	if err != nil {
		return err
	}
	if sendErr != nil {
		return sendErr
	}
	if res.GetFile().GetBytes() != size {
		return fmt.Errorf("UploadFile stored %d bytes, sent %d", res.GetFile().GetBytes(), size)
	}
	return nil
}

// small runs `concurrency` workers issuing uploads back to back until `seconds` pass or `maxOps`
// have started (bench/scenario-small.ts's closedLoop).
func (c *client) small(concurrency int, seconds float64, maxOps int64, size int64) any {
	var started, errorCount atomic.Int64
	var mu sync.Mutex
	var firstError any // JSON null until an upload fails
	latencies := []float64{}
	t0 := time.Now()
	deadline := t0.Add(time.Duration(seconds * float64(time.Second)))
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			var mine []float64
			for time.Now().Before(deadline) {
				n := started.Add(1) - 1
				if n >= maxOps {
					break
				}
				s := time.Now()
				if err := c.smallUpload(n, size); err != nil {
					errorCount.Add(1)
					mu.Lock()
					if firstError == nil {
						firstError = err.Error()
					}
					mu.Unlock()
					continue
				}
				mine = append(mine, float64(time.Since(s).Nanoseconds())/1e6)
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return map[string]any{"ops": len(latencies), "errors": errorCount.Load(), "firstError": firstError, "latenciesMs": latencies, "seconds": time.Since(t0).Seconds()}
}

// retrieve calls GetFile for each id, one at a time.
func (c *client) retrieve(ids []string) any {
	latencies := make([]float64, 0, len(ids))
	mismatches := 0
	var firstMismatch any
	t0 := time.Now()
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		s := time.Now()
		res, err := c.files.GetFile(ctx, &filesv1.GetFileRequest{FileId: id})
		elapsed := time.Since(s)
		cancel()
		if err != nil || res.GetFile().GetId() != id {
			mismatches++
			if firstMismatch == nil {
				firstMismatch = fmt.Sprintf("GetFile %s: %v %v", id, res.GetFile().GetId(), err)
			}
			continue
		}
		latencies = append(latencies, float64(elapsed.Nanoseconds())/1e6)
	}
	return map[string]any{"latenciesMs": latencies, "seconds": time.Since(t0).Seconds(), "mismatches": mismatches, "firstMismatch": firstMismatch}
}

// list walks ListFiles pages of `limit`, newest first, each after the previous page's last id,
// until has_more is false or `maxPages` pages were read; it counts distinct and repeated ids.
func (c *client) list(limit int32, maxPages int) (any, error) {
	seen := map[string]struct{}{}
	duplicates := 0
	latencies := []float64{}
	after := ""
	t0 := time.Now()
	for len(latencies) < maxPages {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		s := time.Now()
		page, err := c.files.ListFiles(ctx, &filesv1.ListFilesRequest{Limit: &limit, After: after})
		elapsed := time.Since(s)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("ListFiles page %d: %w", len(latencies)+1, err)
		}
		latencies = append(latencies, float64(elapsed.Nanoseconds())/1e6)
		for _, f := range page.GetData() {
			if _, ok := seen[f.GetId()]; ok {
				duplicates++
			}
			seen[f.GetId()] = struct{}{}
		}
		if !page.GetHasMore() || len(page.GetData()) == 0 {
			break
		}
		after = page.GetLastId()
	}
	return map[string]any{"pages": len(latencies), "rowsSeen": len(seen), "duplicates": duplicates, "latenciesMs": latencies, "seconds": time.Since(t0).Seconds()}, nil
}
