// Package filesclient is the Go client of the Files service (proto/files/v1/files.proto): it
// connects with the message limits and HTTP/2 windows large transfers need, uploads from a path,
// a reader or bytes (in parallel parts through the Uploads API above a threshold, each part
// retried), downloads to a writer or a path (verified against the recorded SHA-256, resumed
// after a broken stream), lists every page as an iterator, and returns typed errors.
//
//	client, err := filesclient.Dial(ctx, "127.0.0.1:8321", filesclient.WithToken(token))
//	if err != nil {
//		return err
//	}
//	defer client.Close()
//	file, err := client.UploadFile(ctx, "data.jsonl", filesclient.Purpose(filesv1.FilePurpose_FILE_PURPOSE_BATCH))
//
// The messages are the generated ones in package filesv1 (github.com/s3-files-service/s3-files-service/gen/go/files/v1).
package filesclient
