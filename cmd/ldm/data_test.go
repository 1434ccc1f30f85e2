package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTestFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func pngBytes(t *testing.T) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 64, 64))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDataEmojiBuildsFromExtractedPackages(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "emoji")
	emoji := `[{"name":"RED APPLE","unified":"1F34E","image":"1f34e.png","short_names":["apple"],"category":"Food & Drink",
	  "subcategory":"food-fruit","sort_order":1,"has_img_twitter":true,"has_img_google":true,
	  "skin_variations":{}},
	 {"name":"WAVING HAND SIGN","unified":"1F44B","image":"1f44b.png","short_names":["wave"],"category":"People & Body",
	  "subcategory":"hand-fingers-open","sort_order":2,"has_img_twitter":true,"has_img_google":true,
	  "skin_variations":{"1F3FF":{"unified":"1F44B-1F3FF","image":"1f44b-1f3ff.png","has_img_twitter":true,"has_img_google":true}}}]`
	for _, set := range []string{"twitter", "google"} {
		pkg := filepath.Join(src, "emoji-datasource-"+set)
		writeTestFile(t, filepath.Join(pkg, "emoji.json"), []byte(emoji))
		for _, f := range []string{"1f34e.png", "1f44b.png", "1f44b-1f3ff.png"} {
			writeTestFile(t, filepath.Join(pkg, "img", set, "64", f), pngBytes(t))
		}
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--holdout", "0"}, []string{"4 image–caption pairs (google 2, twitter 2) of 2 emoji", "split: 4 train, 0 test (0 of 2 concepts held out)"}},
		{[]string{"--skin-tones", "--holdout", "0"}, []string{"6 image–caption pairs (google 3, twitter 3) of 2 emoji", "skin-tone variants: 2"}},
		{[]string{"--sets", "twitter", "--holdout", "0.5", "--keep="}, []string{"2 image–caption pairs (twitter 2) of 2 emoji", "split: 0 train, 2 test (2 of 2 concepts held out)"}},
		// By default red apple, the README's prompt, stays in training.
		{[]string{"--sets", "twitter", "--holdout", "0.5"}, []string{"2 image–caption pairs (twitter 2) of 2 emoji", "split: 1 train, 1 test (1 of 2 concepts held out)"}},
	}
	for _, tt := range tests {
		got, err := runLDM(append([]string{"data", "emoji", out, "--from", src}, tt.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%v: output\n%s\nlacks %q", tt.args, got, w)
			}
		}
	}
	meta, _ := os.ReadFile(filepath.Join(out, "metadata.jsonl"))
	if !strings.Contains(string(meta), `"text":"red apple, apple, food and drink, food fruit, twitter style"`) {
		t.Errorf("metadata.jsonl:\n%s", meta)
	}
	if _, err := runLDM("data", "emoji", out, "--from", src, "--sets", "apple"); err == nil || !strings.Contains(err.Error(), "only twitter and google are licensed") {
		t.Errorf("--sets apple: err = %v", err)
	}
}

func TestDataShapesAndCheck(t *testing.T) {
	out := filepath.Join(t.TempDir(), "shapes")
	got, err := runLDM("data", "shapes", out, "--n", "10", "--size", "32", "--seed", "4", "--holdout", "0")
	if err != nil || !strings.Contains(got, "10 images at 32²") {
		t.Fatalf("shapes: %q, %v", got, err)
	}
	meta, _ := os.ReadFile(filepath.Join(out, "metadata.jsonl"))
	if n := strings.Count(string(meta), "\n"); n != 10 || !strings.Contains(string(meta), `"file_name":"images/00009.png"`) {
		t.Errorf("metadata has %d lines:\n%s", n, meta)
	}
	writeTestFile(t, filepath.Join(out, "images", "00003.png"), []byte("not a png"))
	cache := t.TempDir()
	got, err = runLDM("data", "check", out, "--size", "16", "--cache-dir", cache)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"10 pairs, layout imagefolder", "splits: train 10", "decoded 10, from cache 0, unreadable 1", "unreadable: " + filepath.Join(out, "images", "00003.png")} {
		if !strings.Contains(got, w) {
			t.Errorf("check output\n%s\nlacks %q", got, w)
		}
	}
	got, _ = runLDM("data", "check", out, "--size", "16", "--cache-dir", cache)
	if !strings.Contains(got, "decoded 1, from cache 9, unreadable 1") {
		t.Errorf("second check:\n%s", got)
	}
	if _, err := runLDM("data", "check", out, "--background", "white"); err == nil || !strings.Contains(err.Error(), "want #rrggbb") {
		t.Errorf("--background white: %v", err)
	}
}
