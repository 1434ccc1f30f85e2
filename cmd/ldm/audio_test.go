package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/audio"
)

func TestAudioCommandsWriteWAVsAndSpectrograms(t *testing.T) {
	model := tinyFolder(t) // SD1.5 layout with no spectrogram.json: Riffusion's parameters
	dir := t.TempDir()
	wav, spec := filepath.Join(dir, "a.wav"), filepath.Join(dir, "a.png")
	out, _, err := runSplit("audio", "lo-fi beat", "--model", model, "--backend", "go", "--width", "32", "--steps", "1",
		"--griffin-lim-iters", "2", "--seed", "5", "-o", wav, "--spectrogram-out", spec, "--format", "float32")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "seed 5") {
		t.Errorf("output %q does not report the seed", out)
	}
	c, err := readWAVFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rate != 44100 || len(c.Channels) != 1 || len(c.Channels[0]) != audio.Riffusion().Samples(32) {
		t.Fatalf("WAV: %d Hz, %d channels, %d samples", c.Rate, len(c.Channels), len(c.Channels[0]))
	}
	info, _, err := runSplit("audio-info", spec)
	if err != nil || !strings.Contains(info, "32×512 (EXIF tags)") || !strings.Contains(info, "n_fft 400 ms (17640 samples)") {
		t.Fatalf("audio-info: %v\n%s", err, info)
	}
	// WAV → image → WAV with the image's own parameters.
	img, back := filepath.Join(dir, "b.png"), filepath.Join(dir, "b.wav")
	if _, _, err := runSplit("audio-convert", wav, img); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runSplit("audio-convert", img, back, "--griffin-lim-iters", "2"); err != nil {
		t.Fatal(err)
	}
	if info, _, err := runSplit("audio-info", back); err != nil || !strings.Contains(info, "44100 Hz, 1 channel(s)") {
		t.Fatalf("audio-info of the converted WAV: %v\n%s", err, info)
	}
}

func TestAudioCommandRejectsBadFlagsBeforeLoading(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.wav")
	os.WriteFile(bad, []byte("RIFFxxxxWAVEjunk"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"audio", "x"}, "-o"},
		{[]string{"audio", "-o", "a.wav"}, "PROMPT"},
		{[]string{"audio", "x", "--loop", "-o", "a.wav"}, "--to"},
		{[]string{"audio", "x", "--format", "mp3", "-o", "a.wav"}, "--format"},
		{[]string{"audio", "x", "--from", "y", "-o", "a.wav"}, "not both"},
		{[]string{"audio", "x", "--model", "/nonexistent", "--init-audio", bad, "-o", "a.wav"}, "--init-audio"},
		{[]string{"audio-info", bad}, "bad.wav"},
	}
	for _, c := range cases {
		_, _, err := runSplit(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one mentioning %q", c.args, err, c.want)
		}
	}
}

// The acceptance command: no --model, the embedded music model, a valid
// 44.1 kHz WAV of the stated length.
func TestAudioWithoutModelUsesTheEmbeddedMusicModel(t *testing.T) {
	t.Setenv("LDM_CACHE", t.TempDir())
	wav := filepath.Join(t.TempDir(), "a.wav")
	if _, _, err := runSplit("audio", "a slow piano melody in C major", "--backend", "go", "--steps", "4", "--duration", "7", "-o", wav); err != nil {
		t.Fatal(err)
	}
	c, err := readWAVFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rate != 44100 || len(c.Channels) != 1 || len(c.Channels[0]) != 7*44100 {
		t.Fatalf("WAV: %d Hz, %d channels, %d samples, want 44100 Hz mono 308700", c.Rate, len(c.Channels), len(c.Channels[0]))
	}
	if rms := audio.RMSDBFS(c.Channels[0]); rms < -30 {
		t.Errorf("RMS %.1f dBFS: nearly silent", rms)
	}
}
