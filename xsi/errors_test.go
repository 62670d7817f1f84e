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

func TestErrServiceNotAssigned(t *testing.T) {
	for _, tt := range []struct {
		err                     error
		notAssigned, badRequest bool
	}{
		{&Error{Status: 400, ErrorCode: 4410}, true, true},
		{&Error{Status: 400, ErrorCode: 4001}, false, true},
		{&Error{Status: 400}, false, true},
		{&Error{Status: 404, ErrorCode: 4410}, false, false},
		{errors.New("connection refused"), false, false},
	} {
		if got := errors.Is(tt.err, ErrServiceNotAssigned); got != tt.notAssigned {
			t.Errorf("errors.Is(%v, ErrServiceNotAssigned) = %v", tt.err, got)
		}
		if got := errors.Is(tt.err, ErrBadRequest); got != tt.badRequest {
			t.Errorf("errors.Is(%v, ErrBadRequest) = %v", tt.err, got)
		}
	}
}
