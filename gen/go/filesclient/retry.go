package filesclient

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
)

const (
	firstBackoff = 200 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// backoff is the wait before retry number n (1 for the first retry): exponential, capped, with
// jitter so that parallel parts failing together do not retry together.
func backoff(n int) time.Duration {
	d := firstBackoff << min(n-1, 10)
	if d > maxBackoff {
		d = maxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d, or returns the context's error if it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryablePartError: the service or the network was unavailable, or the service was busy; a
// message over a size limit is RESOURCE_EXHAUSTED too, and retrying cannot cure it.
func retryablePartError(err error) bool {
	switch codeOf(err) {
	case codes.Unavailable:
		return true
	case codes.ResourceExhausted:
		e, ok := errorsAs(err)
		return ok && !isSizeLimit(e.Message)
	}
	return false
}
