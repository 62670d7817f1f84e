package xsi

import (
	"context"
	"errors"
	"testing"
)

func TestMayApplyLate(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&Error{Status: 500}, true},
		{&Error{Status: 502}, true},
		{&Error{Status: 503}, false},
		{&Error{Status: 429}, false},
		{&Error{Status: 400}, false},
		{&Error{Status: 404}, false},
		{context.DeadlineExceeded, true},
		{errors.New("read tcp: connection reset by peer"), true},
		{ErrLinkDown, false},
	} {
		if got := MayApplyLate(tt.err); got != tt.want {
			t.Errorf("MayApplyLate(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
