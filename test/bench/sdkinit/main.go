// Command sdkinit links the aws-sdk-go-v2 packages the plugin uses and does
// nothing else, so the benchmark can tell what merely linking them costs each
// process in package initialisation.
package main

import (
	"fmt"

	_ "github.com/aws/aws-sdk-go-v2/config"
	_ "github.com/aws/aws-sdk-go-v2/service/ecr"
	_ "github.com/aws/aws-sdk-go-v2/service/ecrpublic"
	_ "github.com/aws/aws-sdk-go-v2/service/sts"
)

func main() { fmt.Println("hello, world") }
