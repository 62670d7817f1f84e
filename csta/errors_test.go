package csta

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestAsCSTAError(t *testing.T) {
	var nilErr *Error
	tests := []struct {
		name string
		err  error
		want *Error
	}{
		{"a CSTA error as is", ErrInvalidDeviceID, ErrInvalidDeviceID},
		{"a wrapped CSTA error", fmt.Errorf("gateway: %w", ErrInvalidAgentState), ErrInvalidAgentState},
		{"a deadline", fmt.Errorf("xsi: %w", context.DeadlineExceeded), ErrResourceBusy},
		{"a cancellation", context.Canceled, ErrResourceBusy},
		{"a typed nil *Error", nilErr, ErrGeneric},
		{"anything else", errors.New("boom"), ErrGeneric},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := asCSTAError(tt.err); got != tt.want {
				t.Fatalf("asCSTAError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if !errors.Is(fmt.Errorf("x: %w", &Error{Class: ErrOperation, Value: "invalidDeviceID"}), ErrInvalidDeviceID) {
		t.Fatal("errors.Is does not match an equal CSTA error")
	}
}
