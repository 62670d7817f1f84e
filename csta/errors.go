package csta

import (
	"context"
	"errors"
	"fmt"
)

// ErrorClass is the child element of CSTAErrorCode (research/csta.md §1.9).
type ErrorClass string

const (
	ErrOperation                      ErrorClass = "operation"
	ErrSecurity                       ErrorClass = "security"
	ErrStateIncompatibility           ErrorClass = "stateIncompatibility"
	ErrSystemResourceAvailability     ErrorClass = "systemResourceAvailibility" // sic: the schema's spelling
	ErrSubscribedResourceAvailability ErrorClass = "subscribedResourceAvailability"
	ErrPerformanceManagement          ErrorClass = "performanceManagement"
	ErrPrivateErrorCode               ErrorClass = "privateErrorCode"
	ErrUnspecified                    ErrorClass = "unspecified"
)

// Error is a CSTA error answer: exactly one class and its value. It is both
// the message CSTAErrorCode and a Go error, so a Service returns it as is.
type Error struct {
	Class ErrorClass
	Value string // empty for ErrUnspecified
}

func (e *Error) Error() string {
	if e.Class == ErrUnspecified {
		return "csta: unspecified error"
	}
	return fmt.Sprintf("csta: %s/%s", e.Class, e.Value)
}

// Name makes *Error a Message: it encodes as CSTAErrorCode.
func (*Error) Name() string { return "CSTAErrorCode" }

// Is matches on class and value, so errors.Is(err, ErrInvalidDeviceID) works
// on wrapped errors.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Class == e.Class && t.Value == e.Value
}

func opErr(v string) *Error { return &Error{Class: ErrOperation, Value: v} }

// The CSTA errors this front end answers with, one per line. Values are
// ECMA-269 enumerations (research/csta.md §1.9).
var (
	ErrGeneric                           = opErr("generic")                           // unparseable XML, no better value
	ErrServiceNotSupported               = opErr("serviceNotSupported")               // unknown request
	ErrInvalidDeviceID                   = opErr("invalidDeviceID")                   // device missing or empty
	ErrInvalidAgentState                 = opErr("invalidAgentState")                 // requestedAgentState missing or unknown
	ErrInvalidAgentIdentifier            = opErr("invalidAgentIdentifier")            // agentID unusable
	ErrInvalidAgentPassword              = opErr("invalidAgentPassword")              // password wrong
	ErrInvalidAgentGroup                 = opErr("invalidAgentGroup")                 // group unknown
	ErrInvalidForwardingType             = opErr("invalidForwardingType")             // forwardingType missing or unknown
	ErrInvalidForwardingFlag             = opErr("invalidForwardingFlag")             // activateForward missing or not boolean
	ErrInvalidForwardingDestination      = opErr("invalidForwardingDestination")      // forwardDN unusable
	ErrInvalidRingCount                  = opErr("invalidRingCount")                  // ringCount not an integer
	ErrRingCountOutOfRange               = opErr("ringCountOutOfRange")               // ringCount outside 1..100
	ErrInvalidDoNotDisturb               = opErr("invalidDoNotDisturb")               // doNotDisturbOn missing or not boolean
	ErrInvalidMonitorObject              = opErr("invalidMonitorObject")              // no deviceObject, or a callObject
	ErrInvalidMonitorType                = opErr("invalidMonitorType")                // monitorType other than device
	ErrInvalidMonitorFilter              = opErr("invalidMonitorFilter")              // filter flag not boolean
	ErrInvalidMonitorCrossRefID          = opErr("invalidMonitorCrossRefID")          // MonitorStop of an unknown monitor
	ErrInvalidParameterValue             = opErr("invalidParameterValue")             // any other malformed parameter
	ErrSystemStatusOutOfRange            = opErr("systemStatusOutOfRange")            // SystemStatus value unknown
	ErrPrivilegeViolationSpecifiedDevice = opErr("privilegeViolationSpecifiedDevice") // device, or agent sitting, outside the CTI user's csta.authorization.devices
	ErrSessionRequired                   = &Error{Class: ErrSecurity, Value: "securityInfoViolated"}
	ErrOutstandingReqLimitExceeded       = &Error{Class: ErrSubscribedResourceAvailability, Value: "outstandingReqLimitExceeded"}
	ErrObjectMonitorLimitExceeded        = &Error{Class: ErrSubscribedResourceAvailability, Value: "objectMonitorLimitExceeded"}
	ErrResourceBusy                      = &Error{Class: ErrSystemResourceAvailability, Value: "resourceBusy"}
	ErrResourceOutOfService              = &Error{Class: ErrSystemResourceAvailability, Value: "resourceOutOfService"}
	ErrResourceLimitExceeded             = &Error{Class: ErrSystemResourceAvailability, Value: "resourceLimitExceeded"}
)

// asCSTAError turns any error from a Service into the answer the client gets.
// Deadline and cancellation become resourceBusy (the client may retry);
// anything unclassified is operation/generic.
func asCSTAError(err error) *Error {
	var ce *Error
	if errors.As(err, &ce) && ce != nil {
		return ce
	}
	if isContextError(err) {
		return ErrResourceBusy
	}
	return ErrGeneric
}

func isContextError(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
