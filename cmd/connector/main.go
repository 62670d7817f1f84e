// Command connector is the CSTA-to-BroadWorks connector: see run for the
// commands. main only hands over to run, so that tests and run share one path.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
