// Command loadproc is the load side of the connector's benchmarks in its
// own process (the XSP simulator and the CTI clients), driven by package
// stack over stdin and stdout; see stack.ServeLoad.
package main

import (
	"fmt"
	"os"

	"github.com/broadworks-connector/connector/internal/stack"
)

func main() {
	if err := stack.ServeLoad(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadproc:", err)
		os.Exit(1)
	}
}
