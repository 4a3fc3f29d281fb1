package filesclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	// MaxMessageSize is the largest gRPC message the client sends or accepts, matching the
	// service's largest max_message_bytes so that no limit of the client's is the smaller one.
	MaxMessageSize = 16 << 20
	// flowControlWindow is the HTTP/2 stream and connection window: large enough that a fast link
	// is never waiting on window updates (grpc-go starts at 64 KiB).
	flowControlWindow = 16 << 20
	// DefaultTimeout bounds each metadata call (get, list page, delete, and the Uploads calls but
	// CompleteUpload). Transfers are bounded by their context alone, since they take as long as
	// the file needs.
	DefaultTimeout = 60 * time.Second
)

// Option configures Dial.
type Option func(*dialSettings) error

type dialSettings struct {
	token       string
	tlsConfig   *tls.Config
	caFile      string
	useTLS      bool
	certFile    string
	keyFile     string
	insecure    bool
	timeout     time.Duration
	dialOptions []grpc.DialOption
}

// WithToken sends "authorization: Bearer token" on every call. An empty token sends nothing, so
// WithToken(os.Getenv("FILES_TOKEN")) works against servers with and without authentication.
// The token goes over plaintext connections too (the service's default port is plaintext on
// loopback); use TLS to send it across a network.
func WithToken(token string) Option {
	return func(s *dialSettings) error {
		s.token = token
		return nil
	}
}

// WithTLS connects over TLS, trusting the CA certificates (PEM) in caFile, or the system roots
// when caFile is "".
func WithTLS(caFile string) Option {
	return func(s *dialSettings) error {
		s.useTLS = true
		s.caFile = caFile
		return nil
	}
}

// WithTLSConfig connects over TLS with this configuration (roots, server name, versions...).
func WithTLSConfig(config *tls.Config) Option {
	return func(s *dialSettings) error {
		if config == nil {
			return invalidArgument("WithTLSConfig: the *tls.Config is nil")
		}
		s.useTLS = true
		s.tlsConfig = config.Clone()
		return nil
	}
}

// WithClientCertificate presents this certificate and key (PEM files) for mutual TLS. It implies
// TLS, trusting the system roots unless WithTLS or WithTLSConfig says otherwise.
func WithClientCertificate(certFile, keyFile string) Option {
	return func(s *dialSettings) error {
		if certFile == "" || keyFile == "" {
			return invalidArgument("WithClientCertificate needs both a certificate file and a key file")
		}
		s.useTLS = true
		s.certFile, s.keyFile = certFile, keyFile
		return nil
	}
}

// WithInsecure connects in plaintext (the default). It exists to say so explicitly; combined with
// a TLS option it is an error.
func WithInsecure() Option {
	return func(s *dialSettings) error {
		s.insecure = true
		return nil
	}
}

// WithTimeout sets the deadline of each metadata call (DefaultTimeout otherwise); 0 leaves them to
// the caller's context.
func WithTimeout(d time.Duration) Option {
	return func(s *dialSettings) error {
		if d < 0 {
			return invalidArgument("WithTimeout: the timeout is negative (%s)", d)
		}
		s.timeout = d
		return nil
	}
}

// WithDialOptions adds grpc-go dial options (interceptors, stats handlers, a custom dialer...)
// after the client's own, so they can override its defaults.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(s *dialSettings) error {
		s.dialOptions = append(s.dialOptions, opts...)
		return nil
	}
}

// grpcDialOptions turns the settings into grpc-go options: credentials, message limits, windows.
func (s *dialSettings) grpcDialOptions() ([]grpc.DialOption, error) {
	if s.insecure && s.useTLS {
		return nil, invalidArgument("WithInsecure cannot be combined with WithTLS, WithTLSConfig or WithClientCertificate")
	}
	creds := insecure.NewCredentials()
	if s.useTLS {
		config, err := s.buildTLSConfig()
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(config)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithInitialWindowSize(flowControlWindow),
		grpc.WithInitialConnWindowSize(flowControlWindow),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
	}
	if s.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerToken(s.token)))
	}
	return append(opts, s.dialOptions...), nil
}

func (s *dialSettings) buildTLSConfig() (*tls.Config, error) {
	config := s.tlsConfig
	if config == nil {
		config = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if s.caFile != "" {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return nil, invalidArgument("WithTLS: cannot read the CA file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, invalidArgument("WithTLS: %s holds no PEM certificate", s.caFile)
		}
		config.RootCAs = pool
	}
	if s.certFile != "" {
		pair, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
		if err != nil {
			return nil, invalidArgument("WithClientCertificate: %v", err)
		}
		config.Certificates = append(config.Certificates, pair)
	}
	return config, nil
}

// bearerToken is the per-call "authorization" header.
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": fmt.Sprintf("Bearer %s", string(t))}, nil
}

// RequireTransportSecurity is false: the service's plaintext loopback port takes tokens too.
func (bearerToken) RequireTransportSecurity() bool { return false }
