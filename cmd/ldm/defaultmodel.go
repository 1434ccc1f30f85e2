package main

import (
	"fmt"
	"os"

	"github.com/ldm-project/ldm/models"
)

// defaultModel materialises the embedded default model (once, into the user
// cache) and returns its folder, used when no --model is given.
func defaultModel() (string, error) {
	p, err := models.Path()
	if err != nil {
		return "", fmt.Errorf("no --model given and the embedded default model could not be unpacked: %w (pass --model)", err)
	}
	return p, nil
}

// modelArg resolves a model argument: "default" names the embedded model
// unless a file or folder of that name exists.
func modelArg(name string) (string, error) {
	if name != "default" {
		return name, nil
	}
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	p, err := models.Path()
	if err != nil {
		return "", fmt.Errorf("the embedded default model could not be unpacked: %w", err)
	}
	return p, nil
}
