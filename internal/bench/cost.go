package bench

import (
	"context"
	"errors"
)

// cost counts AWS calls and write units per message (placeholder: being written).
func (r *run) cost(ctx context.Context) error {
	return errors.New("cost scenario not written yet")
}
