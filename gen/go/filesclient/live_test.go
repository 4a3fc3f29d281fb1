package filesclient_test

// The tests in this package that need a server read its address from the environment, and skip
// without it. test/e2e/go-library.test.ts starts the servers (on moto S3) and runs them:
//
//	npx vitest run test/e2e/go-library.test.ts
//
// FILES_TEST_TARGET          plain server, default limits
// FILES_TEST_AUTH_TARGET     server with an API key; FILES_TEST_AUTH_TOKEN is a principal's key
// FILES_TEST_SMALL_TARGET    server with max_file_bytes FILES_TEST_SMALL_MAX_FILE_BYTES
// FILES_TEST_TLS_TARGET      TLS server with optional client certificates and the same API key; FILES_TEST_TLS_CA
//                            trusts it, FILES_TEST_TLS_CERT/KEY are a client certificate
// FILES_TEST_REPORT          file the tests write facts to that the harness checks in the server logs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"github.com/s3-files-service/s3-files-service/gen/go/filesclient"
)

const MiB = 1 << 20

const howToRun = "needs live servers: run `npx vitest run test/e2e/go-library.test.ts` from the repository root, which starts them and sets FILES_TEST_TARGET and the rest"

// env is a variable the harness sets, or a skip naming how to run the test.
func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("%s is not set: this test %s", name, howToRun)
	}
	return v
}

func envInt(t *testing.T, name string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(env(t, name), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// testContext ends with the test, and after two minutes at most.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// dial connects to the server named by the environment variable targetVar.
func dial(t *testing.T, targetVar string, opts ...filesclient.Option) *filesclient.Client {
	t.Helper()
	return dialTarget(t, env(t, targetVar), opts...)
}

func dialTarget(t *testing.T, target string, opts ...filesclient.Option) *filesclient.Client {
	t.Helper()
	client, err := filesclient.Dial(testContext(t), target, opts...)
	if err != nil {
		t.Fatalf("Dial(%s): %v", target, err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// uniqueName is a filename no other test run uses.
func uniqueName(t *testing.T, ext string) string {
	name := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '-'
	}, t.Name()) // subtest names hold slashes and spaces
	return fmt.Sprintf("go-%s-%s%s", name, hex.EncodeToString(randomBytes(t, 4)), ext)
}

var userData = filesclient.Purpose(filesv1.FilePurpose_FILE_PURPOSE_USER_DATA)

// downloadBytes downloads a whole file and checks it against want.
func downloadBytes(t *testing.T, client *filesclient.Client, id string, want []byte, opts ...filesclient.DownloadOption) *filesv1.File {
	t.Helper()
	var buf bytes.Buffer
	file, err := client.Download(testContext(t), id, &buf, opts...)
	if err != nil {
		t.Fatalf("Download(%s): %v", id, err)
	}
	if got := buf.Len(); got != len(want) || sha(buf.Bytes()) != sha(want) {
		t.Fatalf("Download(%s): %d bytes with SHA-256 %s, want %d bytes with %s", id, got, sha(buf.Bytes()), len(want), sha(want))
	}
	return file
}

// report collects facts for the harness, written to FILES_TEST_REPORT when the tests end.
var report = struct {
	sync.Mutex
	facts map[string]any
}{facts: map[string]any{}}

func reportFact(key string, value any) {
	report.Lock()
	defer report.Unlock()
	report.facts[key] = value
}

func TestMain(m *testing.M) {
	code := m.Run()
	if path := os.Getenv("FILES_TEST_REPORT"); path != "" {
		report.Lock()
		data, _ := json.Marshal(report.facts)
		report.Unlock()
		if err := os.WriteFile(path, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
