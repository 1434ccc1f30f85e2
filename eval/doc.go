// Package eval owns the metrics every model of ldm is judged by: Fréchet
// distance and KID between feature sets, precision/recall on k-NN manifolds,
// PSNR and SSIM of reconstructions, ROC-AUC of anomaly scores, codebook
// perplexity, sample diversity and the bits-per-dimension conversion of a
// likelihood bound. It is plain Go over float64 slices: no backend needed.
package eval
