// Package hoteling will hold the hot-desk login and logout sequences as step
// machines with compensation, each step confirmed by its XSI event. Not built
// yet: issue 4. It knows nothing of CSTA or SIP (../shared/DESIGN.md).
package hoteling
