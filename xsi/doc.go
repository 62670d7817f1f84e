// Package xsi will hold the BroadWorks Xsi-Actions client and the Xsi-Events
// channel set, and xsi/xspsim the XSP simulator. Not built yet: issue 3.
// It must never import csta or phonesync (../shared/DESIGN.md).
package xsi
