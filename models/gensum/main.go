// Command gensum writes models/default.sum, the content hash of the embedded
// default model (run by `go generate ./models` after the model changes).
package main

import (
	"fmt"
	"os"

	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/models"
)

func main() {
	h, err := models.TreeHash(os.DirFS("default"))
	if err == nil {
		err = fsutil.WriteFileAtomic("default.sum", []byte(h+"\n"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gensum:", err)
		os.Exit(1)
	}
	fmt.Println("default.sum:", h)
}
