package filesclient_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"github.com/s3-files-service/s3-files-service/gen/go/filesclient"
)

// 250 files of one principal (the API key's, which sees only its own), listed 100 to a page.
func TestListingEveryPage(t *testing.T) {
	rec := newRecorder()
	client := dial(t, "FILES_TEST_AUTH_TARGET", filesclient.WithToken(env(t, "FILES_TEST_AUTH_TOKEN")), rec.option())
	ctx := testContext(t)
	const total, batch = 250, 5
	ids := make([]string, total)
	var wg sync.WaitGroup
	errs := make(chan error, total)
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range total {
			next <- i
		}
	}()
	for range 8 {
		wg.Go(func() {
			for i := range next {
				purpose := filesv1.FilePurpose_FILE_PURPOSE_EVALS
				if i < batch {
					purpose = filesv1.FilePurpose_FILE_PURPOSE_BATCH
				}
				file, err := client.UploadBytes(ctx, []byte(fmt.Sprintf("file %d\n", i)), filesclient.Filename(fmt.Sprintf("list-%03d.txt", i)), filesclient.Purpose(purpose))
				if err != nil {
					errs <- err
					return
				}
				ids[i] = file.GetId()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("uploading the files to list: %v", err)
	}

	before := rec.count("ListFiles")
	var newestFirst []*filesv1.File
	for file, err := range client.List(ctx, filesclient.PageSize(100)) {
		if err != nil {
			t.Fatal(err)
		}
		newestFirst = append(newestFirst, file)
	}
	if pages := rec.count("ListFiles") - before; pages != 3 {
		t.Fatalf("%d ListFiles calls for 250 files at 100 a page, want 3", pages)
	}
	got := make([]string, len(newestFirst))
	for i, f := range newestFirst {
		got[i] = f.GetId()
		if i > 0 && f.GetCreatedAt() > newestFirst[i-1].GetCreatedAt() {
			t.Fatalf("file %d (%s) is newer than the one before it: the default order is newest first", i, f.GetId())
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(ids))) {
		t.Fatalf("listed %d ids (%d distinct), want each of the 250 uploaded exactly once", len(got), len(slices.Compact(slices.Sorted(slices.Values(got)))))
	}

	var oldestFirst []string
	for file, err := range client.List(ctx, filesclient.PageSize(100), filesclient.Order(filesv1.ListOrder_LIST_ORDER_ASC)) {
		if err != nil {
			t.Fatal(err)
		}
		oldestFirst = append(oldestFirst, file.GetId())
	}
	slices.Reverse(oldestFirst)
	if !slices.Equal(oldestFirst, got) {
		t.Fatal("the ascending list is not the descending one reversed")
	}

	var batchFiles []string
	for file, err := range client.List(ctx, filesclient.Purpose(filesv1.FilePurpose_FILE_PURPOSE_BATCH)) {
		if err != nil {
			t.Fatal(err)
		}
		batchFiles = append(batchFiles, file.GetId())
	}
	if !slices.Equal(slices.Sorted(slices.Values(batchFiles)), slices.Sorted(slices.Values(ids[:batch]))) {
		t.Fatalf("Purpose(BATCH) listed %v, want the %d batch files %v", batchFiles, batch, ids[:batch])
	}

	// Leaving the loop early stops the paging.
	before = rec.count("ListFiles")
	for range client.List(ctx, filesclient.PageSize(10)) {
		break
	}
	if pages := rec.count("ListFiles") - before; pages != 1 {
		t.Fatalf("breaking out after the first file made %d ListFiles calls, want 1", pages)
	}
}
