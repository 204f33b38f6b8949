// Command sleeper is the only process of the e2e test images (the demo
// image and the pod sandbox's pause image): it prints its arguments, so the
// test can find them in the container log, then waits to be stopped.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Println(strings.Join(os.Args[1:], " "))
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
