package filesclient_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/s3-files-service/s3-files-service/gen/go/filesclient"
)

// The TLS server takes client certificates optionally and names a certificate's principal by its
// subject CN; a caller without a certificate identifies itself with an API key.
func TestTLS(t *testing.T) {
	target := env(t, "FILES_TEST_TLS_TARGET")
	caFile := env(t, "FILES_TEST_TLS_CA")
	token := filesclient.WithToken(env(t, "FILES_TEST_AUTH_TOKEN"))

	t.Run("trusting the CA: uploads in one stream and in parts, and downloads", func(t *testing.T) {
		client := dialTarget(t, target, filesclient.WithTLS(caFile), token)
		for _, size := range []int{MiB + 3, 12*MiB + 7} {
			data := randomBytes(t, size)
			file := uploadFrom(t, client, "bytes", data, append(slices.Clone(smallParts), userData)...)
			downloadBytes(t, client, file.GetId(), data)
		}
	})

	t.Run("a *tls.Config of one's own", func(t *testing.T) {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client := dialTarget(t, target, filesclient.WithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "localhost"}), token)
		data := randomBytes(t, 1000)
		downloadBytes(t, client, uploadFrom(t, client, "path", data, userData).GetId(), data)
	})

	t.Run("a client certificate names the principal", func(t *testing.T) {
		withCert := dialTarget(t, target, filesclient.WithTLS(caFile), filesclient.WithClientCertificate(env(t, "FILES_TEST_TLS_CERT"), env(t, "FILES_TEST_TLS_KEY")))
		file := uploadFrom(t, withCert, "bytes", []byte("mine"), userData)
		var mine []string
		for f, err := range withCert.List(testContext(t)) {
			if err != nil {
				t.Fatal(err)
			}
			mine = append(mine, f.GetId())
		}
		if !slices.Equal(mine, []string{file.GetId()}) {
			t.Fatalf("the certificate's principal lists %v, want only its own file %s", mine, file.GetId())
		}
		byKey := dialTarget(t, target, filesclient.WithTLS(caFile), token)
		if _, err := byKey.Get(testContext(t), file.GetId()); !errors.Is(err, filesclient.ErrNotFound) {
			t.Fatalf("Get of the certificate principal's file by an API key's principal: %v, want ErrNotFound", err)
		}
	})

	t.Run("Dial fails with the reason", func(t *testing.T) {
		ctx := testContext(t)
		_, err := filesclient.Dial(ctx, target, filesclient.WithTLS(""))
		if !errors.Is(err, filesclient.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Dial trusting only the system roots: %v, want ErrUnavailable naming the certificate", err)
		}
		_, err = filesclient.Dial(ctx, target)
		if !errors.Is(err, filesclient.ErrUnavailable) || !strings.Contains(err.Error(), "TLS") {
			t.Fatalf("Dial in plaintext: %v, want ErrUnavailable saying the port requires TLS", err)
		}
		_, err = filesclient.Dial(ctx, target, filesclient.WithTLS(caFile), filesclient.WithInsecure())
		if !errors.Is(err, filesclient.ErrInvalidArgument) {
			t.Fatalf("WithTLS and WithInsecure together: %v, want ErrInvalidArgument", err)
		}
		_, err = filesclient.Dial(ctx, target, filesclient.WithTLS(caFile+".missing"))
		if !errors.Is(err, filesclient.ErrInvalidArgument) || !strings.Contains(err.Error(), "CA file") {
			t.Fatalf("WithTLS of a missing file: %v, want ErrInvalidArgument naming the CA file", err)
		}
	})
}
