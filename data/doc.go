// Package data owns image–caption datasets: reading them from disk (a Hugging
// Face imagefolder with metadata.jsonl or metadata.csv, kohya-style .txt
// captions beside the images, or a CSV file), preprocessing and augmenting
// them with disintegration/imaging, and streaming them to a trainer as NCHW
// float32 batches through a Loader with an on-disk cache and exact resume.
//
// It also builds the datasets that ship with the project: the emoji set
// (BuildEmoji, from the emoji-datasource npm packages) and the procedural
// shapes set (GenerateShapes).
package data
