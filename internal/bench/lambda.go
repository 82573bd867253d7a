package bench

import (
	"context"
	"errors"
)

// lambda measures the Lambda functions (placeholder: being written).
func (r *run) lambda(ctx context.Context) error {
	return errors.New("lambda scenario not written yet")
}
