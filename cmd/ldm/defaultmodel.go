package main

import (
	"fmt"

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
