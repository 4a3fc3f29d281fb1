package filesclient

import (
	"context"
	"iter"

	filesv1 "github.com/s3-files-service/s3-files-service/gen/go/files/v1"
	"google.golang.org/grpc"
)

// List iterates over every file (newest first unless Order says otherwise), fetching pages of
// PageSize as the loop goes. A failed page yields (nil, err) once and ends the iteration:
//
//	for file, err := range client.List(ctx) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(file.GetId())
//	}
func (c *Client) List(ctx context.Context, opts ...ListOption) iter.Seq2[*filesv1.File, error] {
	return func(yield func(*filesv1.File, error) bool) {
		s, err := newListSettings(opts)
		if err != nil {
			yield(nil, err)
			return
		}
		after := ""
		for {
			page, err := c.listPage(ctx, s, after)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, file := range page.GetData() {
				if !yield(file, nil) {
					return
				}
			}
			if !page.GetHasMore() || len(page.GetData()) == 0 {
				return
			}
			after = page.GetData()[len(page.GetData())-1].GetId()
		}
	}
}

func (c *Client) listPage(ctx context.Context, s *listSettings, after string) (*filesv1.ListFilesResponse, error) {
	ctx, cancel := c.metadataCall(ctx)
	defer cancel()
	limit := s.pageSize
	var res *filesv1.ListFilesResponse
	err := c.invoke(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		res, err = c.rpc.ListFiles(ctx, &filesv1.ListFilesRequest{After: after, Limit: &limit, Order: s.order, Purpose: s.purpose}, opts...)
		return err
	})
	return res, err
}
