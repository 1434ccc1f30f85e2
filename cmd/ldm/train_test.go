package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/train"
	"github.com/ldm-project/ldm/weights"
)

// writeTinyFolder makes an imagefolder of coloured squares with captions.
func writeTinyFolder(t *testing.T, dir string, size int) {
	t.Helper()
	names := []string{"red", "green", "blue", "yellow", "purple", "cyan", "orange", "black"}
	cols := []color.RGBA{{255, 0, 0, 255}, {0, 200, 0, 255}, {0, 0, 255, 255}, {255, 220, 0, 255},
		{128, 0, 128, 255}, {0, 220, 220, 255}, {255, 128, 0, 255}, {0, 0, 0, 255}}
	f, err := os.Create(filepath.Join(dir, "metadata.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, n := range names {
		img := image.NewRGBA(image.Rect(0, 0, size, size))
		for y := size / 4; y < 3*size/4; y++ {
			for x := size / 4; x < 3*size/4; x++ {
				img.Set(x, y, cols[i])
			}
		}
		name := fmt.Sprintf("%d.png", i)
		out, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(out, img); err != nil {
			t.Fatal(err)
		}
		out.Close()
		split := "train"
		if i == 7 {
			split = "test"
		}
		b, _ := json.Marshal(map[string]string{"file_name": name, "text": "a " + n + " square", "split": split})
		fmt.Fprintln(f, string(b))
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	root := newRootCmd()
	root.SetArgs(append([]string{"--backend", "go"}, args...))
	root.SetErr(devNull{})
	if err := root.Execute(); err != nil {
		t.Fatalf("ldm %v: %v", args, err)
	}
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

func exists(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Error(err)
	}
}

func TestTrainVAEThenLDMThenLoRAFinetuneEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three tiny models")
	}
	tmp := t.TempDir()
	data, vaeDir, ldmDir, loraDir := filepath.Join(tmp, "data"), filepath.Join(tmp, "vae"), filepath.Join(tmp, "ldm"), filepath.Join(tmp, "lora")
	os.MkdirAll(data, 0o755)
	writeTinyFolder(t, data, 16)

	vaeArgs := []string{"train", "vae", data, "-o", vaeDir, "--size", "16", "--blocks", "8,8", "--norm-groups", "4",
		"--batch", "2", "--warmup", "1", "--checkpoint-every", "1", "--sample-every", "2"}
	run(t, append(vaeArgs, "--steps", "2")...)
	exists(t, filepath.Join(vaeDir, train.CheckpointName(2)))
	exists(t, filepath.Join(vaeDir, "recon-00000002.png"))
	exists(t, filepath.Join(vaeDir, "loss.png"))
	run(t, "train", "vae", "-o", vaeDir, "--resume", "--steps", "3")
	exists(t, filepath.Join(vaeDir, train.CheckpointName(3)))

	// A decoder fine-tune of that VAE, exported as a diffusers vae folder;
	// the LDM trains on it.
	ftDir, ftExport := filepath.Join(tmp, "vae-ft"), filepath.Join(tmp, "vae-ft-export")
	run(t, "train", "vae", data, "--init", filepath.Join(vaeDir, train.CheckpointName(3)), "--train-only", "decoder", "-o", ftDir,
		"--batch", "2", "--warmup", "1", "--steps", "1", "--checkpoint-every", "1", "--sample-every", "1")
	ckpt := filepath.Join(ftDir, train.CheckpointName(1))
	run(t, "train", "vae", "-o", ftDir, "--resume", "--export", ftExport)
	exists(t, filepath.Join(ftExport, "config.json"))
	exists(t, filepath.Join(ftExport, "diffusion_pytorch_model.safetensors"))

	run(t, "train", "ldm", data, "--vae", ckpt, "-o", ldmDir, "--tag-dropout", "0.5", "--article-prob", "0.3", "--size", "16", "--blocks", "16,16,16", "--text-hidden", "16",
		"--text-layers", "1", "--merges", "20", "--max-length", "8", "--batch", "2", "--steps", "2", "--warmup", "1",
		"--checkpoint-every", "2", "--sample-every", "2", "--prompt", "a red square")
	exists(t, filepath.Join(ldmDir, "samples-00000002.png"))
	var stored train.LDMRun
	if err := train.ReadCheckpointExtra(filepath.Join(ldmDir, train.CheckpointName(2)), &stored); err != nil {
		t.Fatal(err)
	}
	if stored.TagDropout != 0.5 || stored.ArticleProb != 0.3 || stored.KeepTags != 1 {
		t.Errorf("stored caption settings: tag dropout %g, article %g, keep %d", stored.TagDropout, stored.ArticleProb, stored.KeepTags)
	}
	m, err := weights.OpenModel(filepath.Join(ldmDir, "model"), weights.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	exported := filepath.Join(tmp, "exported")
	run(t, "train", "ldm", "-o", ldmDir, "--resume", "--export", exported)
	for _, f := range []string{"unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "tokenizer/vocab.json"} {
		a, _ := os.ReadFile(filepath.Join(ldmDir, "model", f))
		b, err := os.ReadFile(filepath.Join(exported, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: --export differs from the run's own export (%v)", f, err)
		}
	}

	run(t, "finetune", filepath.Join(ldmDir, "model"), data, "--lora", "2", "-o", loraDir, "--size", "16", "--batch", "2",
		"--steps", "2", "--warmup", "1", "--checkpoint-every", "2", "--sample-every", "2", "--prompt", "a red square")
	f, err := weights.Open(filepath.Join(loraDir, "lora.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := len(f.Names()); n == 0 || n%3 != 0 {
		t.Errorf("LoRA file has %d tensors, want down/up/alpha triples", n)
	}
	exists(t, filepath.Join(loraDir, "samples-00000002.png"))

	if _, err := runLDM("finetune", filepath.Join(ldmDir, "model"), data, "-o", filepath.Join(tmp, "bad"), "--lora", "2", "--train-text"); err == nil ||
		!strings.Contains(err.Error(), "--train-text") {
		t.Errorf("finetune --lora --train-text: %v, want an error naming --train-text", err)
	}
	// A full fine-tune of U-Net and text encoder with the caption
	// augmentations: how the embedded model can be trained further.
	fullDir := filepath.Join(tmp, "full")
	run(t, "finetune", filepath.Join(ldmDir, "model"), data, "-o", fullDir, "--size", "16", "--batch", "2", "--lr", "1e-2",
		"--steps", "2", "--warmup", "1", "--checkpoint-every", "2", "--sample-every", "2", "--prompt", "a red square",
		"--train-text", "--tag-dropout", "0.5", "--article-prob", "0.3", "--ema", "0")
	if err := train.ReadCheckpointExtra(filepath.Join(fullDir, train.CheckpointName(2)), &stored); err != nil {
		t.Fatal(err)
	}
	if !stored.TrainText || stored.TagDropout != 0.5 || stored.ArticleProb != 0.3 {
		t.Errorf("finetune stored train_text %v, tag dropout %g, article %g", stored.TrainText, stored.TagDropout, stored.ArticleProb)
	}
	for _, f := range []string{"unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"} {
		a, _ := os.ReadFile(filepath.Join(ldmDir, "model", f))
		b, err := os.ReadFile(filepath.Join(fullDir, "model", f))
		if err != nil || bytes.Equal(a, b) {
			t.Errorf("%s: the fine-tuned model's weights equal the base's (%v): want them trained", f, err)
		}
	}
}
