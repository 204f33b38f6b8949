// Command hello is the floor the benchmark's instruction counts are read
// against: a Go hello world, built and run like the plugin, costs this much
// before any of the plugin's own work.
package main

import "fmt"

func main() { fmt.Println("hello, world") }
