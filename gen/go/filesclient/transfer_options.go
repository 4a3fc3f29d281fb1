package filesclient

import (
	"time"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
)

const (
	// ChunkSize is the size of each UploadFile message's chunk.
	ChunkSize = 1 << 20
	// DefaultPartThreshold is the size above which an upload of known size goes through the
	// Uploads API in parallel parts rather than one stream.
	DefaultPartThreshold = 64 << 20
	// partFraming is the room an AddUploadPart message needs beside its data (the upload id and
	// the field headers take under 64 bytes).
	partFraming = 1 << 10
	// DefaultPartSize fits one AddUploadPart message under the service's default
	// max_message_bytes (8 MiB).
	DefaultPartSize = 8<<20 - partFraming
	// MaxPartSize is the largest part one message can carry at the client's message limit.
	MaxPartSize = MaxMessageSize - partFraming
	// DefaultPartConcurrency is how many parts are sent at once.
	DefaultPartConcurrency = 4
	// maxPartsPerUpload is the service's (and OpenAI's) limit on parts per upload.
	maxPartsPerUpload = 10_000
	// DefaultMaxAttempts bounds the tries of each part, and a download's tries after broken streams.
	DefaultMaxAttempts = 5
	// DefaultPageSize is how many files each ListFiles call asks for.
	DefaultPageSize = 1000
)

// ProgressFunc is told the bytes transferred so far and the total (-1 when unknown). Calls are
// never concurrent, and done only grows.
type ProgressFunc func(done, total int64)

// UploadOption configures Upload, UploadFile and UploadBytes.
type UploadOption interface {
	applyUpload(*uploadSettings) error
}

// DownloadOption configures Download and DownloadFile.
type DownloadOption interface {
	applyDownload(*downloadSettings) error
}

// ListOption configures List.
type ListOption interface {
	applyList(*listSettings) error
}

type uploadSettings struct {
	purpose         filesv1.FilePurpose
	filename        string
	mimeType        string
	expiresAfter    *filesv1.ExpiresAfter
	progress        ProgressFunc
	partThreshold   int64
	partSize        int64
	partConcurrency int
	maxAttempts     int
}

type downloadSettings struct {
	offset      int64
	length      int64 // -1: to the end
	ranged      bool
	progress    ProgressFunc
	maxAttempts int
}

type listSettings struct {
	purpose  filesv1.FilePurpose
	order    filesv1.ListOrder
	pageSize int32
}

func newUploadSettings(opts []UploadOption) (*uploadSettings, error) {
	s := &uploadSettings{
		partThreshold:   DefaultPartThreshold,
		partSize:        DefaultPartSize,
		partConcurrency: DefaultPartConcurrency,
		maxAttempts:     DefaultMaxAttempts,
	}
	for _, opt := range opts {
		if err := opt.applyUpload(s); err != nil {
			return nil, err
		}
	}
	if s.purpose == filesv1.FilePurpose_FILE_PURPOSE_UNSPECIFIED {
		return nil, invalidArgument("the purpose is required: pass filesclient.Purpose(filesv1.FilePurpose_FILE_PURPOSE_...)")
	}
	return s, nil
}

func newDownloadSettings(opts []DownloadOption) (*downloadSettings, error) {
	s := &downloadSettings{length: -1, maxAttempts: DefaultMaxAttempts}
	for _, opt := range opts {
		if err := opt.applyDownload(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func newListSettings(opts []ListOption) (*listSettings, error) {
	s := &listSettings{pageSize: DefaultPageSize}
	for _, opt := range opts {
		if err := opt.applyList(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

type uploadOptionFunc func(*uploadSettings) error

func (f uploadOptionFunc) applyUpload(s *uploadSettings) error { return f(s) }

type downloadOptionFunc func(*downloadSettings) error

func (f downloadOptionFunc) applyDownload(s *downloadSettings) error { return f(s) }

type listOptionFunc func(*listSettings) error

func (f listOptionFunc) applyList(s *listSettings) error { return f(s) }

// PurposeOption is both an UploadOption and a ListOption.
type PurposeOption filesv1.FilePurpose

// Purpose is the file's purpose on upload (required), or the only purpose to list.
func Purpose(p filesv1.FilePurpose) PurposeOption { return PurposeOption(p) }

func (p PurposeOption) applyUpload(s *uploadSettings) error {
	s.purpose = filesv1.FilePurpose(p)
	return nil
}

func (p PurposeOption) applyList(s *listSettings) error {
	s.purpose = filesv1.FilePurpose(p)
	return nil
}

// ProgressOption is both an UploadOption and a DownloadOption.
type ProgressOption ProgressFunc

// Progress reports the bytes sent or received as a transfer goes (after each chunk or part).
func Progress(f ProgressFunc) ProgressOption { return ProgressOption(f) }

func (p ProgressOption) applyUpload(s *uploadSettings) error {
	s.progress = ProgressFunc(p)
	return nil
}

func (p ProgressOption) applyDownload(s *downloadSettings) error {
	s.progress = ProgressFunc(p)
	return nil
}

// AttemptsOption is both an UploadOption and a DownloadOption.
type AttemptsOption int

// MaxAttempts bounds the tries of each upload part, and of a download across broken streams
// (DefaultMaxAttempts otherwise; 1 turns retrying off).
func MaxAttempts(n int) AttemptsOption { return AttemptsOption(n) }

func (a AttemptsOption) check() error {
	if a < 1 {
		return invalidArgument("MaxAttempts must be at least 1, not %d", int(a))
	}
	return nil
}

func (a AttemptsOption) applyUpload(s *uploadSettings) error {
	s.maxAttempts = int(a)
	return a.check()
}

func (a AttemptsOption) applyDownload(s *downloadSettings) error {
	s.maxAttempts = int(a)
	return a.check()
}

// Filename is the file's name (UploadFile defaults to the path's base name; Upload and
// UploadBytes require it).
func Filename(name string) UploadOption {
	return uploadOptionFunc(func(s *uploadSettings) error {
		s.filename = name
		return nil
	})
}

// MimeType is the file's content type (by default from the filename's extension, else the
// service's application/octet-stream).
func MimeType(mimeType string) UploadOption {
	return uploadOptionFunc(func(s *uploadSettings) error {
		s.mimeType = mimeType
		return nil
	})
}

// ExpiresAfter makes the file expire this long after it is created, in whole seconds (the service
// accepts one hour to 30 days); without it the purpose's default applies.
func ExpiresAfter(d time.Duration) UploadOption {
	return uploadOptionFunc(func(s *uploadSettings) error {
		if d <= 0 || d%time.Second != 0 {
			return invalidArgument("ExpiresAfter must be a positive whole number of seconds, not %s", d)
		}
		s.expiresAfter = &filesv1.ExpiresAfter{
			Anchor:  filesv1.ExpiresAfterAnchor_EXPIRES_AFTER_ANCHOR_CREATED_AT,
			Seconds: int64(d / time.Second),
		}
		return nil
	})
}

// PartThreshold is the size above which a file of known size is sent in parallel parts
// (DefaultPartThreshold otherwise).
func PartThreshold(bytes int64) UploadOption {
	return uploadOptionFunc(func(s *uploadSettings) error {
		if bytes < 0 {
			return invalidArgument("PartThreshold must not be negative, not %d", bytes)
		}
		s.partThreshold = bytes
		return nil
	})
}

// PartSize is the size of each part but the last (DefaultPartSize otherwise). A part travels in
// one message, so it must fit the service's max_message_bytes.
func PartSize(bytes int64) UploadOption {
	return uploadOptionFunc(func(s *uploadSettings) error {
		if bytes < 1 || bytes > MaxPartSize {
			return invalidArgument("PartSize must be between 1 and %d bytes, not %d", MaxPartSize, bytes)
		}
		s.partSize = bytes
		return nil
	})
}

// PartConcurrency is how many parts are in flight at once (DefaultPartConcurrency otherwise);
// memory use is about twice PartSize for each.
func PartConcurrency(n int) UploadOption {
	return uploadOptionFunc(func(s *uploadSettings) error {
		if n < 1 {
			return invalidArgument("PartConcurrency must be at least 1, not %d", n)
		}
		s.partConcurrency = n
		return nil
	})
}

// Range downloads length bytes from offset. Ranged downloads are not checked against the file's
// SHA-256, which covers the whole file.
func Range(offset, length int64) DownloadOption {
	return downloadOptionFunc(func(s *downloadSettings) error {
		if offset < 0 || length < 0 {
			return invalidArgument("Range needs a non-negative offset and length, not %d and %d", offset, length)
		}
		s.offset, s.length, s.ranged = offset, length, true
		return nil
	})
}

// Offset downloads from offset to the end of the file (not checked against the SHA-256 unless
// offset is 0).
func Offset(offset int64) DownloadOption {
	return downloadOptionFunc(func(s *downloadSettings) error {
		if offset < 0 {
			return invalidArgument("Offset must not be negative, not %d", offset)
		}
		s.offset, s.length, s.ranged = offset, -1, offset > 0
		return nil
	})
}

// Order lists oldest first (filesv1.ListOrder_LIST_ORDER_ASC) or newest first (the default).
func Order(order filesv1.ListOrder) ListOption {
	return listOptionFunc(func(s *listSettings) error {
		s.order = order
		return nil
	})
}

// PageSize is how many files each ListFiles call asks for, 1 to 10000 (DefaultPageSize otherwise).
func PageSize(n int) ListOption {
	return listOptionFunc(func(s *listSettings) error {
		if n < 1 || n > 10_000 {
			return invalidArgument("PageSize must be between 1 and 10000, not %d", n)
		}
		s.pageSize = int32(n)
		return nil
	})
}
