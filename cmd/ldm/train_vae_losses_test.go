package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/train"
)

// --perceptual (the embedded emoji classifier) and --adversarial train and
// resume from the command line; the run description keeps both terms.
func TestTrainVAEWithPerceptualAndAdversarialTerms(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny VAE")
	}
	tmp := t.TempDir()
	data, out := filepath.Join(tmp, "data"), filepath.Join(tmp, "vae")
	os.MkdirAll(data, 0o755)
	writeTinyFolder(t, data, 16)
	run(t, "train", "vae", data, "-o", out, "--size", "16", "--blocks", "8,8", "--norm-groups", "4", "--batch", "2",
		"--warmup", "1", "--checkpoint-every", "1", "--sample-every", "2", "--steps", "2",
		"--perceptual", "0.1", "--adversarial", "0.1", "--disc-start", "1", "--disc-channels", "8,8", "--disc-groups", "4")
	run(t, "train", "vae", "-o", out, "--resume", "--steps", "3")
	var stored train.VAERun
	if err := train.ReadCheckpointExtra(filepath.Join(out, train.CheckpointName(3)), &stored); err != nil {
		t.Fatal(err)
	}
	if l := stored.Loss; l.Perceptual != 0.1 || l.PerceptualNet != "emoji" || l.Adversarial != 0.1 || l.DiscStart != 1 || len(l.Disc.Channels) != 2 {
		t.Errorf("stored loss settings %+v", l)
	}
}

// Bad loss flags fail before training with an error naming the problem.
func TestTrainVAELossFlagsAreValidated(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	os.MkdirAll(data, 0o755)
	writeTinyFolder(t, data, 16)
	base := []string{"--backend", "go", "train", "vae", data, "-o", filepath.Join(tmp, "out"), "--size", "16", "--blocks", "8,8",
		"--norm-groups", "4", "--steps", "10"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--perceptual", "-1"}, "perceptual loss weight -1"},
		{[]string{"--adversarial", "-0.1"}, "adversarial loss weight -0.1"},
		{[]string{"--adversarial", "0.1", "--disc-start", "10"}, "would never be used"},
		{[]string{"--adversarial", "0.1", "--disc-lr", "0"}, "learning rate 0"},
		{[]string{"--perceptual", "0.1", "--perceptual-net", "no-such-task"}, "no-such-task"},
	} {
		root := newRootCmd()
		root.SetArgs(append(append([]string{}, base...), tc.args...))
		root.SetErr(devNull{})
		root.SetOut(devNull{})
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}
