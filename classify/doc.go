// Package classify owns the small image classifiers ldm judges its own
// models with: a CNN (stride-2 convolution stages with GroupNorm and SiLU,
// global average pooling) whose pooled feature vector is the feature space of
// Fréchet distance and KID, and one linear head per label field (emoji
// subcategory and category, shapes colour and shape). Model runs a trained
// classifier, Trainer trains one on an image folder with metadata labels, and
// Embedded loads the classifiers this project trained, which ship inside the
// package. EvaluateLDM, EvaluateVAE and EvaluateShapes are the measurements
// behind `ldm eval`.
package classify
