package audio

import (
	"context"
	"image"
)

// Mel returns x's mel spectrogram ([frame][mel]): STFT magnitude through the
// filterbank (Riffusion's mel_amplitudes_from_waveform).
func (c *Converter) Mel(x []float64) [][]float64 {
	return c.mel.Apply(Magnitude(c.STFT(x)))
}

// Recovery options for turning a mel spectrogram back into audio.
type Recovery struct {
	Seed      uint64
	NNLSIters int // projected-gradient steps after the least-squares mel inverse
	Length    int // output samples (≤ 0: hop·(frames−1))
	// Progress, if set, gets each Griffin-Lim iteration's spectral convergence.
	Progress func(iter int, convergence float64)
}

// AudioFromMel recovers a waveform from mel frames: the mel inverse, then
// Griffin-Lim with P.GriffinLimIters iterations and momentum 0.99
// (Riffusion's waveform_from_mel_amplitudes). The result is not
// normalised; see Master.
func (c *Converter) AudioFromMel(ctx context.Context, mel [][]float64, o Recovery) ([]float64, error) {
	lin := c.InverseMel(mel, o.NNLSIters)
	return c.GriffinLim(ctx, lin, GriffinLimOptions{Iters: c.P.GriffinLimIters, Momentum: 0.99, Seed: o.Seed, Length: o.Length, Progress: o.Progress})
}

// ImageFromAudio is Riffusion's spectrogram_image_from_audio: the mel
// spectrogram of x as an image, and the max value to store with it.
func (c *Converter) ImageFromAudio(x []float64) (*image.RGBA, float64) {
	return Image(c.Mel(x), c.P.PowerForImage)
}

// AudioFromImage is Riffusion's audio_from_spectrogram_image: pixels to mel
// magnitudes (scaled by maxValue), recovered and mastered to −12 dBFS RMS
// with the peak at most −0.1 dBFS.
func (c *Converter) AudioFromImage(ctx context.Context, img image.Image, maxValue float64, o Recovery) ([]float64, error) {
	if maxValue <= 0 {
		maxValue = DefaultMaxValue
	}
	x, err := c.AudioFromMel(ctx, FromImage(img, c.P.PowerForImage, maxValue), o)
	if err != nil {
		return nil, err
	}
	Master(x, -12, 0.1)
	return x, nil
}
