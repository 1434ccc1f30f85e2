package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ldm-project/ldm/train"
)

// A training process killed with SIGKILL leaves only whole checkpoints, and
// the run resumed from the newest one has the loss curve of the run that
// was never interrupted.
func TestTrainResumesAfterSIGKILL(t *testing.T) {
	if os.Getenv("LDM_CLI_CHILD_ARGS") != "" {
		t.Skip("in the child")
	}
	if testing.Short() {
		t.Skip("trains a tiny VAE twice")
	}
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	os.MkdirAll(data, 0o755)
	writeTinyFolder(t, data, 16)
	const steps = 60
	args := func(out string) []string {
		return []string{"--backend", "go", "train", "vae", data, "-o", out, "--size", "16", "--blocks", "8,8", "--norm-groups", "4",
			"--batch", "2", "--warmup", "2", "--steps", "60", "--checkpoint-every", "1", "--keep", "0", "--sample-every", "1000"}
	}

	ref := filepath.Join(tmp, "uninterrupted")
	run(t, args(ref)[2:]...)
	_, want, err := train.CheckpointLosses(filepath.Join(ref, train.CheckpointName(steps)))
	if err != nil {
		t.Fatal(err)
	}

	killed := filepath.Join(tmp, "killed")
	child := exec.Command(os.Args[0], "-test.run=^TestCLIChild$")
	child.Env = append(os.Environ(), "LDM_CLI_CHILD_ARGS="+strings.Join(args(killed), "\x1f"))
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if c, _ := train.Checkpoints(killed); len(c) >= 10 {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatalf("no 10 checkpoints in 3 minutes:\n%s", out.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	ckpts, _ := train.Checkpoints(killed)
	last := 0
	for _, c := range ckpts {
		step, _, err := train.CheckpointLosses(c)
		if err != nil {
			t.Fatalf("a checkpoint left by the killed process does not load: %v", err)
		}
		last = max(last, step)
	}
	if last >= steps {
		t.Fatalf("the child finished (step %d) before it was killed; the test needs a slower run", last)
	}
	t.Logf("killed after step %d", last)

	run(t, "train", "vae", "-o", killed, "--resume")
	_, got, err := train.CheckpointLosses(filepath.Join(killed, train.CheckpointName(steps)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("resumed run has %d losses, uninterrupted %d", len(got), len(want))
	}
	identical := true
	for i := range want {
		if got[i] != want[i] {
			identical = false
		}
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*math.Abs(float64(want[i]))+1e-6 {
			t.Errorf("step %d: loss %g after SIGKILL and resume, %g uninterrupted", i+1, got[i], want[i])
		}
	}
	t.Logf("loss curves of %d steps: bit-identical %v", len(want), identical)
}
